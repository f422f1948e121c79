"""scripts/setup-from-env.sh: .env → Secret and ConfigMap YAML, with the real ``kubectl create --dry-run=client``."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from dotenv import dotenv_values

from .conftest import ROOT
from .fakes import fake_env, install_fakes

SCRIPT = ROOT / "scripts" / "setup-from-env.sh"

ENV_TEXT = """\
# a comment, then a blank line

export REDIS_PASSWORD="s3cret-pw_1"
API_TOKEN='literal #not-a-comment $HOME'
DATABASE_URL=postgres://user:p%40ss@db:5432/app
DEVENV_LOG_LEVEL=DEBUG   # an inline comment
INBOX_MIN_SCORE=0.3
GREETING="two\\nlines and a \\"quote\\""
K8S_MODE=false
REDIS_URL=redis://localhost:6379/0
VAULT_ROOT=./vault
DEVENV_URL_JD_CLASSIFIER=http://127.0.0.1:8101
EMPTY=
DEVENV_LOG_LEVEL=WARNING
"""


def run_script(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=60,
    )


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text(ENV_TEXT)
    return path


def test_secret_and_configmap_from_env(kubectl, tmp_path, env_file):
    out = tmp_path / "out"
    proc = run_script("--env-file", str(env_file), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    secret = yaml.safe_load((out / "secret.yaml").read_text())
    config = yaml.safe_load((out / "configmap.yaml").read_text())
    assert (secret["kind"], secret["metadata"]["name"], secret["metadata"]["namespace"]) == (
        "Secret",
        "devenv-secrets",
        "devenv",
    )
    assert (config["kind"], config["metadata"]["name"]) == ("ConfigMap", "devenv-env")
    parsed = dotenv_values(env_file, interpolate=False)  # what the services read locally
    sealing = decoded(secret).pop("DEVENV_STATE_SECRET")
    assert re.fullmatch(r"[0-9a-f]{64}", sealing), "none in .env: generated"
    assert {k: v for k, v in decoded(secret).items() if k != "DEVENV_STATE_SECRET"} == {
        k: parsed[k] for k in ("REDIS_PASSWORD", "API_TOKEN", "DATABASE_URL")
    }
    assert config["data"] == {k: parsed[k] for k in ("DEVENV_LOG_LEVEL", "INBOX_MIN_SCORE", "GREETING")}
    assert config["data"]["DEVENV_LOG_LEVEL"] == "WARNING", "the last occurrence wins, as in python-dotenv"
    assert "left out" in proc.stderr and "K8S_MODE" in proc.stderr
    for key in ("K8S_MODE", "REDIS_URL", "VAULT_ROOT", "DEVENV_URL_JD_CLASSIFIER", "EMPTY"):
        assert key not in decoded(secret) and key not in config["data"], key
    for obj in (secret, config):
        kubernetes_validate.validate(obj, "1.33", strict=True)
    assert (out / "secret.yaml").stat().st_mode & 0o077 == 0, "the Secret file is readable by others"


def test_stdout_mode_prints_both_and_writes_no_yaml(kubectl, tmp_path, env_file):
    out = tmp_path / "out"
    proc = run_script("--env-file", str(env_file), "--out", str(out), "--stdout", "--namespace", "other")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert [(d["kind"], d["metadata"]["namespace"]) for d in docs] == [("Secret", "other"), ("ConfigMap", "other")]
    assert not (out / "secret.yaml").exists()


def test_a_missing_redis_password_is_generated_once_and_kept(kubectl, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DEVENV_LOG_LEVEL=INFO\n")
    out = tmp_path / "out"
    first = run_script("--env-file", str(env_file), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "generated one" in first.stderr
    password = decoded(yaml.safe_load((out / "secret.yaml").read_text()))["REDIS_PASSWORD"]
    assert re.fullmatch(r"[0-9a-f]{48}", password)
    mtime = (out / "secret.yaml").stat().st_mtime_ns
    second = run_script("--env-file", str(env_file), "--out", str(out))
    assert second.returncode == 0, second.stderr
    assert decoded(yaml.safe_load((out / "secret.yaml").read_text()))["REDIS_PASSWORD"] == password
    assert (out / "secret.yaml").stat().st_mtime_ns == mtime, "an unchanged file is not rewritten"


def test_a_redis_password_that_breaks_the_url_is_refused(kubectl, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("REDIS_PASSWORD=p@ss/word\n")
    proc = run_script("--env-file", str(env_file), "--out", str(tmp_path / "out"))
    assert proc.returncode != 0
    assert "REDIS_PASSWORD may only contain" in proc.stderr
    assert not (tmp_path / "out" / "secret.yaml").exists()


def test_refuses_a_folder_git_would_commit(kubectl, tmp_path, env_file):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    proc = run_script("--env-file", str(env_file), "--out", str(repo / "generated"))
    assert proc.returncode != 0
    assert "would not be ignored by git" in proc.stderr
    assert not (repo / "generated" / "secret.yaml").exists()
    (repo / ".gitignore").write_text("generated/\n")
    proc = run_script("--env-file", str(env_file), "--out", str(repo / "generated"))
    assert proc.returncode == 0, proc.stderr
    assert (repo / "generated" / "secret.yaml").is_file()


def test_never_writes_through_a_symlink(kubectl, tmp_path, env_file):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "linked-out").symlink_to(elsewhere)
    proc = run_script("--env-file", str(env_file), "--out", str(tmp_path / "linked-out"))
    assert proc.returncode != 0 and "symlink" in proc.stderr
    assert list(elsewhere.iterdir()) == []
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    (out / "secret.yaml").symlink_to(victim)
    proc = run_script("--env-file", str(env_file), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "untouched"
    assert not (out / "secret.yaml").is_symlink()


def test_secret_values_never_reach_a_command_line(tmp_path, env_file, kubectl):
    """With a recording FAKE kubectl in front of the real one: every argv it saw is free of secret values."""
    world = install_fakes(tmp_path / "world", programs=("kubectl",))
    proc = run_script("--env-file", str(env_file), "--out", str(tmp_path / "out"), env=fake_env(world, kubectl))
    assert proc.returncode == 0, proc.stderr
    commands = world.commands("kubectl")
    assert any("create secret generic devenv-secrets" in c for c in commands)
    secret = yaml.safe_load((tmp_path / "out" / "secret.yaml").read_text())
    assert decoded(secret)["API_TOKEN"] == "literal #not-a-comment $HOME", "the fake must not change the result"
    for value in ("s3cret-pw_1", "literal #not-a-comment", "p%40ss"):
        assert not any(value in c for c in commands), value


def test_env_example_documents_every_key_and_marks_local_ones_right(kubectl, tmp_path):
    example = (ROOT / ".env.example").read_text()
    documented = dict(re.findall(r"^# ([A-Z][A-Z0-9_]+)=(.*)$", example, re.MULTILINE))
    read_by_code = set()
    for path in [*(ROOT / "devenv").rglob("*.py"), *(ROOT / "services").rglob("*.py")]:
        text = path.read_text()
        read_by_code |= set(re.findall(r"environ(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]+)\"", text))
        read_by_code |= set(re.findall(r"(?:_flag|_number)\(environ, \"([A-Z][A-Z0-9_]+)\"", text))
        read_by_code |= set(re.findall(r"envvar=\"([A-Z][A-Z0-9_]+)\"", text))
    for script in ("setup-from-env.sh", "build-and-deploy.sh"):
        read_by_code |= set(
            re.findall(r"\$\{(DEVENV_[A-Z0-9_]+|ENV_FILE|OUT_DIR)[:}]", (ROOT / "scripts" / script).read_text())
        )
    not_for_env_file = {
        "DEVENV_SERVICE",  # set by `devenv serve` for its own reload worker
        "DEVENV_REQUIRE_TARGETS",  # test-run switches, read from the environment only
        "DEVENV_UP_TIMEOUT",
        "ENV_FILE",  # setup-from-env.sh's own options
        "OUT_DIR",
    }
    someone_elses = re.compile(r"^(XDG_|DOCKER_|KUBECONFIG$|HOME$|PATH$|PYTHON)")  # other tools' variables
    missing = sorted(k for k in read_by_code - set(documented) - not_for_env_file if not someone_elses.match(k))
    assert not missing, f".env.example does not document {missing}"
    assert "DEVENV_URL_JD_CLASSIFIER" in documented  # DEVENV_URL_<NAME>, by example

    # Every key uncommented: the [local] sections must stay out of the cluster, the rest go in.
    local_section = example[example.index("[local] ---") :]
    local_keys = set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=", local_section, re.MULTILINE))
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{key}=x-{i}\n" for i, key in enumerate(documented)))
    proc = run_script("--env-file", str(env_file), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    secret = decoded(yaml.safe_load((tmp_path / "out" / "secret.yaml").read_text()))
    config = yaml.safe_load((tmp_path / "out" / "configmap.yaml").read_text())["data"]
    assert set(secret) | set(config) == set(documented) - local_keys
    secrets_section = example[example.index("-- secrets") : example.index("-- service settings")]
    assert set(secret) == set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=", secrets_section, re.MULTILINE))
