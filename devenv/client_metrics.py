"""``mcp.client.operation.duration``: how long each ``MCPClient`` tool call took, as its caller saw it.

OpenTelemetry's MCP convention, as Prometheus spells it: ``mcp_client_operation_duration_seconds``
with ``mcp_method_name`` (``tools/call``), ``gen_ai_tool_name``, ``gen_ai_operation_name``
(``execute_tool``), ``error_type`` (``tool_error`` when the result had ``isError``, the devenv
error's class for a failed call such as ``ServiceUnavailable``, ``_OTHER`` for anything else,
empty on success), ``peer_service`` (the devenv service called) and ``devenv_service`` (the
caller). Recorded by ``MCPClient`` in a process that serves a devenv service (``devenv serve``
turns it on; the series appear on that service's ``/metrics``) or that traces; otherwise
``measured_transport`` hands back the client's transport itself, so an unmeasured call runs
exactly the code it ran before. Label values come from the calling code (services and tools it
names), never from a remote peer.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from . import tracing
from .errors import DevenvError, InvalidArguments, ToolError
from .transports.base import Transport, WrappedTransport

__all__ = ["collector", "enable", "enabled", "measured_transport"]

_lock = threading.Lock()
_served = False  # set by the serving process (server.app_from_env)
_histogram: Any = None  # a prometheus_client Histogram, made (and the library imported) on first use


def enable() -> None:
    """Measure every ``MCPClient`` made from now on in this process (a served one)."""
    global _served
    _served = True


def enabled() -> bool:
    return _served or tracing.enabled()


_LABELS = (
    "devenv_service",
    "peer_service",
    "mcp_method_name",
    "gen_ai_tool_name",
    "gen_ai_operation_name",
    "error_type",
)


def _instrument() -> Any:
    global _histogram
    if _histogram is None:
        with _lock:
            if _histogram is None:
                from prometheus_client import Histogram

                from .metrics import BUCKETS

                _histogram = Histogram(
                    "mcp_client_operation_duration_seconds",
                    "OpenTelemetry mcp.client.operation.duration: MCPClient tool calls, sent to answered.",
                    _LABELS,
                    buckets=BUCKETS,
                    registry=None,  # each service's /metrics shows it through ``collector``
                )
    return _histogram


class _Collector:
    """The histogram for a service's registry; nothing until a call was measured."""

    def collect(self) -> Iterator[Any]:
        if _histogram is not None:
            yield from _histogram.collect()


collector = _Collector()


def _error_type(exc: BaseException) -> str:
    if isinstance(exc, (ToolError, InvalidArguments)):
        return "tool_error"  # the convention's value for a result with isError
    if isinstance(exc, DevenvError):
        return type(exc).__name__  # a bounded set: devenv's own error classes
    return "_OTHER"


class _MeasuredTransport(WrappedTransport):
    """A transport that times each tool call into the histogram."""

    def __init__(self, inner: Transport) -> None:
        super().__init__(inner)
        self.histogram = _instrument()
        self.children: dict[tuple[str, str, str, str], Any] = {}
        # The process's own service (devenv serve sets it before any client exists); a traced
        # server span names the caller more precisely, e.g. in a test process with several.
        self.fallback_caller = os.environ.get("DEVENV_SERVICE") or "devenv-client"
        self.current_service = tracing.current_service

    def _observe(self, service: str, tool: str, error_type: str, seconds: float) -> None:
        caller = self.current_service() or self.fallback_caller
        key = (caller, service, tool, error_type)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = self.histogram.labels(
                caller, service, "tools/call", tool, "execute_tool", error_type
            )
        child.observe(seconds)

    def call_tool(self, service: str, tool: str, arguments: dict[str, Any], *args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            result = self.inner.call_tool(service, tool, arguments, *args, **kw)
        except Exception as exc:
            self._observe(service, tool, _error_type(exc), time.perf_counter() - start)
            raise
        self._observe(service, tool, "", time.perf_counter() - start)
        return result

    async def acall_tool(self, service: str, tool: str, arguments: dict[str, Any], *args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            result = await self.inner.acall_tool(service, tool, arguments, *args, **kw)
        except Exception as exc:
            self._observe(service, tool, _error_type(exc), time.perf_counter() - start)
            raise
        self._observe(service, tool, "", time.perf_counter() - start)
        return result

    def __repr__(self) -> str:
        return f"measured({self.inner!r})"


def measured_transport(transport: Transport) -> Transport:
    """``transport`` with each tool call timed when measuring is on; ``transport`` itself when off."""
    return _MeasuredTransport(transport) if enabled() else transport
