"""Bearer-token auth: what needs the token, what stays open, how MCPClient sends it."""

from __future__ import annotations

import hmac

import httpx
import pytest

from devenv import MCPClient, ProtocolError, create_app
from devenv import security as security_module
from devenv.config import Settings
from devenv.errors import ConfigError
from devenv.security import BearerAuth
from tests.conftest import serve_in_thread
from tests.unit.demo_service import make_service

TOKEN = "tok-" + "5f2b9c1e" * 5
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def url():
    with serve_in_thread(create_app(make_service(), Settings(auth_token=TOKEN))) as base:
        yield base


@pytest.fixture
def remote(monkeypatch, url):
    """Points remote-mode clients at the server; no token in the environment unless a test sets one."""
    monkeypatch.setenv("DEVENV_URL_DEMO", url)
    for key in ("DEVENV_AUTH_TOKEN", "DEVENV_AUTH_TOKEN_FILE"):
        monkeypatch.delenv(key, raising=False)
    made: list[MCPClient] = []

    def client(**kwargs) -> MCPClient:
        made.append(MCPClient(mode="http", retries=0, **kwargs))
        return made[-1]

    yield client
    for c in made:
        c.close()


# -- the server ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong-" + "x" * 30),
        bearer(TOKEN[:-1]),
        bearer(TOKEN + "x"),
        {"authorization": f"Basic {TOKEN}"},
        {"authorization": "Bearer"},
        {"authorization": TOKEN},
    ],
)
def test_mcp_without_the_right_token_is_401_with_a_json_rpc_error(url, headers):
    r = httpx.post(f"{url}/mcp", json=PING, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer realm="devenv"')
    body = r.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == -32001
    assert "Unauthorized" in body["error"]["message"]
    assert TOKEN not in r.text


def test_a_wrong_token_is_named_invalid_in_the_challenge(url):
    r = httpx.post(f"{url}/mcp", json=PING, headers=bearer("w" * 40))
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_rest_without_a_token_is_401_with_a_json_error_and_the_tool_never_runs(url):
    r = httpx.post(f"{url}/tools/echo", json={"text": "x"})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "Unauthorized"
    # Refused before the body is read: even a malformed body is 401, not 422.
    assert (
        httpx.post(f"{url}/tools/echo", content=b"{", headers={"content-type": "application/json"}).status_code == 401
    )


def test_the_right_token_passes_on_both_wires(url):
    assert httpx.post(f"{url}/mcp", json=PING, headers=bearer()).json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert httpx.post(f"{url}/tools/echo", json={"text": "x"}, headers=bearer()).json() == "x"
    # The scheme is case-insensitive (RFC 7235).
    r = httpx.post(f"{url}/tools/echo", json={"text": "y"}, headers={"authorization": f"bearer {TOKEN}"})
    assert r.json() == "y"


def test_probes_stay_open_and_metrics_are_open_by_default(url):
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.get(f"{url}/ready").status_code == 200
    assert httpx.get(f"{url}/metrics").status_code == 200


def test_everything_else_needs_the_token(url):
    assert httpx.get(f"{url}/openapi.json").status_code == 401
    assert httpx.get(f"{url}/docs").status_code == 401
    assert httpx.get(f"{url}/openapi.json", headers=bearer()).status_code == 200


def test_metrics_need_the_token_when_configured():
    app = create_app(make_service(), Settings(auth_token=TOKEN, metrics_auth=True))
    with serve_in_thread(app) as base:
        assert httpx.get(f"{base}/metrics").status_code == 401
        assert httpx.get(f"{base}/metrics", headers=bearer()).status_code == 200
        assert httpx.get(f"{base}/ready").status_code == 200
        metrics = httpx.get(f"{base}/metrics", headers=bearer()).text
    assert 'devenv_rejected_requests_total{devenv_service="demo",reason="unauthorized"} 1.0' in metrics


def test_no_token_configured_means_no_auth():
    with serve_in_thread(create_app(make_service(), Settings())) as base:
        assert httpx.post(f"{base}/mcp", json=PING).status_code == 200
        assert httpx.post(f"{base}/tools/echo", json={"text": "x"}).status_code == 200


def test_tokens_are_compared_in_constant_time(monkeypatch):
    """The comparison goes through hmac.compare_digest, on digests of equal length."""
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security_module.hmac, "compare_digest", spy)
    auth = BearerAuth(TOKEN)
    assert auth.check(f"Bearer {TOKEN}".encode())[0] is True
    assert auth.check(b"Bearer short")[0] is False
    assert auth.check(b"Bearer " + b"x" * 500)[0] is False
    assert len(seen) == 3
    assert {len(a) for a, b in seen} | {len(b) for a, b in seen} == {32}  # sha256 digests: length never leaks


# -- settings --------------------------------------------------------------------------------------


def test_token_from_the_environment_or_a_mounted_secret_file(tmp_path):
    assert Settings.from_env({"DEVENV_AUTH_TOKEN": TOKEN}).auth_token == TOKEN
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")  # a Secret mounted as a file often ends in a newline
    assert Settings.from_env({"DEVENV_AUTH_TOKEN_FILE": str(secret)}).auth_token == TOKEN
    assert Settings.from_env({}).auth_token is None  # local mode: off unless set


@pytest.mark.parametrize("token", ["short", "has space inside-long-enough", "\x01" * 20])
def test_a_weak_or_malformed_token_is_a_config_error_that_does_not_show_it(token):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DEVENV_AUTH_TOKEN": token})
    assert token not in str(info.value)
    assert "at least 16" in str(info.value)


def test_an_unreadable_or_empty_token_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        Settings.from_env({"DEVENV_AUTH_TOKEN_FILE": str(tmp_path / "missing")})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        Settings.from_env({"DEVENV_AUTH_TOKEN_FILE": str(empty)})


def test_the_token_is_not_in_the_settings_repr():
    assert TOKEN not in repr(Settings.from_env({"DEVENV_AUTH_TOKEN": TOKEN}))


# -- MCPClient -------------------------------------------------------------------------------------


def test_mcp_client_sends_the_token_from_the_environment(remote, monkeypatch):
    monkeypatch.setenv("DEVENV_AUTH_TOKEN", TOKEN)
    assert remote().call("demo/echo", {"text": "hi"}) == "hi"


def test_mcp_client_reads_a_token_file(remote, monkeypatch, tmp_path):
    secret = tmp_path / "token"
    secret.write_text(TOKEN)
    monkeypatch.setenv("DEVENV_AUTH_TOKEN_FILE", str(secret))
    assert remote().call("demo/echo", {"text": "hi"}) == "hi"


def test_mcp_client_without_a_token_says_which_setting_to_set(remote):
    with pytest.raises(ProtocolError) as info:
        remote().call("demo/echo", {"text": "hi"})
    assert "401" in str(info.value) and "DEVENV_AUTH_TOKEN" in str(info.value)


def test_mcp_client_with_a_wrong_token_never_shows_either_token(remote):
    wrong = "wrong-" + "z" * 30
    client = remote(auth_token=wrong)
    with pytest.raises(ProtocolError) as info:
        client.call("demo/echo", {"text": "hi"})
    assert wrong not in str(info.value) and TOKEN not in str(info.value)
    assert wrong not in repr(client) and wrong not in repr(client.transport)


def test_the_token_from_a_folder_of_mounted_secrets_when_the_secret_holds_one(tmp_path):
    """What the generated manifests do: DEVENV_SECRETS_DIR, the token an optional key in it."""
    (tmp_path / "DEVENV_AUTH_TOKEN").write_text(TOKEN + "\n")
    assert Settings.from_env({"DEVENV_SECRETS_DIR": str(tmp_path)}).auth_token == TOKEN
    empty_mount = tmp_path / "without-token"
    empty_mount.mkdir()  # the Secret holds no DEVENV_AUTH_TOKEN: the optional key leaves no file
    assert Settings.from_env({"DEVENV_SECRETS_DIR": str(empty_mount)}).auth_token is None
    other = tmp_path / "other"
    other.write_text("x" * 16 + "-other")
    env = {"DEVENV_SECRETS_DIR": str(tmp_path), "DEVENV_AUTH_TOKEN_FILE": str(other)}
    assert Settings.from_env(env).auth_token == "x" * 16 + "-other", "DEVENV_AUTH_TOKEN_FILE wins (prod's devenv-auth)"


def test_a_missing_secrets_folder_or_an_empty_mounted_token_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"DEVENV_SECRETS_DIR='.*nowhere' is not a directory"):
        Settings.from_env({"DEVENV_SECRETS_DIR": str(tmp_path / "nowhere")})
    (tmp_path / "DEVENV_AUTH_TOKEN").write_text("\n")
    with pytest.raises(ConfigError, match=r"the mounted token '.*DEVENV_AUTH_TOKEN' \(DEVENV_SECRETS_DIR\) is empty"):
        Settings.from_env({"DEVENV_SECRETS_DIR": str(tmp_path)})
    (tmp_path / "DEVENV_AUTH_TOKEN").write_text("short")
    with pytest.raises(ConfigError, match="at least 16") as info:
        Settings.from_env({"DEVENV_SECRETS_DIR": str(tmp_path)})
    assert "short" not in str(info.value)
