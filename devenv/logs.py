"""One JSON object per log line, with secrets masked before anything is written."""

from __future__ import annotations

import json
import logging
import sys
import time
from functools import lru_cache
from typing import Any

from . import config
from .config import _redact_value, is_secret_key, redact, secret_values

__all__ = ["JsonFormatter", "configure_logging"]

# Standard record attributes, and uvicorn's ANSI-coloured duplicate of the message.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
_PLAIN = (bool, int, float, type(None))
_MASK = "***"

_secret_key = lru_cache(maxsize=1024)(is_secret_key)  # log lines repeat the same few keys


def _masked(key: str, value: Any, secrets: list[str]) -> Any:
    if _secret_key(key):
        return _MASK
    if isinstance(value, str):
        return redact(value, secrets=secrets)  # also without secrets: a URL's password
    if isinstance(value, _PLAIN):
        return value
    return _redact_value(value, secrets)  # nested values, objects: as the log would print them


class JsonFormatter(logging.Formatter):
    """Secret values are read from the environment once, when the formatter is made (at start-up):
    scanning ``os.environ`` per line would cost more than the rest of a tool call. Secrets that
    are not in the environment (a token read from a file) are picked up when they are registered."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets = secret_values()
        self._version = config.registered_version
        self._second, self._stamp = -1, ""

    def _current_secrets(self) -> list[str]:
        if self._version != config.registered_version:
            self._version = config.registered_version
            self._secrets = sorted(set(self._secrets) | set(secret_values()), key=len, reverse=True)
        return self._secrets

    def format(self, record: logging.LogRecord) -> str:
        # Once per call on a busy server: no per-line strftime, no redaction walk over values
        # that cannot hold a secret.
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        secrets = self._current_secrets()
        entry = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _masked("msg", record.getMessage(), secrets),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED:
                entry[key] = _masked(key, value, secrets)
        if record.exc_info:
            entry["exc"] = _masked("exc", self.formatException(record.exc_info), secrets)
        # Masked before encoding: JSON escapes would hide a secret containing quotes or non-ASCII.
        return json.dumps(entry, default=str)  # json's spacing: what people and tests grep for


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for devenv's loggers and uvicorn's, replacing their handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("devenv", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # devenv logs each call itself, once
