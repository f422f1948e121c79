"""OpenTelemetry traces of tool calls, per the MCP semantic conventions; nothing at all when off.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set
or ``DEVENV_TRACING=true``; off when neither is, or ``OTEL_SDK_DISABLED=true`` /
``OTEL_TRACES_EXPORTER=none``. Off, opentelemetry is never imported and the two hooks hand
back what they were given (``trace_server_calls`` the runtime's ``call``, ``traced_transport``
the client's transport), so an untraced call runs exactly the code it ran before.

Spans: ``tools/call {tool}``, SERVER around ``_Runtime.call`` (and around an in-process
call, so a unit test sees what a deployment sees) and CLIENT around ``MCPClient.call``.
Attributes: ``mcp.method.name``, ``gen_ai.tool.name``, ``gen_ai.operation.name``
(``execute_tool``), ``jsonrpc.request.id``, ``mcp.protocol.version``, ``error.type``
(``tool_error`` when the result has ``isError``). Context travels as W3C ``traceparent``
in ``params._meta`` (MCP 2026-07-28) and in the HTTP header for older peers. Each
service's spans carry its devenv name as ``service.name`` unless ``OTEL_SERVICE_NAME``
is set. Arguments and results are recorded only with ``DEVENV_TRACE_ARGUMENTS=true``,
and then with secrets masked. A broken endpoint or a collector that does not answer
never fails a call: one warning, and spans are dropped until it answers.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidArguments, ToolError
from .transports.base import Transport, WrappedTransport

__all__ = [
    "IncomingHeaders",
    "configure",
    "current_service",
    "disable",
    "enabled",
    "trace_server_calls",
    "traced_transport",
]

logger = logging.getLogger("devenv.tracing")

_TRUE = {"1", "true", "yes", "on"}
_MAX_ATTRIBUTE = 4096  # recorded arguments and results are cut here: a span is not a data store
_RETRY_EXPORT_AFTER = 5.0  # seconds a failing collector is left alone

_lock = threading.Lock()
_decided = False
_on = False
_processor: Any = None
_providers: dict[str, Any] = {}  # service.name -> its tracer
_record_payloads = False
_otel: Any = None  # the few opentelemetry names used on the hot path, imported when tracing turns on

# The service whose server span is current: a call it makes is a client span of that service.
_current_service: contextvars.ContextVar[str | None] = contextvars.ContextVar("devenv_traced_service", default=None)
# traceparent, tracestate, MCP-Protocol-Version of the HTTP request being served.
_incoming: contextvars.ContextVar[tuple[str | None, str | None, str | None] | None] = contextvars.ContextVar(
    "devenv_incoming_trace", default=None
)


def enabled() -> bool:
    """Whether spans are made; decided once, from the environment, on first use."""
    if not _decided:
        with _lock:
            if not _decided:
                _decide(os.environ)
    return _on


def configure(exporter: Any, *, batch: bool = False, record_payloads: bool | None = None) -> None:
    """Turn tracing on with ``exporter`` (an OTel ``SpanExporter``), e.g. an in-memory one in a test.

    Apps and clients made after this are traced; ``disable()`` turns it off again.
    """
    global _decided
    with _lock:
        _shutdown()
        _start(exporter, batch=batch)
        if record_payloads is not None:
            _set_record_payloads(record_payloads)
        _decided = True


def disable() -> None:
    """Flush and stop tracing; the next ``enabled()`` reads the environment again."""
    global _decided
    with _lock:
        _shutdown()
        _decided = False


# -- deciding -------------------------------------------------------------------------------


def _decide(env: Mapping[str, str]) -> None:
    global _decided
    _decided = True
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return
    variable = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    endpoint = env.get(variable, "").strip()
    if not endpoint:
        variable, endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT", env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if not endpoint and env.get("DEVENV_TRACING", "").strip().lower() not in _TRUE:
        return
    if endpoint:
        problem = _endpoint_problem(endpoint)
        if problem:
            logger.warning("%s=%r %s; tracing is off, tool calls go on", variable, endpoint, problem)
            return
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "").strip()
    if protocol and protocol != "http/protobuf":
        logger.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%r is not supported: devenv exports OTLP as http/protobuf (the collector's"
            " port 4318); tracing is off, tool calls go on",
            protocol,
        )
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        logger.warning(
            "%s is set but the OpenTelemetry SDK is not installed (pip install 'devenv[otel]'); tracing is off",
            variable if endpoint else "DEVENV_TRACING",
        )
        return
    where = endpoint or "http://localhost:4318"
    _start(_Guarded(OTLPSpanExporter(), where), batch=True)
    _set_record_payloads(env.get("DEVENV_TRACE_ARGUMENTS", "").strip().lower() in _TRUE)


def _endpoint_problem(endpoint: str) -> str | None:
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL like http://localhost:4318"
    return None


def _set_record_payloads(value: bool) -> None:
    global _record_payloads
    _record_payloads = value


def _start(exporter: Any, *, batch: bool) -> None:
    global _on, _processor, _otel
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _otel = _Otel(trace, SpanKind, Status, StatusCode, TraceContextTextMapPropagator())
    _processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    _on = True


def _shutdown() -> None:
    global _on, _processor
    if _processor is not None:
        _processor.shutdown()
    _on, _processor = False, None
    _providers.clear()


@atexit.register
def _flush_at_exit() -> None:
    if _processor is not None:
        _processor.shutdown()


class _Otel:
    def __init__(self, trace: Any, kind: Any, status: Any, code: Any, propagator: Any) -> None:
        self.trace, self.SpanKind, self.Status, self.StatusCode, self.propagator = trace, kind, status, code, propagator


class _Guarded:
    """Wraps the OTLP exporter: a failed export is one warning, then spans are dropped for a while."""

    def __init__(self, inner: Any, where: str) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.inner, self.where, self.result = inner, where, SpanExportResult
        self.down_until = 0.0
        self.warned = False
        # The exporter logs every failed batch itself; this wrapper says it once instead.
        logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.CRITICAL)

    def export(self, spans: Any) -> Any:
        if time.monotonic() < self.down_until:
            return self.result.FAILURE
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # a broken exporter must not take the batch thread down
            result, reason = self.result.FAILURE, f"{type(exc).__name__}: {exc}"
        else:
            reason = "it refused them or did not answer"
        if result == self.result.FAILURE:
            self.down_until = time.monotonic() + _RETRY_EXPORT_AFTER
            if not self.warned:
                self.warned = True
                logger.warning(
                    "spans not exported to the OTLP collector at %s (%s); tool calls go on, spans are dropped"
                    " until it takes them (said once)",
                    self.where,
                    reason,
                )
        elif self.warned:
            self.warned = False
            logger.warning("the OTLP collector at %s takes spans again", self.where)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


# -- spans ----------------------------------------------------------------------------------


def _tracer(service: str) -> Any:
    """One tracer per service name (its own resource), made once: ``get_tracer`` is slow."""
    name = os.environ.get("OTEL_SERVICE_NAME") or service
    tracer = _providers.get(name)
    if tracer is None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        with _lock:
            tracer = _providers.get(name)
            if tracer is None:
                provider = TracerProvider(resource=Resource.create({"service.name": name}), shutdown_on_exit=False)
                provider.add_span_processor(_processor)
                tracer = _providers[name] = provider.get_tracer("devenv")
    return tracer


def _base_attributes(tool: str) -> dict[str, Any]:
    return {"mcp.method.name": "tools/call", "gen_ai.tool.name": tool, "gen_ai.operation.name": "execute_tool"}


def _payload(value: Any) -> str:
    from . import protocol
    from .config import redact, redact_mapping

    masked = redact_mapping(value) if isinstance(value, Mapping) else value
    try:
        text = protocol.dumps(masked).decode()
    except TypeError:
        text = repr(masked)
    return redact(text)[:_MAX_ATTRIBUTE]


def _failed(span: Any, exc: BaseException) -> None:
    if isinstance(exc, (InvalidArguments, ToolError)):
        span.set_attribute("error.type", "tool_error")  # the result had isError: the convention's value
        detail = exc.error_type if isinstance(exc, ToolError) else "InvalidArguments"
    else:
        detail = type(exc).__name__.lstrip("_")
        span.set_attribute("error.type", detail)
    span.set_status(_otel.Status(_otel.StatusCode.ERROR, detail))


def _parent(meta: Any) -> Any:
    """The caller's context: ``params._meta.traceparent``, else the HTTP header, else the current one."""
    if isinstance(meta, Mapping) and isinstance(meta.get("traceparent"), str):
        carrier = {k: v for k, v in meta.items() if k in ("traceparent", "tracestate") and isinstance(v, str)}
        return _otel.propagator.extract(carrier)
    incoming = _incoming.get()
    if incoming is not None and incoming[0]:
        return _otel.propagator.extract({"traceparent": incoming[0], "tracestate": incoming[1] or ""})
    return None


@contextmanager
def _server_span(service: str, tool: str, transport: str, meta: Any, request_id: Any, arguments: Any) -> Iterator[Any]:
    attributes = _base_attributes(tool)
    attributes["devenv.transport"] = transport
    if request_id is not None:
        attributes["jsonrpc.request.id"] = str(request_id)
    incoming = _incoming.get()
    if incoming is not None:
        attributes["network.transport"] = "tcp"
        attributes["network.protocol.name"] = "http"
        if incoming[2]:
            attributes["mcp.protocol.version"] = incoming[2]
    if _record_payloads:
        attributes["gen_ai.tool.call.arguments"] = _payload(arguments)
    parent = None if transport == "inprocess" else _parent(meta)  # in-process: the client span is the parent
    span = _tracer(service).start_span(
        f"tools/call {tool}", context=parent, kind=_otel.SpanKind.SERVER, attributes=attributes
    )
    token = _current_service.set(service)
    try:
        with _otel.trace.use_span(span, record_exception=False, set_status_on_exception=False):
            yield span
    except BaseException as exc:
        _failed(span, exc)  # before end(): an ended span takes no more attributes
        raise
    finally:
        _current_service.reset(token)
        span.end()


def current_service() -> str | None:
    """The service whose SERVER span is current (tracing on), so its client calls are its own."""
    return _current_service.get()


def trace_server_calls(call: Callable[..., Any], service: str) -> Callable[..., Any]:
    """``call`` (``_Runtime.call``) with a SERVER span around each tool call; ``call`` itself when off."""
    if not enabled():
        return call

    async def traced(
        tool: Any, arguments: Any, transport: str, *args: Any, meta: Any = None, request_id: Any = None, **kw: Any
    ) -> Any:
        with _server_span(service, tool.name, transport, meta, request_id, arguments) as span:
            result = await call(tool, arguments, transport, *args, meta=meta, request_id=request_id, **kw)
            if _record_payloads:
                span.set_attribute("gen_ai.tool.call.result", _payload(result))
            return result

    return traced


@contextmanager
def _client_call(service: str, tool: str, inprocess: bool, arguments: Any) -> Iterator[None]:
    caller = _current_service.get() or os.environ.get("DEVENV_SERVICE") or "devenv-client"
    attributes = _base_attributes(tool)
    attributes["devenv.service"] = service
    span = _tracer(caller).start_span(f"tools/call {tool}", kind=_otel.SpanKind.CLIENT, attributes=attributes)
    try:
        with _otel.trace.use_span(span, record_exception=False, set_status_on_exception=False):
            if inprocess:  # no server in between: make the span a server would have made
                with _server_span(service, tool, "inprocess", None, None, arguments):
                    yield
            else:
                yield
    except BaseException as exc:
        _failed(span, exc)
        raise
    finally:
        span.end()


class _TracedTransport(WrappedTransport):
    """A transport with a CLIENT span (and, in-process, the SERVER span) around each call."""

    def __init__(self, inner: Transport, inprocess: bool) -> None:
        super().__init__(inner)
        self.inprocess = inprocess

    def call_tool(self, service: str, tool: str, arguments: dict[str, Any], *args: Any, **kw: Any) -> Any:
        with _client_call(service, tool, self.inprocess, arguments):
            return self.inner.call_tool(service, tool, arguments, *args, **kw)

    async def acall_tool(self, service: str, tool: str, arguments: dict[str, Any], *args: Any, **kw: Any) -> Any:
        with _client_call(service, tool, self.inprocess, arguments):
            return await self.inner.acall_tool(service, tool, arguments, *args, **kw)

    def __repr__(self) -> str:
        return f"traced({self.inner!r})"


def traced_transport(transport: Transport, *, inprocess: bool) -> Transport:
    """``transport`` with client spans when tracing is on; ``transport`` itself when off."""
    return _TracedTransport(transport, inprocess) if enabled() else transport


class IncomingHeaders:
    """ASGI middleware (installed only when tracing is on): the request's trace headers for ``_parent``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        traceparent = tracestate = version = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value.decode("latin-1")
            elif name == b"tracestate":
                tracestate = value.decode("latin-1")
            elif name == b"mcp-protocol-version":
                version = value.decode("latin-1")
        token = _incoming.set((traceparent, tracestate, version))
        try:
            await self.app(scope, receive, send)
        finally:
            _incoming.reset(token)
