"""One JSON object per log line, with secrets masked before anything is written."""

from __future__ import annotations

import json
import logging
import sys
import time

from . import config
from .config import redact_mapping, secret_values

__all__ = ["JsonFormatter", "configure_logging"]

# Standard record attributes, and uvicorn's ANSI-coloured duplicate of the message.
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


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
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # Mask before encoding: JSON escapes would hide a secret containing quotes or non-ASCII.
        return json.dumps(redact_mapping(entry, secrets=self._current_secrets()), default=str)


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
