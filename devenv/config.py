"""Settings from the environment (and a git-ignored ``.env``), and secret redaction.

Every knob is an environment variable so the same code is configured by a shell, a
``.env`` file, a Docker ``-e`` or a Kubernetes ConfigMap/Secret without change.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["Settings", "get_settings", "is_secret_key", "redact", "redact_mapping", "secret_values"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

_SECRET_KEY = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.IGNORECASE)
_MASK = "***"


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


def _number(environ: Mapping[str, str], key: str, default: float, cast=float):
    raw = environ.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{key}={raw!r} must be greater than zero")
    return value


@dataclass(frozen=True)
class Settings:
    k8s_mode: bool = False
    redis_url: str | None = None
    url_template: str | None = None
    timeout: float = 30.0
    max_body_bytes: int = 1024 * 1024
    debug: bool = False
    log_level: str = "INFO"
    allowed_origins: tuple[str, ...] = ()
    services_package: str = "services"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        origins = tuple(o.strip() for o in environ.get("DEVENV_ALLOWED_ORIGINS", "").split(",") if o.strip())
        return cls(
            k8s_mode=_flag(environ, "K8S_MODE"),
            redis_url=environ.get("REDIS_URL") or None,
            url_template=environ.get("DEVENV_URL_TEMPLATE") or None,
            timeout=_number(environ, "DEVENV_TIMEOUT", 30.0),
            max_body_bytes=_number(environ, "DEVENV_MAX_BODY_BYTES", 1024 * 1024, int),
            debug=_flag(environ, "DEVENV_DEBUG"),
            log_level=environ.get("DEVENV_LOG_LEVEL", "INFO").upper(),
            allowed_origins=origins,
            services_package=environ.get("DEVENV_SERVICES_PACKAGE", "services"),
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


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-looking variables, longest first (so a secret inside another is masked whole)."""
    env = os.environ if environ is None else environ
    # Short values would mask ordinary words everywhere; real secrets are longer.
    values = {v for k, v in env.items() if len(v) >= 6 and is_secret_key(k)}
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
    return value
