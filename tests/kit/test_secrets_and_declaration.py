"""The declaration's new fields, secrets as ``KEY`` or ``KEY_FILE``, and Redis's password from a file (real Redis)."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from devenv import Service
from devenv.cache import RedisCache, cache_from_env
from devenv.config import Settings, read_secret, redact
from devenv.errors import ConfigError, ServiceUnavailable
from devenv.testing import free_port


def test_read_secret_prefers_the_variable_then_the_file(tmp_path):
    path = tmp_path / "API_KEY"
    path.write_text("from-the-file-123\n")
    assert read_secret("API_KEY", {"API_KEY": "plain-value-1", "API_KEY_FILE": str(path)}) == "plain-value-1"
    assert read_secret("API_KEY", {"API_KEY_FILE": str(path)}) == "from-the-file-123"
    assert read_secret("API_KEY", {}) is None
    assert redact("leaked from-the-file-123") == "leaked ***", "a value from a file is masked in logs too"


def test_a_declared_secret_the_secret_does_not_hold_is_unset(tmp_path):
    assert read_secret("API_KEY", {"API_KEY_FILE": str(tmp_path / "absent")}) is None


@pytest.mark.parametrize(("content", "problem"), [("", "is empty"), (None, "cannot be read: IsADirectoryError")])
def test_an_unusable_secret_file_is_a_clear_error_without_its_content(tmp_path, content, problem):
    path = tmp_path / "KEY"
    path.mkdir() if content is None else path.write_text(content)
    with pytest.raises(ConfigError, match=f"API_KEY_FILE='{path}' {problem}"):
        read_secret("API_KEY", {"API_KEY_FILE": str(path)})


def test_redis_password_accepts_a_file(tmp_path):
    (tmp_path / "pw").write_text("pw-in-a-file-42")
    settings = Settings.from_env({"REDIS_URL": "redis://r:6379/0", "REDIS_PASSWORD_FILE": str(tmp_path / "pw")})
    assert settings.redis_password == "pw-in-a-file-42"
    assert "pw-in-a-file-42" not in repr(settings)


def test_service_secret_reads_only_declared_keys(tmp_path, monkeypatch):
    svc = Service("weather", secrets=("WEATHER_API_KEY",))
    (tmp_path / "k").write_text("k-from-mounted-secret")
    monkeypatch.delenv("WEATHER_API_KEY", raising=False)
    monkeypatch.setenv("WEATHER_API_KEY_FILE", str(tmp_path / "k"))
    assert svc.secret("WEATHER_API_KEY") == "k-from-mounted-secret"
    with pytest.raises(ConfigError, match="reads secret 'OTHER_KEY' without declaring it"):
        svc.secret("OTHER_KEY")


def test_the_catalogue_carries_the_new_fields():
    svc = Service(
        "weather",
        port=8110,
        secrets=("WEATHER_API_KEY",),
        settings=("WEATHER_UNITS",),
        replicas=3,
        cpu="1",
        memory="512Mi",
    )
    entry = svc.describe()
    assert entry["secrets"] == ["WEATHER_API_KEY"] and entry["settings"] == ["WEATHER_UNITS"]
    assert entry["replicas"] == 3
    assert entry["limits"] == {"cpu": "1", "memory": "512Mi"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"secrets": ("lower",)}, "secrets=['lower'] must be environment variable names"),
        ({"settings": ("A-B",)}, "settings=['A-B'] must be environment variable names"),
        ({"replicas": 0}, "replicas=0 must be a whole number of at least 1"),
        ({"replicas": True}, "replicas=True must be a whole number"),
        ({"cpu": "half"}, "cpu='half' must be a Kubernetes CPU quantity"),
        ({"memory": "1 GB"}, "memory='1 GB' must be a Kubernetes memory quantity"),
    ],
)
def test_bad_declarations_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Service("weather", **kwargs)


@pytest.fixture
def redis_with_password(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not found on PATH (apt-get install redis-server)")
    port = free_port()
    # The password on stdin, as the StatefulSet passes it: not on this process's command line.
    proc = subprocess.Popen(
        [
            binary,
            "-",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.stdin.write(b"requirepass only-in-a-file-77\n")
    proc.stdin.close()
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            RedisCache(url, password="only-in-a-file-77").get("probe")
            break
        except ServiceUnavailable:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_cache_authenticates_with_the_password_file(redis_with_password, tmp_path):
    (tmp_path / "REDIS_PASSWORD").write_text("only-in-a-file-77")
    with pytest.raises(ServiceUnavailable, match="NOAUTH|Authentication"):
        cache_from_env({"REDIS_URL": redis_with_password}).get("k")  # no password: refused
    cache = cache_from_env({"REDIS_URL": redis_with_password, "REDIS_PASSWORD_FILE": str(tmp_path / "REDIS_PASSWORD")})
    cache.set("k", b"v", None)
    assert cache.get("k") == b"v"
