from __future__ import annotations

import re
import sys
from contextvars import ContextVar
from typing import Any

__all__ = ["TRACEPARENT", "Transport", "check_traceparent", "content_value", "current_traceparent"]

# The W3C trace parent of the work in progress: set by whoever traces it (devenv's tracing or
# the caller), read by every MCP request made meanwhile and sent in ``_meta`` (and as a header).
TRACEPARENT: ContextVar[str | None] = ContextVar("devenv_traceparent", default=None)
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def check_traceparent(value: str) -> str:
    if not isinstance(value, str) or not _TRACEPARENT.fullmatch(value) or value.startswith("ff"):
        raise ValueError(
            f"traceparent must be W3C 'version-traceid-spanid-flags' (e.g. 00-<32 hex>-<16 hex>-01), got {value!r}"
        )
    return value


def current_traceparent() -> str | None:
    """The contextvar's trace parent, else the active OpenTelemetry span's (if OpenTelemetry is loaded)."""
    value = TRACEPARENT.get()
    if value is not None:
        return value
    trace = sys.modules.get("opentelemetry.trace")  # never imported here: only if the app uses it
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def content_value(content: list[Any]) -> Any:
    """What MCPClient returns for a result of content blocks: one text block is its text, else the list."""
    if len(content) == 1 and isinstance(content[0], dict) and content[0].get("type") == "text":
        return content[0].get("text", "")
    return content


class Transport:
    """The contract every transport meets. Results are JSON values; failures are ``DevenvError``s."""

    def call_tool(self, service: str, tool: str, arguments: dict[str, Any], options: Any = None) -> Any:
        raise NotImplementedError

    async def acall_tool(self, service: str, tool: str, arguments: dict[str, Any], options: Any = None) -> Any:
        raise NotImplementedError

    def list_tools(self, service: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def alist_tools(self, service: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class WrappedTransport(Transport):
    """A transport around ``inner`` that adds something to its tool calls (a span, a timing) and
    hands everything else through unchanged, other transports' extra methods included."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    def list_tools(self, service: str) -> list[dict[str, Any]]:
        return self.inner.list_tools(service)

    async def alist_tools(self, service: str) -> list[dict[str, Any]]:
        return await self.inner.alist_tools(service)

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
