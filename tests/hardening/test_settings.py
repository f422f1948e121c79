"""The hardening settings, each read from its variable, with safe defaults."""

from __future__ import annotations

import pytest

from devenv.config import Settings
from devenv.errors import ConfigError


def test_safe_defaults():
    s = Settings.from_env({})
    assert s.auth_token is None and s.metrics_auth is False  # local mode: off unless set
    assert s.allowed_hosts == () and s.bind_host is None
    assert s.tool_timeout == 60.0 and s.max_concurrency == 64
    assert s.rate_limit is None and s.rate_burst is None
    assert s.shutdown_delay == 0.0
    assert s.retries == 10 and s.timeout == 30.0
    assert (s.max_sessions, s.session_idle_timeout, s.input_timeout) == (1000, 1800.0, 300.0)


def test_every_hardening_setting_is_read_from_its_variable():
    s = Settings.from_env(
        {
            "DEVENV_AUTH_TOKEN": "t" * 32,
            "DEVENV_METRICS_AUTH": "true",
            "DEVENV_ALLOWED_HOSTS": " jd-classifier-service , .svc.cluster.local,,",
            "DEVENV_BIND_HOST": "127.0.0.1",
            "DEVENV_TOOL_TIMEOUT": "2.5",
            "DEVENV_MAX_CONCURRENCY": "8",
            "DEVENV_RATE_LIMIT": "20",
            "DEVENV_RATE_BURST": "40",
            "DEVENV_SHUTDOWN_DELAY": "5",
            "DEVENV_RETRIES": "0",
            "DEVENV_MAX_SESSIONS": "3",
            "DEVENV_SESSION_IDLE_TIMEOUT": "0.5",
            "DEVENV_INPUT_TIMEOUT": "7",
        }
    )
    assert s.auth_token == "t" * 32 and s.metrics_auth is True
    assert s.allowed_hosts == ("jd-classifier-service", ".svc.cluster.local")
    assert s.bind_host == "127.0.0.1"
    assert (s.tool_timeout, s.max_concurrency, s.rate_limit, s.rate_burst) == (2.5, 8, 20.0, 40)
    assert (s.shutdown_delay, s.retries) == (5.0, 0)
    assert (s.max_sessions, s.session_idle_timeout, s.input_timeout) == (3, 0.5, 7.0)


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("DEVENV_TOOL_TIMEOUT", "0"),
        ("DEVENV_MAX_CONCURRENCY", "0"),
        ("DEVENV_MAX_CONCURRENCY", "1.5"),
        ("DEVENV_RATE_LIMIT", "-1"),
        ("DEVENV_RATE_BURST", "0"),
        ("DEVENV_SHUTDOWN_DELAY", "-1"),
        ("DEVENV_RETRIES", "-1"),
        ("DEVENV_RETRIES", "nan"),
        ("DEVENV_METRICS_AUTH", "maybe"),
        ("DEVENV_MAX_SESSIONS", "0"),
        ("DEVENV_MAX_SESSIONS", "many"),
        ("DEVENV_SESSION_IDLE_TIMEOUT", "-5"),
        ("DEVENV_INPUT_TIMEOUT", "0"),
    ],
)
def test_bad_values_are_config_errors_naming_the_variable(key, raw):
    with pytest.raises(ConfigError, match=key):
        Settings.from_env({key: raw})
