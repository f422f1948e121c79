"""One JSON object per log line, with secrets masked before anything is written."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from functools import lru_cache
from typing import Any

from . import config
from .config import _redact_value, is_secret_key, redact, secret_values

__all__ = ["JsonFormatter", "JsonHandler", "configure_logging", "sole_json_handler"]

# Standard record attributes, and uvicorn's ANSI-coloured duplicate of the message.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
_PLAIN = (bool, int, float, type(None))
_MASK = "***"

_secret_key = lru_cache(maxsize=1024)(is_secret_key)  # log lines repeat the same few keys
_encode = json.JSONEncoder(default=str).encode  # made once: json.dumps(..., default=str) makes one per call
_clock = [-1, ""]  # the second last stamped, and its text: no strftime per line on a busy server


def _timestamp(created: float) -> str:
    second = int(created)
    if second != _clock[0]:
        _clock[:] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_clock[1]}.{int((created - second) * 1000):03d}Z"


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

    def _current_secrets(self) -> list[str]:
        if self._version != config.registered_version:
            self._version = config.registered_version
            self._secrets = sorted(set(self._secrets) | set(secret_values()), key=len, reverse=True)
        return self._secrets

    def format(self, record: logging.LogRecord) -> str:
        # No redaction walk over values that cannot hold a secret.
        secrets = self._current_secrets()
        entry = {
            "ts": _timestamp(record.created),
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
        return _encode(entry)  # json.dumps's spacing: what people and tests grep for


class JsonHandler(logging.StreamHandler):
    """configure_logging's handler: JsonFormatter's lines, and ``write_fields`` for the call log.

    The call log is one line per tool call on a busy server. Made as a LogRecord and passed
    through ``Logger.handle`` and the formatter's masking walk, that line cost a third of a
    trivial call's CPU; ``write_fields`` makes the same line from fields the caller vouches
    for (names from the code, values already redacted) when this handler is the only one
    that would see it (``sole_json_handler``)."""

    def write_fields(
        self, logger: str, level: str, msg: str, fixed: tuple[tuple[str, Any], ...], varying: dict[str, Any]
    ) -> None:
        """One line, as JsonFormatter writes it for a record with ``fixed`` then ``varying`` as its
        extra fields. ``fixed`` repeats from line to line (service, tool, status): encoded once."""
        rest = "".join([f", {_str(key)}: {_value(value)}" for key, value in varying.items()])
        line = f'{{"ts": "{_timestamp(time.time())}", {_fixed_part(logger, level, msg, fixed)}{rest}}}'
        try:
            with self.lock:
                self.stream.write(line + self.terminator)
                self.stream.flush()
        except Exception:  # as logging does: a failing log write never fails the call
            self.handleError(logging.makeLogRecord({"name": logger, "msg": line}))


@lru_cache(maxsize=4096)
def _fixed_part(logger: str, level: str, msg: str, fixed: tuple[tuple[str, Any], ...]) -> str:
    return _encode({"level": level, "logger": logger, "msg": msg, **dict(fixed)})[1:-1]


_str = json.encoder.encode_basestring_ascii  # json.dumps's own string encoder (C)


def _value(value: Any) -> str:
    """``json.dumps(value)``, without its per-call encoder set-up for the plain values a line holds."""
    if type(value) is str:
        return _str(value)
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    if type(value) is int:
        return int.__repr__(value)
    return _encode(value)


def sole_json_handler(logger: logging.Logger, level: int) -> JsonHandler | None:
    """The JsonHandler that a ``level`` record of ``logger`` reaches, if it is the only handler
    that does and no filter is on the way (else None: the record is made the usual way)."""
    found = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if level < handler.level:
                continue
            if found is not None or type(handler) is not JsonHandler or handler.filters:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for devenv's loggers and uvicorn's, replacing their handlers."""
    handler = JsonHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("devenv", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # devenv logs each call itself, once
