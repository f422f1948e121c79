"""Settings from the environment (and a git-ignored ``.env``), and secret redaction.

Every knob is an environment variable so the same code is configured by a shell, a
``.env`` file, a Docker ``-e`` or a Kubernetes ConfigMap/Secret without change.
"""

from __future__ import annotations

import functools
import math
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = [
    "Settings",
    "get_settings",
    "is_secret_key",
    "read_secret",
    "redact",
    "redact_mapping",
    "register_secret",
    "secret_values",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

_SECRET_KEY = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.IGNORECASE)
_MASK = "***"
# Secrets are masked only from this length on: shorter values would mask ordinary words everywhere.
_MIN_SECRET_LEN = 6
# A bearer token must be long enough to resist guessing (and to be masked in logs).
MIN_TOKEN_LEN = 16


def _flag(environ: Mapping[str, str], key: str, default: bool = False) -> bool:
    raw = environ.get(key)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{key}={raw!r} is not a boolean; use true or false")


def _number(environ: Mapping[str, str], key: str, default: Any, cast=float, *, zero: bool = False):
    """A positive number (or zero, when ``zero``); ``default`` when unset or empty."""
    raw = environ.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise ConfigError(f"{key}={raw!r} must be {'zero or more' if zero else 'greater than zero'}")
    return value


def _list(environ: Mapping[str, str], key: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in environ.get(key, "").split(",") if item.strip())


def read_secret(key: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A secret's value: ``$KEY``, else the content of the file ``$KEY_FILE`` names (a mounted Secret).

    Every secret setting accepts both, so the cluster mounts secrets as files while ``.env`` keeps
    plain values; a value read from a file is registered for redaction (no variable holds it).
    """
    if environ is None:
        _load_dotenv_once()
        environ = os.environ
    value = environ.get(key, "").strip()
    if value:
        return value
    path = environ.get(f"{key}_FILE", "").strip()
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
    except FileNotFoundError:
        return None  # a declared secret the Secret does not hold: its mount has no such file
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}_FILE={path!r} cannot be read: {type(exc).__name__}") from None  # never the content
    if not value:
        raise ConfigError(f"{key}_FILE={path!r} is empty")
    register_secret(value)
    return value


def _mounted_token_path(environ: Mapping[str, str]) -> str:
    """``$DEVENV_SECRETS_DIR/DEVENV_AUTH_TOKEN`` when the Secret holds a token, else "".

    The generated manifests mount every service's secrets there, the token as an optional key:
    no file means the Secret holds no token (auth off, as with no DEVENV_AUTH_TOKEN in .env). The
    folder itself must exist, so a wrong DEVENV_SECRETS_DIR is an error, not auth silently off.
    """
    folder = environ.get("DEVENV_SECRETS_DIR", "").strip()
    if not folder:
        return ""
    if not os.path.isdir(folder):
        raise ConfigError(f"DEVENV_SECRETS_DIR={folder!r} is not a directory (the folder of mounted secrets)")
    path = os.path.join(folder, "DEVENV_AUTH_TOKEN")
    return path if os.path.exists(path) else ""


def _state_key(environ: Mapping[str, str]) -> bytes | None:
    key = read_secret("DEVENV_STATE_SECRET", environ)
    if key is not None and len(key) < 16:
        raise ConfigError("DEVENV_STATE_SECRET is too short: at least 16 random characters (openssl rand -hex 32)")
    return None if key is None else key.encode()


def _auth_token(environ: Mapping[str, str]) -> str | None:
    """``DEVENV_AUTH_TOKEN``, else the first line of ``DEVENV_AUTH_TOKEN_FILE`` (a mounted Secret),
    else ``$DEVENV_SECRETS_DIR/DEVENV_AUTH_TOKEN`` if the Secret holds one."""
    token = environ.get("DEVENV_AUTH_TOKEN", "").strip()
    path = environ.get("DEVENV_AUTH_TOKEN_FILE", "").strip()
    label = f"DEVENV_AUTH_TOKEN_FILE={path!r}"
    if not token and not path:
        path = _mounted_token_path(environ)
        label = f"the mounted token {path!r} (DEVENV_SECRETS_DIR)"
    if not token and path:
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            # Name the file, never its content.
            raise ConfigError(f"{label} cannot be read: {type(exc).__name__}") from None
        if not token:
            raise ConfigError(f"{label} is empty")
        register_secret(token)  # not in the environment, so redaction must be told about it
    if not token:
        return None
    source = "DEVENV_AUTH_TOKEN" if environ.get("DEVENV_AUTH_TOKEN", "").strip() else label
    if len(token) < MIN_TOKEN_LEN or any(c.isspace() for c in token) or not token.isprintable():
        raise ConfigError(
            f"the token in {source} must be at least {MIN_TOKEN_LEN} printable characters without spaces"
            " (e.g. `openssl rand -hex 32`)"
        )
    return token


@dataclass(frozen=True)
class Settings:
    k8s_mode: bool = False
    redis_url: str | None = None
    #: Redis's password when ``REDIS_URL`` carries none: ``REDIS_PASSWORD`` or ``REDIS_PASSWORD_FILE``.
    redis_password: str | None = field(default=None, repr=False)
    url_template: str | None = None
    #: Client: the most one call may take, retries included (seconds).
    timeout: float = 30.0
    #: Client: how often an idempotent call is retried (backoff 0.1 s doubling to 2 s, jittered).
    retries: int = 10
    max_body_bytes: int = 1024 * 1024
    debug: bool = False
    log_level: str = "INFO"
    allowed_origins: tuple[str, ...] = ()
    services_package: str = "services"
    #: Bearer token: required by the server on /mcp and /tools/*, sent by MCPClient. Never printed.
    auth_token: str | None = field(default=None, repr=False)
    #: Whether /metrics needs the token too (when there is one).
    metrics_auth: bool = False
    #: Host header names accepted on /mcp and /tools/* (loopback names always are); empty: no check,
    #: unless ``bind_host`` is loopback.
    allowed_hosts: tuple[str, ...] = ()
    #: The interface the server listens on (``devenv serve --host``); loopback turns the Host check on.
    bind_host: str | None = None
    #: Server: seconds a tool may run before the call fails with a timeout ``ToolError``.
    tool_timeout: float = 60.0
    #: Server: tool calls running at once; more are answered 503 with Retry-After.
    max_concurrency: int = 64
    #: Server: requests per second per token (per client address without auth); None: unlimited.
    rate_limit: float | None = None
    #: Server: the token bucket's size (default: one second's worth, at least 1).
    rate_burst: int | None = None
    #: Server: seconds between SIGTERM (``/ready`` turns 503) and closing the listener.
    shutdown_delay: float = 0.0
    #: Server: the secret that seals 2026-07-28 ``requestState`` (``DEVENV_STATE_SECRET`` or ``_FILE``);
    #: every replica of a service needs the same one. None: a key made up per process.
    state_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            k8s_mode=_flag(environ, "K8S_MODE"),
            redis_url=environ.get("REDIS_URL") or None,
            redis_password=read_secret("REDIS_PASSWORD", environ),
            url_template=environ.get("DEVENV_URL_TEMPLATE") or None,
            timeout=_number(environ, "DEVENV_TIMEOUT", 30.0),
            retries=_number(environ, "DEVENV_RETRIES", 10, int, zero=True),
            max_body_bytes=_number(environ, "DEVENV_MAX_BODY_BYTES", 1024 * 1024, int),
            debug=_flag(environ, "DEVENV_DEBUG"),
            log_level=environ.get("DEVENV_LOG_LEVEL", "INFO").upper(),
            allowed_origins=_list(environ, "DEVENV_ALLOWED_ORIGINS"),
            services_package=environ.get("DEVENV_SERVICES_PACKAGE", "services"),
            auth_token=_auth_token(environ),
            metrics_auth=_flag(environ, "DEVENV_METRICS_AUTH"),
            allowed_hosts=_list(environ, "DEVENV_ALLOWED_HOSTS"),
            bind_host=environ.get("DEVENV_BIND_HOST", "").strip() or None,
            tool_timeout=_number(environ, "DEVENV_TOOL_TIMEOUT", 60.0),
            max_concurrency=_number(environ, "DEVENV_MAX_CONCURRENCY", 64, int),
            rate_limit=_number(environ, "DEVENV_RATE_LIMIT", None),
            rate_burst=_number(environ, "DEVENV_RATE_BURST", None, int),
            shutdown_delay=_number(environ, "DEVENV_SHUTDOWN_DELAY", 0.0, zero=True),
            state_key=_state_key(environ),
        )


_dotenv_loaded = False


def _load_dotenv_once() -> None:
    """Fill unset variables from ``./.env`` (or ``$DEVENV_ENV_FILE``); real env vars win."""
    global _dotenv_loaded
    if _dotenv_loaded:
        return
    _dotenv_loaded = True
    path = os.environ.get("DEVENV_ENV_FILE", ".env")
    if os.path.isfile(path):
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


def get_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (default: the process environment, after ``.env``)."""
    if environ is None:
        _load_dotenv_once()
        environ = os.environ
    return Settings.from_env(environ)


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


_registered: set[str] = set()
_registered_lock = threading.Lock()
#: Bumped whenever a secret is registered, so formatters that cache the list know to refresh it.
registered_version = 0


def register_secret(value: str) -> None:
    """Mask ``value`` wherever devenv redacts, though no environment variable holds it (a token file)."""
    global registered_version
    if len(value) < _MIN_SECRET_LEN or value in _registered:
        return
    with _registered_lock:
        _registered.add(value)
        registered_version += 1


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-looking variables and registered secrets, longest first (so a secret inside
    another is masked whole)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if len(v) >= _MIN_SECRET_LEN and is_secret_key(k)}
    values.update(_registered)
    return sorted(values, key=len, reverse=True)


def redact(text: str, environ: Mapping[str, str] | None = None, *, secrets: list[str] | None = None) -> str:
    """Mask URL passwords and the values of secret-looking environment variables in ``text``."""
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{_MASK}@", text)
    for value in secret_values(environ) if secrets is None else secrets:
        if value in text:
            text = text.replace(value, _MASK)
    return text


def redact_mapping(
    values: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, secrets: list[str] | None = None
) -> dict[str, Any]:
    """A copy of ``values`` with secret keys masked and secrets inside other values masked."""
    if secrets is None:
        secrets = secret_values(environ)  # once per mapping, not once per string in it
    return {key: _MASK if is_secret_key(key) else _redact_value(value, secrets) for key, value in values.items()}


def _redact_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets=secrets)
    if isinstance(value, Mapping):
        return redact_mapping(value, secrets=secrets)
    if isinstance(value, (list, tuple)):
        return [_redact_value(v, secrets) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(str(value), secrets=secrets)  # an exception or any object: as the log would print it
