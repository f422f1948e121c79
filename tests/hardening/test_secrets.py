"""No secret value in logs, error messages, `devenv env` output or files meant for git.

Redaction works by key pattern (``*TOKEN*``, ``*PASSWORD*``, ...: their values are masked
wherever they appear) and by known value (a token read from a file is registered).
"""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from devenv import MCPClient, Service, ToolError, create_app
from devenv.config import Settings, redact, redact_mapping
from devenv.logs import JsonFormatter
from tests.conftest import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
DB_PASSWORD = "pw-" + uuid.uuid4().hex  # unique per run: a hit can only be a leak


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.logger = logging.getLogger(f"devenv.test.{uuid.uuid4().hex}")
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(JsonFormatter())
        self.logger.handlers[:] = [handler]
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False

    @property
    def text(self) -> str:
        return self.stream.getvalue()


def leaky_service() -> Service:
    service = Service("leaky")

    @service.tool
    def connect(host: str) -> str:
        """Fails the way a driver does: with the password in the message."""
        raise ConnectionError(f"login to {host} as app:{DB_PASSWORD} failed")

    @service.tool
    def bad_input(value: str) -> str:
        """A ValueError echoing configuration."""
        raise ValueError(f"value {value!r} does not match the one in postgres://app:{DB_PASSWORD}@db/app")

    return service


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("DEVENV_TEST_DB_PASSWORD", DB_PASSWORD)


def test_tool_errors_on_the_wire_do_not_carry_secrets(secret_env, caplog):
    app = create_app(leaky_service(), Settings(debug=True))  # debug: even the traceback is sent
    with caplog.at_level(logging.INFO, logger="devenv.calls"), serve_in_thread(app) as url:
        rest = httpx.post(f"{url}/tools/connect", json={"host": "db"})
        rest_400 = httpx.post(f"{url}/tools/bad_input", json={"value": "x"})
        mcp = httpx.post(
            f"{url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "connect", "arguments": {}}},
        )
        mcp = httpx.post(
            f"{url}/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "connect", "arguments": {"host": "db"}},
            },
        )
    assert rest.status_code == 500 and rest_400.status_code == 400
    assert "ConnectionError" in rest.text and "***" in rest.text
    assert mcp.json()["result"]["isError"] is True
    for text in (rest.text, rest_400.text, mcp.text, caplog.text):
        assert DB_PASSWORD not in text
    assert "Traceback" in rest.json()["error"]["traceback"]  # debug still shows where, not the secret


def test_tool_errors_in_process_do_not_carry_secrets(secret_env):
    client = MCPClient(services=[leaky_service()])
    with pytest.raises(ToolError) as info:
        client.call("leaky/connect", {"host": "db"})
    assert DB_PASSWORD not in str(info.value) and "***" in info.value.message


def test_a_token_from_a_file_is_masked_in_logs_though_no_variable_holds_it(tmp_path):
    token = "file-token-" + uuid.uuid4().hex
    captured = Captured()  # made first, as at start-up, before the settings read the file
    secret = tmp_path / "token"
    secret.write_text(token)
    Settings.from_env({"DEVENV_AUTH_TOKEN_FILE": str(secret)})
    captured.logger.info("calling with %s", token, extra={"headers": {"authorization": f"Bearer {token}"}})
    try:
        raise RuntimeError(f"rejected {token}")
    except RuntimeError:
        captured.logger.exception("failed")
    assert token not in captured.text
    assert captured.text.count("***") >= 3
    assert token not in redact(f"x {token} y")


def test_objects_logged_as_extra_are_masked(secret_env):
    captured = Captured()
    captured.logger.warning("cache", extra={"error": ConnectionError(f"auth {DB_PASSWORD}"), "n": 3, "ok": True})
    line = json.loads(captured.text)
    assert DB_PASSWORD not in captured.text
    assert (line["n"], line["ok"]) == (3, True)


def test_env_exports_never_print_secrets(monkeypatch):
    """What `devenv env` prints: only K8S_MODE, the catalogue and service URLs (passwords in a URL masked)."""
    from devenv.stack import env_exports

    monkeypatch.setenv("DEVENV_AUTH_TOKEN", "tok-" + "9" * 30)
    monkeypatch.setenv("DEVENV_TEST_DB_PASSWORD", DB_PASSWORD)
    lines = env_exports({"jd-classifier": "http://127.0.0.1:8101"})
    text = "\n".join(lines)
    assert "tok-" + "9" * 30 not in text and DB_PASSWORD not in text
    assert all(not re.search(r"TOKEN|PASSWORD|SECRET", line.split("=")[0]) for line in lines)


def test_redact_mapping_masks_secret_keys_whatever_their_value():
    masked = redact_mapping({"DEVENV_AUTH_TOKEN": "abc", "REDIS_URL": f"redis://:{DB_PASSWORD}@r:6379/0"})
    assert masked["DEVENV_AUTH_TOKEN"] == "***"
    assert DB_PASSWORD not in masked["REDIS_URL"]


# -- files meant for git -----------------------------------------------------------------------------

# key = value where the key looks secret and the value looks like a real credential (long, no
# placeholder, no variable reference).
_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?P<key>[A-Z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL)[A-Z0-9_]*)
    \s*[:=]\s*["']?(?P<value>[A-Za-z0-9+/_\-.~]{16,})
    """
)
_PLACEHOLDER = re.compile(r"(?i)example|changeme|placeholder|your|dummy|fake|xxxx|\$|\{|<|redacted|\*\*\*")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# Source and tests may hold made-up secrets (to test redaction); config, manifests, scripts may not.
_SCANNED_SUFFIXES = {".yaml", ".yml", ".env", ".example", ".sh", ".toml", ".cfg", ".ini", ".json", ".txt", ""}


def _files_for_git() -> list[Path]:
    """Tracked files and new ones git would add (untracked, not ignored)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git work tree")
    paths = [ROOT / p for p in out.decode().split("\0") if p]
    return [p for p in paths if p.is_file() and not p.is_symlink()]


def test_no_credentials_in_files_meant_for_git():
    leaks = []
    for path in _files_for_git():
        relative = path.relative_to(ROOT)
        if relative.parts[0] in ("tests", "benchmarks") or path.suffix == ".py":
            continue
        if path.suffix not in _SCANNED_SUFFIXES and path.name not in ("Dockerfile", "Tiltfile", "Makefile"):
            continue
        if path.name.endswith("-lock.json"):
            continue  # integrity hashes, not credentials
        text = path.read_text(errors="replace")
        if _PRIVATE_KEY.search(text):
            leaks.append(f"{relative}: a private key")
        for match in _ASSIGNMENT.finditer(text):
            if not _PLACEHOLDER.search(match["value"]):
                leaks.append(f"{relative}: {match['key']}=<{len(match['value'])} characters>")
    assert leaks == []


def test_local_env_files_are_ignored_by_git():
    for name in (".env", ".devenv/state.json", "k8s/generated/secret.yaml"):
        result = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT)
        assert result.returncode == 0, f"{name} is not git-ignored"
