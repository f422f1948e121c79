"""devenv.config: settings from an environment mapping and ./.env, and secret redaction."""

from __future__ import annotations

import os

import pytest

from devenv import config
from devenv.config import Settings, get_settings, is_secret_key, redact, redact_mapping
from devenv.errors import ConfigError

# -- Settings.from_env ----------------------------------------------------------------------


def test_defaults_from_an_empty_environment():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.k8s_mode is False
    assert settings.redis_url is None
    assert settings.url_template is None
    assert settings.timeout == 30.0
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.debug is False
    assert settings.log_level == "INFO"
    assert settings.allowed_origins == ()
    assert settings.services_package == "services"


def test_every_setting_is_read_from_its_variable():
    settings = Settings.from_env(
        {
            "K8S_MODE": "true",
            "REDIS_URL": "redis://cache:6379/0",
            "DEVENV_URL_TEMPLATE": "http://127.0.0.1:{port}",
            "DEVENV_TIMEOUT": "2.5",
            "DEVENV_MAX_BODY_BYTES": "2048",
            "DEVENV_DEBUG": "1",
            "DEVENV_LOG_LEVEL": "debug",
            "DEVENV_ALLOWED_ORIGINS": "http://a.test",
            "DEVENV_SERVICES_PACKAGE": "my_services",
        }
    )
    assert settings == Settings(
        k8s_mode=True,
        redis_url="redis://cache:6379/0",
        url_template="http://127.0.0.1:{port}",
        timeout=2.5,
        max_body_bytes=2048,
        debug=True,
        log_level="DEBUG",
        allowed_origins=("http://a.test",),
        services_package="my_services",
    )
    assert isinstance(settings.max_body_bytes, int)


def test_empty_strings_mean_unset():
    settings = Settings.from_env(
        {"REDIS_URL": "", "DEVENV_URL_TEMPLATE": "", "DEVENV_TIMEOUT": " ", "DEVENV_MAX_BODY_BYTES": "", "K8S_MODE": ""}
    )
    assert settings == Settings()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" True ", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("off", False),
        ("", False),
    ],
)
def test_k8s_mode_values(raw, expected):
    assert Settings.from_env({"K8S_MODE": raw}).k8s_mode is expected


@pytest.mark.parametrize("key", ["K8S_MODE", "DEVENV_DEBUG"])
@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "truee"])
def test_invalid_boolean_is_a_config_error_naming_the_key(key, raw):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({key: raw})
    assert key in str(info.value)
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize(
    ("key", "raw", "problem"),
    [
        ("DEVENV_TIMEOUT", "abc", "is not a number"),
        ("DEVENV_TIMEOUT", "-1", "must be greater than zero"),
        ("DEVENV_TIMEOUT", "0", "must be greater than zero"),
        ("DEVENV_MAX_BODY_BYTES", "ten", "is not a number"),
        ("DEVENV_MAX_BODY_BYTES", "1.5", "is not a number"),
        ("DEVENV_MAX_BODY_BYTES", "-5", "must be greater than zero"),
        ("DEVENV_MAX_BODY_BYTES", "0", "must be greater than zero"),
    ],
)
def test_invalid_numbers_are_config_errors_naming_the_key(key, raw, problem):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({key: raw})
    assert str(info.value) == f"{key}={raw!r} {problem}"


@pytest.mark.parametrize("raw", ["nan", "NaN"])
def test_nan_timeout_is_a_config_error(raw):
    with pytest.raises(ConfigError, match="DEVENV_TIMEOUT"):
        Settings.from_env({"DEVENV_TIMEOUT": raw})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://a.test", ("http://a.test",)),
        (" http://a.test , ,https://b.test:8443,", ("http://a.test", "https://b.test:8443")),
        ("*", ("*",)),
        (" , ", ()),
        ("", ()),
    ],
)
def test_allowed_origins_parsing(raw, expected):
    assert Settings.from_env({"DEVENV_ALLOWED_ORIGINS": raw}).allowed_origins == expected


def test_settings_are_immutable():
    with pytest.raises(AttributeError):
        Settings().timeout = 1  # type: ignore[misc]


def test_get_settings_with_an_explicit_environ_ignores_the_process(monkeypatch):
    monkeypatch.setenv("K8S_MODE", "true")
    assert get_settings({}).k8s_mode is False
    assert get_settings({"K8S_MODE": "yes"}).k8s_mode is True


# -- .env -----------------------------------------------------------------------------------


def _unset(monkeypatch: pytest.MonkeyPatch, *keys: str) -> None:
    """Unset ``keys`` for this test, and have them unset again afterwards even if .env sets them."""
    for key in keys:
        monkeypatch.setenv(key, "placeholder")  # recorded as "was unset" (or its old value) for undo
        monkeypatch.delenv(key)


@pytest.fixture
def fresh_dotenv(monkeypatch, tmp_path):
    """A tmp cwd and a devenv that has not loaded any .env yet."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEVENV_ENV_FILE", raising=False)
    monkeypatch.setattr(config, "_dotenv_loaded", False)
    return tmp_path


def test_dotenv_fills_unset_variables_but_does_not_override(monkeypatch, fresh_dotenv):
    _unset(monkeypatch, "DEVENV_SERVICES_PACKAGE", "DEVENV_TEST_ONLY_FROM_DOTENV")
    monkeypatch.setenv("K8S_MODE", "false")
    (fresh_dotenv / ".env").write_text(
        "K8S_MODE=true\nDEVENV_SERVICES_PACKAGE=from_dotenv\nDEVENV_TEST_ONLY_FROM_DOTENV='quoted value'\n"
    )
    settings = get_settings()
    assert settings.services_package == "from_dotenv"
    assert settings.k8s_mode is False  # the real environment wins
    assert os.environ["DEVENV_TEST_ONLY_FROM_DOTENV"] == "quoted value"
    assert os.environ["K8S_MODE"] == "false"


def test_dotenv_is_read_once(monkeypatch, fresh_dotenv):
    _unset(monkeypatch, "DEVENV_SERVICES_PACKAGE")
    dotenv = fresh_dotenv / ".env"
    dotenv.write_text("DEVENV_SERVICES_PACKAGE=first\n")
    assert get_settings().services_package == "first"
    monkeypatch.delenv("DEVENV_SERVICES_PACKAGE")
    dotenv.write_text("DEVENV_SERVICES_PACKAGE=second\n")
    assert get_settings().services_package == "services"  # not re-read


def test_dotenv_path_from_devenv_env_file(monkeypatch, fresh_dotenv):
    _unset(monkeypatch, "DEVENV_SERVICES_PACKAGE")
    (fresh_dotenv / ".env").write_text("DEVENV_SERVICES_PACKAGE=from_default_file\n")
    custom = fresh_dotenv / "custom.env"
    custom.write_text("DEVENV_SERVICES_PACKAGE=from_custom_file\n")
    monkeypatch.setenv("DEVENV_ENV_FILE", str(custom))
    assert get_settings().services_package == "from_custom_file"


def test_no_dotenv_is_fine(monkeypatch, fresh_dotenv):
    _unset(monkeypatch, "DEVENV_SERVICES_PACKAGE")
    assert get_settings().services_package == "services"


def test_an_explicit_environ_does_not_load_dotenv(monkeypatch, fresh_dotenv):
    _unset(monkeypatch, "DEVENV_SERVICES_PACKAGE")
    (fresh_dotenv / ".env").write_text("DEVENV_SERVICES_PACKAGE=from_dotenv\n")
    assert get_settings({}).services_package == "services"
    assert "DEVENV_SERVICES_PACKAGE" not in os.environ
    assert config._dotenv_loaded is False


# -- redaction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "API_TOKEN",
        "github_token",
        "DB_PASSWORD",
        "PASSWD",
        "OPENAI_API_KEY",
        "APIKEY",
        "CLIENT_SECRET",
        "SSH_PRIVATE_KEY",
        "AWS_CREDENTIALS",
        "BASIC_AUTH",
    ],
)
def test_secret_keys(key):
    assert is_secret_key(key) is True


@pytest.mark.parametrize("key", ["HOME", "PATH", "REDIS_URL", "K8S_MODE", "DEVENV_TIMEOUT", "KEYBOARD"])
def test_not_secret_keys(key):
    assert is_secret_key(key) is False


ENVIRON = {
    "API_TOKEN": "tok-1234567890",
    "SHORT_SECRET": "abc12",  # five characters: too short to mask safely
    "HOME": "/home/someone",
}


def test_redact_masks_secret_env_values():
    text = "token tok-1234567890 in /home/someone, short abc12"
    assert redact(text, ENVIRON) == "token *** in /home/someone, short abc12"


def test_redact_masks_every_occurrence_and_longer_secrets_first():
    environ = {"A_TOKEN": "abcdefgh", "B_TOKEN": "abcdefghijkl"}
    assert redact("abcdefghijkl abcdefgh abcdefghijkl", environ) == "*** *** ***"


def test_redact_uses_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("DEVENV_TEST_API_TOKEN", "proc-secret-value")
    assert redact("x proc-secret-value y") == "x *** y"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:s3cretpass@redis:6379/0", "redis://:***@redis:6379/0"),
        ("connect postgres://app:pa55word@db:5432/app now", "connect postgres://app:***@db:5432/app now"),
        (
            "https://user:tok@example.com/path https://u2:p2@b.test",
            "https://user:***@example.com/path https://u2:***@b.test",
        ),
        ("http://user@host/path", "http://user@host/path"),
        ("http://host:8080/a@b", "http://host:8080/a@b"),
        ("no urls here: a:b@c", "no urls here: a:b@c"),
    ],
)
def test_redact_masks_url_passwords(text, expected):
    assert redact(text, {}) == expected


def test_redact_mapping_masks_secret_keys_recursively():
    values = {
        "API_KEY": "short",
        "url": "redis://:pw-123456@cache:6379/0",
        "note": "uses tok-1234567890",
        "port": 6379,
        "nested": {"password": "p", "inner": {"CLIENT_SECRET": None, "ok": "visible"}, "count": 2},
    }
    original = {**values, "nested": {**values["nested"]}}
    assert redact_mapping(values, ENVIRON) == {
        "API_KEY": "***",
        "url": "redis://:***@cache:6379/0",
        "note": "uses ***",
        "port": 6379,
        "nested": {"password": "***", "inner": {"CLIENT_SECRET": "***", "ok": "visible"}, "count": 2},
    }
    assert values == original  # a copy; the input is untouched


def test_redact_mapping_descends_into_lists():
    masked = redact_mapping({"servers": [{"password": "hunter22"}, "redis://:pw-123456@h/0"]}, {})
    assert "hunter22" not in repr(masked)
    assert "pw-123456" not in repr(masked)
