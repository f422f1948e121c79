"""How MCPClient reaches a tool: one small contract, an in-process and an HTTP implementation.

``HTTPTransport`` is imported on first use, so in-process users never load the HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Transport
from .inprocess import InProcessTransport

__all__ = ["HTTPTransport", "InProcessTransport", "Transport"]


def __getattr__(name: str) -> Any:
    if name == "HTTPTransport":
        from .http import HTTPTransport

        return HTTPTransport
    raise AttributeError(name)


if TYPE_CHECKING:
    from .http import HTTPTransport
