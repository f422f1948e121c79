"""``create_app(service)``: the ASGI app that serves one service's tools.

- ``POST /mcp``: MCP Streamable HTTP, answering ``application/json`` (SSE when a call streams).
  Hand-written on purpose: a thin wire is what makes a tool call cheap. Stateless, except
  for 2025 clients of a service that needs a session (devenv/sessions.py): then GET is the
  session's notification stream and DELETE its end.
- ``POST /tools/{name}``: plain JSON in and out, one OpenAPI operation per tool.
- ``GET /health``, ``GET /ready``, ``GET /metrics``.

Limits: bodies over ``DEVENV_MAX_BODY_BYTES`` are 413; a tool running longer than its
timeout fails as a ``ToolError`` of type ``TimeoutError``; more than
``DEVENV_MAX_CONCURRENCY`` calls at once are answered 503 with ``Retry-After``. Host,
Origin, the bearer token and the rate limit are checked in front of all this by
``devenv.security.Guard``. On SIGTERM ``/ready`` turns 503 at once; uvicorn then finishes
the calls in flight and exits.
"""

from __future__ import annotations

import asyncio
import errno
import http
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import anyio.to_thread
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import logs, param_headers, protocol, task_runner, tracing
from .config import Settings, get_settings, redact
from .context import Context, check_level
from .errors import (
    CapabilityMissing,
    DevenvError,
    InvalidArguments,
    PromptNotFound,
    RequestFailed,
    ResourceNotFound,
    ToolError,
    ToolNotFound,
)
from .legacy_input import LegacyInputChannel, deliver
from .metrics import ServiceMetrics
from .mrtr import InputRequired, InvalidInput, MultiRoundChannel, StateSealer
from .security import Guard, rate_limiter
from .sessions import LegacySession, SessionStore
from .tasks import EXTENSION as TASKS_EXTENSION
from .tasks import TaskStore, declares_extension
from .tools import Service, TimedOut, Tool

__all__ = ["app_from_env", "create_app"]

call_log = logging.getLogger("devenv.calls")
logger = logging.getLogger("devenv.server")

_JSON = "application/json"
_OVERLOADED = -32000  # JSON-RPC's server-defined range
_RETRY_AFTER = "1"
# Exceptions that say "the input was wrong" rather than "the tool broke": REST answers 400.
# Subclasses count too (a service's UnsafePathError(ValueError) is the caller's fault).
_CLIENT_FAULT_TYPES = (
    ValueError,
    LookupError,
    PermissionError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
)
_CLIENT_FAULTS = {t.__name__ for t in _CLIENT_FAULT_TYPES} | {"KeyError", "IndexError"}
_CLIENT_ERRNOS = {errno.ENAMETOOLONG, errno.ELOOP, errno.EILSEQ}  # a name the file system refuses


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(protocol.dumps(data), status, headers=headers, media_type=_JSON)


def _rpc_error(request_id: Any, code: int, message: str, status: int = 200, data: Any = None) -> Response:
    return _json(protocol.error_response(request_id, code, message, data), status)


class BodyLimit:
    """413 for bodies over ``limit`` bytes, whether or not the client sent Content-Length."""

    class _TooLarge(Exception):
        pass

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _reject(self, scope: Scope) -> Response:
        return self.reject(scope["path"], self.limit)

    @staticmethod
    def reject(path: str, limit: int) -> Response:
        message = f"request body exceeds the limit of {limit} bytes"
        if path == "/mcp":
            return _rpc_error(None, protocol.INVALID_REQUEST, message, 413)
        return _json({"error": {"type": "PayloadTooLarge", "message": message, "limit": limit}}, 413)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await self._reject(scope)(scope, receive, send)
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise self._TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except self._TooLarge:
            if not started:
                await self._reject(scope)(scope, receive, send)


class _Overloaded(Exception):
    """Internal: every slot of the concurrency limit is taken; the tool did not run."""


class _Runtime:
    """Runs tool calls for both wires, with one log line and metrics per call."""

    def __init__(self, service: Service, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.metrics = ServiceMetrics(
            service.name,
            cache_errors=lambda: service.cache_errors,
            tools=service.tools,
            cache_lookups=lambda: service.cache_lookups,
            in_flight=lambda: self.in_flight,
            cache=lambda: service.cache,
            process=True,
        )
        self.tool_definitions = [t.definition() for t in service.tools.values()]  # tools/list, built once
        self.timeouts = {t.name: t.timeout or settings.tool_timeout for t in service.tools.values()}
        # 2026-07-28: arguments mirrored into Mcp-Param-* headers, and the client capabilities a tool
        # needs (`@service.tool(client_capabilities={"sampling": {}})`), read once here.
        self.header_bindings = {
            t.name: b for t in service.tools.values() if (b := param_headers.bindings_for(t.name, t.input_schema))
        }
        self.client_requirements = {
            t.name: t.client_capabilities for t in service.tools.values() if t.client_capabilities
        }
        self.server_meta = {protocol.META_SERVER_INFO: {"name": service.name, "version": service.version}}
        self.sealer = StateSealer(settings.state_key)  # requestState, shared by every replica's key
        self.max_concurrency = settings.max_concurrency
        self.in_flight = 0  # touched on the event loop only
        self.draining = False  # set on SIGTERM (or lifespan shutdown): /ready answers 503
        # The level a legacy (2025-*) client set with logging/setLevel. Legacy /mcp is stateless
        # here, so it holds for this process, not per session; 2026-07-28 sets it per request.
        self.legacy_log_level: str | None = None
        # Legacy sessions, only for a service with something that spans requests: a tool that may
        # ask its client for input (one taking a Context) or resources one can subscribe to.
        self.sessions = SessionStore(settings.max_sessions, settings.session_idle_timeout)
        self.uses_sessions = bool(service.resources) or any(t.context_param for t in service.tools.values())
        self.call = tracing.trace_server_calls(self.call, service.name)  # self.call itself when tracing is off
        #: Task-capable tools run as tasks for clients that declare the tasks extension.
        self.tasks: task_runner.TaskRunner | None = None
        if any(t.task_support != "forbidden" for t in service.tools.values()):
            self.tasks = task_runner.TaskRunner(
                TaskStore(service.cache, service.name), lambda tool, args, ctx: self.call(tool, args, "mcp", ctx)
            )

    async def call(
        self,
        tool: Tool,
        arguments: Any,
        transport: str,
        context: Context | None = None,
        *,
        meta: Any = None,
        request_id: Any = None,
    ) -> Any:
        """Run one tool call; ``meta`` (``params._meta``) and ``request_id`` are for the trace only."""
        if self.in_flight >= self.max_concurrency:
            self.metrics.reject("overloaded")
            raise _Overloaded
        self.in_flight += 1
        start = time.perf_counter()
        status = "ok"
        error: DevenvError | None = None
        try:
            return await tool.arun(
                arguments, timeout=self.timeouts.get(tool.name, self.settings.tool_timeout), context=context
            )
        except InvalidArguments as exc:
            status, error = "invalid_arguments", exc
            raise
        except CapabilityMissing as exc:
            status, error = "invalid_arguments", exc  # the request, not the tool, was wrong
            raise
        except InputRequired:
            status = "input_required"  # the round ended asking the client; the retry is another call
            raise
        except ToolError as exc:
            status, error = ("timeout" if _is_timeout(exc) else "tool_error"), exc
            raise
        finally:
            self.in_flight -= 1
            self.record(tool.name, transport, status, time.perf_counter() - start, error)

    def record(self, tool: str, transport: str, status: str, elapsed: float, error: DevenvError | None) -> None:
        self.metrics.observe(tool, transport, status, elapsed)
        if not call_log.isEnabledFor(logging.INFO):
            return
        fixed = (("service", self.service.name), ("tool", tool), ("transport", transport), ("status", status))
        varying: dict[str, Any] = {"duration_ms": round(elapsed * 1000, 3)}
        if error is not None:
            varying["error"] = redact(str(error))
        sink = logs.sole_json_handler(call_log, logging.INFO)
        if sink is not None:  # devenv's own JSON lines only: the line without a LogRecord
            sink.write_fields(call_log.name, "info", "tool call", fixed, varying)
            return
        # The record made by hand: Logger.info would walk the stack for a caller no one logs.
        entry = logging.LogRecord(call_log.name, logging.INFO, __file__, 0, "tool call", None, None, "record")
        entry.__dict__.update(fixed, **varying)
        call_log.handle(entry)

    def begin_drain(self, why: str) -> None:
        if not self.draining:
            self.draining = True
            logger.info("shutting down (%s): /ready answers 503, calls in flight finish", why)

    def tool_not_found(self, name: str) -> ToolNotFound:
        return ToolNotFound(self.service.name, name, sorted(self.service.tools))

    def capabilities(self) -> dict[str, Any]:
        """What server/discover and initialize declare: exactly what this service honours."""
        return self.service.capabilities()

    def modern_answer(self, request_id: Any, method: str, answer: Response | dict[str, Any]) -> Response:
        """A handler's result as 2026-07-28 sends it: ``resultType``, the server's identity in
        ``_meta``, and cache hints on the results SEP-2549 names. Errors pass through."""
        if isinstance(answer, Response):
            return answer
        return _json(protocol.result_response(request_id, self.complete(method, answer)))

    def complete(self, method: str, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` with the fields every 2026-07-28 result carries (a new dict; ``result`` is kept)."""
        out = {**result, "resultType": result.get("resultType", "complete")}
        meta = result.get("_meta")
        out["_meta"] = {**meta, **self.server_meta} if meta else self.server_meta
        hints = protocol.CACHEABLE_METHODS.get(method)
        if hints is not None:
            out.setdefault("ttlMs", hints[0])
            out.setdefault("cacheScope", hints[1])
        return out


# -- POST /mcp ------------------------------------------------------------------------------


def _echo_id(message: dict[str, Any]) -> Any:
    """The request's id if it is one JSON-RPC allows (a string or an integer), else null: an answer
    never repeats a malformed id (a float, an object, a structure nested a thousand deep)."""
    request_id = message.get("id")
    if isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool)):
        return request_id
    return None


async def _mcp_endpoint(request: Request) -> Response:
    runtime: _Runtime = request.app.state.runtime
    if request.method != "POST":
        return _legacy_get_or_delete(runtime, request)  # only a legacy session has a stream or an end
    # Host, Origin, token and rate limit were checked by security.Guard before this ran.
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != _JSON:
        return _rpc_error(None, protocol.INVALID_REQUEST, f"Content-Type must be {_JSON}, got {content_type!r}", 415)
    try:
        message = protocol.loads(await request.body())
    except protocol.JSONDecodeError as exc:
        return _rpc_error(None, protocol.PARSE_ERROR, f"Parse error: {exc}", 400)
    if isinstance(message, list):
        return _rpc_error(None, protocol.INVALID_REQUEST, "batch requests are not supported (MCP 2025-06-18+)", 400)
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _rpc_error(None, protocol.INVALID_REQUEST, 'not a JSON-RPC 2.0 message: "jsonrpc" must be "2.0"', 400)
    if "method" not in message:
        if "result" in message or "error" in message:
            return _legacy_client_answer(runtime, request.headers, message)
        return _rpc_error(_echo_id(message), protocol.INVALID_REQUEST, '"method" is required', 400)
    method = message["method"]
    if not isinstance(method, str):
        return _rpc_error(_echo_id(message), protocol.INVALID_REQUEST, '"method" must be a string', 400)
    if "id" not in message:
        _, refused = _session_lookup(runtime, request.headers)  # an ended session's notification is 404
        return refused or Response(status_code=202)  # notifications (initialized, cancelled, ...) need no answer
    request_id = message["id"]
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return _rpc_error(None, protocol.INVALID_REQUEST, '"id" must be a string or an integer', 400)
    params = message.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        # 2026-07-28 answers a malformed request 400; the 2025 revisions answered it 200.
        status = 400 if request.headers.get("mcp-protocol-version") in protocol.MODERN_VERSIONS else 200
        return _rpc_error(request_id, protocol.INVALID_PARAMS, '"params" must be an object', status)

    # The era, per request: a modern `_meta` or a modern (or unknown) version header is 2026-07-28;
    # a legacy header, or none with no modern `_meta`, is the 2025 handshake-based protocol.
    headers = request.headers
    version = headers.get("mcp-protocol-version")
    if version is not None:
        version = version.strip(" \t")
    meta = params.get("_meta")
    declares = isinstance(meta, dict) and protocol.META_PROTOCOL_VERSION in meta
    if not declares and version is not None and version not in protocol.SUPPORTED_VERSIONS:
        if version not in protocol.MODERN_VERSIONS:
            return _unsupported_version(request_id, version, protocol.ALL_VERSIONS)
    elif not declares:
        handler = _METHODS.get(method)
        if handler is None or method in _MODERN_ONLY:
            return _rpc_error(request_id, protocol.METHOD_NOT_FOUND, f"Method not found: {method}")
        return await _legacy_dispatch(runtime, headers, handler, method, request_id, params)

    refused = _check_modern(runtime, headers, version, method, params, meta)
    if refused is not None:
        code, text, data, status = refused
        return _rpc_error(request_id, code, text, status, data)
    handler = _METHODS.get(method)
    if handler is None or method in protocol.REMOVED_IN_MODERN:
        why = "removed in MCP 2026-07-28" if method in protocol.REMOVED_IN_MODERN else "not served here"
        return _rpc_error(request_id, protocol.METHOD_NOT_FOUND, f"Method not found: {method} ({why})", 404)
    return runtime.modern_answer(request_id, method, await handler(runtime, request_id, params))


def _legacy_answer(request_id: Any, answer: Response | dict[str, Any]) -> Response:
    return answer if isinstance(answer, Response) else _json(protocol.result_response(request_id, answer))


# -- legacy (2025-*) sessions: see devenv/sessions.py -----------------------------------------

_SESSION_HEADER = "mcp-session-id"
_SESSION_NOT_FOUND = -32001  # what the official SDKs answer with the spec's 404
# The session of the legacy request being handled, for the handlers that need one.
_current_session: ContextVar[LegacySession | None] = ContextVar("devenv_legacy_session", default=None)


def _session_not_found(request_id: Any) -> Response:
    return _rpc_error(
        request_id,
        _SESSION_NOT_FOUND,
        "Session not found: unknown, ended or expired (idle past DEVENV_SESSION_IDLE_TIMEOUT); initialize again",
        404,
    )


def _session_lookup(runtime: _Runtime, headers: Any) -> tuple[LegacySession | None, Response | None]:
    """The legacy session a request names, or the 404 for one we do not know. A 2026-07-28 request
    has no session: its Mcp-Session-Id (if any) means nothing and is ignored."""
    session_id = headers.get(_SESSION_HEADER)
    if session_id is None or headers.get("mcp-protocol-version") in protocol.MODERN_VERSIONS:
        return None, None
    session = runtime.sessions.get(session_id)
    return (session, None) if session is not None else (None, _session_not_found(None))


async def _legacy_dispatch(
    runtime: _Runtime, headers: Any, handler: Any, method: str, request_id: Any, params: dict[str, Any]
) -> Response:
    if method == "initialize":
        return await _legacy_initialize(runtime, request_id, params)
    session, refused = _session_lookup(runtime, headers)
    if refused is not None:
        return _session_not_found(request_id)
    token = _current_session.set(session)
    try:
        return _legacy_answer(request_id, await handler(runtime, request_id, params))
    finally:
        _current_session.reset(token)


async def _legacy_initialize(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    """initialize, opening a session when the service has anything that needs one."""
    result = await _initialize(runtime, request_id, params)
    if not runtime.uses_sessions:
        return _legacy_answer(request_id, result)  # a tools-only service stays stateless
    declared = params.get("capabilities")
    session = runtime.sessions.open(result["protocolVersion"], declared if isinstance(declared, dict) else {})
    if session is None:
        message = (
            f"{runtime.service.name} holds {runtime.sessions.max_sessions} sessions already "
            "(DEVENV_MAX_SESSIONS); retry shortly"
        )
        return _json(protocol.error_response(request_id, _OVERLOADED, message), 503, {"retry-after": _RETRY_AFTER})
    if "resources" in result["capabilities"]:  # subscriptions work within a session
        result["capabilities"] = {**result["capabilities"]}
        result["capabilities"]["resources"] = {**result["capabilities"]["resources"], "subscribe": True}
    return _json(protocol.result_response(request_id, result), headers={_SESSION_HEADER: session.id})


def _legacy_client_answer(runtime: _Runtime, headers: Any, message: dict[str, Any]) -> Response:
    """A client's JSON-RPC response (to our elicitation, sampling or roots request): to its tool."""
    session, refused = _session_lookup(runtime, headers)
    if refused is not None:
        return refused
    if session is None:
        return Response(status_code=202)  # no session, so we asked nothing: as before sessions
    wrong = deliver(session, message)
    if wrong is not None:
        return _rpc_error(None, protocol.INVALID_REQUEST, wrong, 400)
    return Response(status_code=202)


def _legacy_get_or_delete(runtime: _Runtime, request: Request) -> Response:
    """GET: the session's stream of notifications (resources it subscribed to); DELETE: its end.
    Without a session (stateless clients, every 2026-07-28 request) both are 405, as they were."""
    session, refused = _session_lookup(runtime, request.headers)
    if refused is not None:
        return refused
    if session is None:
        return _json({"error": "use POST for MCP messages"}, 405, {"allow": "POST"})
    if request.method == "DELETE":
        runtime.sessions.close(session.id)
        return Response(status_code=200)
    accept = request.headers.get("accept", "")
    if "text/event-stream" not in accept and "*/*" not in accept:
        return _json({"error": "GET /mcp is an SSE stream: Accept must include text/event-stream"}, 406)
    queue = session.open_stream()
    if queue is None:
        return _json({"error": "this session's GET stream is open already (one per session)"}, 409)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b": session stream\n\n"  # a first byte, so proxies and clients see the stream live
            while (item := await queue.get()) is not None:
                yield _sse(item)
        finally:
            session.close_stream(queue)

    return _EventStream(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


async def _resources_subscribe(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response | dict[str, Any]:
    return _subscription(runtime, request_id, params, "resources/subscribe")


async def _resources_unsubscribe(
    runtime: _Runtime, request_id: Any, params: dict[str, Any]
) -> Response | dict[str, Any]:
    return _subscription(runtime, request_id, params, "resources/unsubscribe")


def _subscription(runtime: _Runtime, request_id: Any, params: dict[str, Any], method: str) -> Response | dict[str, Any]:
    if not runtime.service.resources:
        return _not_offered(request_id, runtime, params, method, "resources")
    session = _current_session.get()
    if session is None:
        return _rpc_error(
            request_id,
            protocol.INVALID_REQUEST,
            f"{method} needs a session: send the Mcp-Session-Id that initialize answered",
        )
    uri = params.get("uri")
    try:
        runtime.service.find_resource(uri)
    except Exception as exc:
        return _surface_error(request_id, exc)
    if method == "resources/subscribe":
        session.subscriptions.add(uri)  # type: ignore[arg-type]
    else:
        session.subscriptions.discard(uri)  # type: ignore[arg-type]
    return {}


def _unsupported_version(request_id: Any, requested: Any, supported: tuple[str, ...]) -> Response:
    return _rpc_error(
        request_id,
        protocol.UNSUPPORTED_PROTOCOL_VERSION,
        f"unsupported protocol version {requested!r}; supported: {', '.join(supported)}",
        400,
        {"supported": list(supported), "requested": requested},
    )


_Refusal = tuple[int, str, Any, int]  # JSON-RPC code, message, data, HTTP status


def _check_modern(
    runtime: _Runtime, headers: Any, header: str | None, method: str, params: dict[str, Any], meta: Any
) -> _Refusal | None:
    """The 2026-07-28 checks, in the spec's order: the `_meta` envelope (-32602), the headers that
    mirror the body (-32020), the version (-32022), the tool's marked arguments (-32020), the client
    capabilities the request needs (-32021). None when the request may run."""
    if not isinstance(meta, dict):
        return (
            protocol.INVALID_PARAMS,
            f"params._meta is required at MCP {protocol.MODERN_VERSION}: an object with "
            f"{protocol.META_PROTOCOL_VERSION!r} and {protocol.META_CLIENT_CAPABILITIES!r}",
            None,
            400,
        )
    missing = [k for k in (protocol.META_PROTOCOL_VERSION, protocol.META_CLIENT_CAPABILITIES) if k not in meta]
    if missing:
        return protocol.INVALID_PARAMS, f"params._meta is missing {', '.join(missing)}", {"missing": missing}, 400
    capabilities = meta[protocol.META_CLIENT_CAPABILITIES]
    if not isinstance(capabilities, dict):
        text = f"params._meta[{protocol.META_CLIENT_CAPABILITIES!r}] must be an object"
        return protocol.INVALID_PARAMS, text, None, 400
    declared = meta[protocol.META_PROTOCOL_VERSION]
    if header is None:
        return protocol.HEADER_MISMATCH, "Header mismatch: the MCP-Protocol-Version header is required", None, 400
    if header != declared:
        return (
            protocol.HEADER_MISMATCH,
            f"Header mismatch: MCP-Protocol-Version {header!r} does not match _meta protocolVersion {declared!r}",
            None,
            400,
        )
    mcp_method = headers.get("mcp-method")
    if mcp_method is not None:
        mcp_method = mcp_method.strip(" \t")
    if mcp_method != method:
        what = "is required" if mcp_method is None else f"{mcp_method!r} does not match body method {method!r}"
        return protocol.HEADER_MISMATCH, f"Header mismatch: the Mcp-Method header {what}", None, 400
    name_key = protocol.NAMED_METHODS.get(method)
    if name_key is not None and params.get(name_key) is not None:
        raw = headers.get("mcp-name")
        if raw is None:
            return protocol.HEADER_MISMATCH, f"Header mismatch: the Mcp-Name header is required for {method}", None, 400
        if protocol.decode_header_value(raw) != params[name_key]:
            return (
                protocol.HEADER_MISMATCH,
                f"Header mismatch: Mcp-Name {raw!r} does not match params.{name_key} {params[name_key]!r}",
                None,
                400,
            )
    if declared not in protocol.MODERN_VERSIONS:
        if isinstance(declared, str):
            legacy = " (2025 revisions use the initialize handshake)" if declared in protocol.SUPPORTED_VERSIONS else ""
            return (
                protocol.UNSUPPORTED_PROTOCOL_VERSION,
                f"unsupported protocol version {declared!r} in _meta; supported: {protocol.MODERN_VERSION}{legacy}",
                {"supported": list(protocol.MODERN_VERSIONS), "requested": declared},
                400,
            )
        return protocol.INVALID_PARAMS, "params._meta protocolVersion must be a string", None, 400
    if method == "tools/call":
        tool = runtime.service.tools.get(params.get("name"))  # an unknown tool is the handler's error
        if tool is not None:
            bindings = runtime.header_bindings.get(tool.name)
            if bindings:
                mismatch = _check_param_headers(bindings, params.get("arguments"), headers)
                if mismatch is not None:
                    return protocol.HEADER_MISMATCH, f"Header mismatch: {mismatch}", None, 400
            needed = runtime.client_requirements.get(tool.name)
            if needed:
                absent = {k: v for k, v in needed.items() if k not in capabilities}
                if absent:
                    return (
                        protocol.MISSING_CLIENT_CAPABILITY,
                        f"{tool.name} needs client capabilities the request did not declare: {', '.join(absent)}",
                        {"requiredCapabilities": absent},
                        400,
                    )
    why = task_runner.missing_extension(runtime.service, method, params, capabilities)
    if why is not None:
        return protocol.MISSING_CLIENT_CAPABILITY, why, _NEEDS_TASKS, 400
    return None


def _check_param_headers(bindings: list[param_headers.Binding], arguments: Any, headers: Any) -> str | None:
    """Each `Mcp-Param-*` header and the argument it mirrors: present together and equal, or both absent."""
    for binding in bindings:
        value = binding.value_in(arguments)
        raw = headers.get(binding.header)
        if raw is None:
            if value is not None:
                return f"the {binding.header} header is required: argument {binding.argument!r} is set"
            continue
        if value is None:
            return f"the {binding.header} header is sent but argument {binding.argument!r} is not"
        decoded = protocol.decode_header_value(raw)
        if decoded is None:
            return f"the {binding.header} header holds characters a header value may not carry"
        if not binding.matches(decoded, value):
            return f"{binding.header} {raw!r} does not match argument {binding.argument!r} ({value!r})"
    return None


async def _initialize(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    requested = params.get("protocolVersion")
    version = requested if requested in protocol.SUPPORTED_VERSIONS else protocol.LATEST_VERSION
    result: dict[str, Any] = {
        "protocolVersion": version,
        "capabilities": runtime.capabilities(),
        "serverInfo": {"name": runtime.service.name, "version": runtime.service.version},
    }
    if runtime.service.instructions:
        result["instructions"] = runtime.service.instructions
    return result


async def _discover(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"supportedVersions": list(protocol.ALL_VERSIONS), "capabilities": runtime.capabilities()}
    if runtime.tasks is not None:  # the extension is a 2026-07-28 one: declared here, not in initialize
        result["capabilities"] = {**result["capabilities"], "extensions": {TASKS_EXTENSION: {}}}
    if runtime.service.instructions:
        result["instructions"] = runtime.service.instructions
    return result


async def _ping(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> dict[str, Any]:
    return {}


async def _tools_list(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> dict[str, Any]:
    return {"tools": runtime.tool_definitions}


async def _tools_call(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response | dict[str, Any]:
    name = params.get("name")
    if not isinstance(name, str):
        return _rpc_error(request_id, protocol.INVALID_PARAMS, '"params.name" must be the tool name (a string)')
    tool = runtime.service.tools.get(name)
    if tool is None:
        runtime.metrics.unknown_tool("mcp")
        exc = runtime.tool_not_found(name)
        return _rpc_error(
            request_id, protocol.INVALID_PARAMS, f"Unknown tool: {name}", data=protocol.error_payload(exc)
        )
    if tool.task_support != "forbidden":
        answer = await _tools_call_as_task(runtime, tool, request_id, params)
        if answer is not None:
            return answer
    if tool.context_param is not None:  # only tools that take a Context can stream; others pay nothing
        return await _tools_call_with_context(runtime, tool, request_id, params)
    return await _answer_call(runtime, tool, request_id, params.get("arguments"), None, None, params.get("_meta"))


# -- the tasks extension (devenv/task_runner.py does the work) --------------------------------

_NEEDS_TASKS = {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}  # -32021's data


async def _tools_call_as_task(
    runtime: _Runtime, tool: Tool, request_id: Any, params: dict[str, Any]
) -> Response | dict[str, Any] | None:
    """A ``CreateTaskResult`` when the client declared the tasks extension; None to answer in the request."""
    meta = params.get("_meta")
    capabilities = meta.get(protocol.META_CLIENT_CAPABILITIES) if _is_modern(params) else None
    if runtime.tasks is not None and declares_extension(capabilities):
        try:
            if not tool.defer_task:
                return await runtime.tasks.start(tool, params)
            before = _input_round(runtime, "tools/call", params)  # the call's own multi-round trip
            outcome = await runtime.tasks.start_deferred(
                tool, params, before, lambda channel: Context(input_channel=channel)
            )
        except InvalidInput as exc:
            return _rpc_error(request_id, protocol.INVALID_PARAMS, exc.message, 400)
        except DevenvError as exc:  # the cache backend is out: no task can be made durable
            return _rpc_error(request_id, protocol.INTERNAL_ERROR, f"could not create the task: {exc}")
        if isinstance(outcome, dict):
            return outcome  # the CreateTaskResult: the tool called ctx.start_task()
        return _finished_call(runtime, tool, request_id, outcome, before)  # it ended first: answered as usual
    if tool.task_support == "required":  # a 2025 client: 2026-07-28's checks refused the others already
        return _rpc_error(
            request_id,
            protocol.MISSING_CLIENT_CAPABILITY,
            f"{tool.name} runs only as a task: call it at MCP {protocol.MODERN_VERSION} declaring {TASKS_EXTENSION}",
            data=_NEEDS_TASKS,
        )
    return None


def _finished_call(
    runtime: _Runtime, tool: Tool, request_id: Any, run: asyncio.Task[Any], channel: MultiRoundChannel | None
) -> Response | dict[str, Any]:
    """The answer to a call that ran to its end in the request, as the plain path gives it."""
    try:
        result = run.result()
    except _CALL_ENDINGS as exc:
        return _as_answer(_ended_call(runtime, request_id, exc, channel))
    return tool.call_result(result)


async def _task_method(
    runtime: _Runtime, request_id: Any, params: dict[str, Any], method: str
) -> Response | dict[str, Any]:
    if runtime.tasks is None:
        return _not_offered(request_id, runtime, params, method, "task-capable tools")
    try:
        return await runtime.tasks.handle(method, params)
    except RequestFailed as exc:
        return _rpc_error(request_id, exc.code, exc.message, data=exc.data)


async def _tasks_get(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response | dict[str, Any]:
    return await _task_method(runtime, request_id, params, "tasks/get")


async def _tasks_update(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response | dict[str, Any]:
    return await _task_method(runtime, request_id, params, "tasks/update")


async def _tasks_cancel(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response | dict[str, Any]:
    return await _task_method(runtime, request_id, params, "tasks/cancel")


# -- progress and logs: a tool's Context, streamed on its request's own SSE response ---------

_LOG_LEVEL_META = "io.modelcontextprotocol/logLevel"


def _is_modern(params: dict[str, Any]) -> bool:
    """A 2026-07-28 request (the dispatcher has checked its envelope): its `_meta` names the version."""
    meta = params.get("_meta")
    return isinstance(meta, dict) and protocol.META_PROTOCOL_VERSION in meta


class _EventStream(StreamingResponse):
    """An SSE response that stops (and cancels the call) as soon as the client goes away.

    Starlette only notices a closed connection on its next write under ASGI 2.4; a tool that
    reports nothing for a minute would run on for nobody. So this watches ``receive`` too.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                async for chunk in self.body_iterator:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
                group.cancel_scope.cancel()


def _sse(message: dict[str, Any]) -> bytes:
    return b"event: message\ndata: " + protocol.dumps(message) + b"\n\n"


def _requested_stream(runtime: _Runtime, params: dict[str, Any]) -> tuple[Any, str | None]:
    """(progressToken, log level) the request asks for; ``ValueError`` names a malformed one."""
    meta = params.get("_meta")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ValueError('"params._meta" must be an object')
    token = meta.get("progressToken")
    if token is not None and (isinstance(token, bool) or not isinstance(token, (str, int))):
        raise ValueError(f'"_meta.progressToken" must be a string or an integer, got {token!r}')
    if protocol.META_PROTOCOL_VERSION in meta:  # 2026-07-28: the level travels with each request
        level = meta.get(_LOG_LEVEL_META)
        if level is not None:
            try:
                check_level(level)
            except ValueError as exc:
                raise ValueError(f'"_meta.{_LOG_LEVEL_META}": {exc}') from None
    else:
        level = runtime.legacy_log_level
    return token, level


async def _tools_call_with_context(
    runtime: _Runtime, tool: Tool, request_id: Any, params: dict[str, Any]
) -> Response | dict[str, Any]:
    try:
        token, level = _requested_stream(runtime, params)
        channel = _input_round(runtime, "tools/call", params)
    except ValueError as exc:
        return _rpc_error(request_id, protocol.INVALID_PARAMS, str(exc))
    except InvalidInput as exc:
        return _rpc_error(request_id, protocol.INVALID_PARAMS, exc.message, 400)
    arguments = params.get("arguments")
    meta = params.get("_meta")  # its traceparent makes this call part of the caller's trace
    session = _current_session.get()  # a legacy session: the tool may ask its client for input
    if (token is None and level is None and session is None) or runtime.in_flight >= runtime.max_concurrency:
        # Nobody listens (or the 503 is answered at once): a plain JSON answer.
        context = Context(input_channel=channel)
        return await _answer_call(runtime, tool, request_id, arguments, context, channel, meta)
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def sink(message: dict[str, Any]) -> None:  # sync tools report from their worker thread
        if threading.get_ident() == loop_thread:
            queue.put_nowait(message)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, message)

    legacy = None if session is None else LegacyInputChannel(session, sink, runtime.settings.input_timeout)
    context = Context(progress_token=token, log_level=level, sink=sink, input_channel=channel or legacy)
    modern = _is_modern(params)
    done = object()

    async def run() -> None:
        try:
            answer = await _call_message(runtime, tool, request_id, arguments, context, channel, meta)
            if modern and "result" in answer:  # 2026-07-28 framing: resultType, serverInfo
                answer["result"] = runtime.complete("tools/call", answer["result"])
        except Exception as exc:  # never a silent end of stream: the client gets an answer
            logger.exception("tools/call %s failed outside the tool", tool.name)
            answer = protocol.error_response(request_id, protocol.INTERNAL_ERROR, f"{type(exc).__name__}")
        queue.put_nowait(answer)  # after every notification the tool sent: they keep their order
        queue.put_nowait(done)

    if session is not None:
        return await _stream_once_it_speaks(queue, done, run)
    return _event_stream(lambda: asyncio.create_task(run()), queue, done)  # the tool starts with the stream


async def _stream_once_it_speaks(
    queue: asyncio.Queue[Any], done: object, run: Callable[[], Awaitable[None]]
) -> Response:
    """Start ``run`` (which queues messages, its answer, then ``done``) and answer plain JSON if the
    answer comes first; otherwise an SSE stream of everything. In a legacy session whether a call
    streams is known only once it sends something (a notification, a request to its client)."""
    task = asyncio.create_task(run())
    first = await queue.get()
    if "method" not in first:
        if first.get("error", {}).get("code") == _OVERLOADED:
            return _json(first, 503, {"retry-after": _RETRY_AFTER})
        return _json(first)
    return _event_stream(lambda: task, queue, done, first)


def _event_stream(
    start: Callable[[], asyncio.Task[None]], queue: asyncio.Queue[Any], done: object, first: Any = None
) -> Response:
    """The SSE response of a call: ``first`` (if any), then what its task queues until ``done``."""

    async def events() -> AsyncIterator[bytes]:
        task = start()
        try:
            if first is not None:
                yield _sse(first)
            while (item := await queue.get()) is not done:
                yield _sse(item)
        finally:
            if not task.done():
                task.cancel()  # the client closed the stream: that is MCP's cancellation

    return _EventStream(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


async def _call_message(
    runtime: _Runtime,
    tool: Tool,
    request_id: Any,
    arguments: Any,
    context: Context | None,
    channel: MultiRoundChannel | None = None,
    meta: Any = None,
) -> dict[str, Any]:
    """The JSON-RPC answer to one tools/call, as a message (the streamed path's final event)."""
    try:
        result = await runtime.call(tool, arguments, "mcp", context, meta=meta, request_id=request_id)
    except _CALL_ENDINGS as exc:
        return _ended_call(runtime, request_id, exc, channel)
    return protocol.result_response(request_id, tool.call_result(result))


# How a tool call may end other than with its result.
_CALL_ENDINGS = (
    InvalidArguments,
    ToolError,
    RequestFailed,
    _Overloaded,
    InputRequired,
    InvalidInput,
    CapabilityMissing,
)


def _ended_call(
    runtime: _Runtime, request_id: Any, exc: BaseException, channel: MultiRoundChannel | None
) -> dict[str, Any]:
    """The JSON-RPC message for a call that raised one of ``_CALL_ENDINGS``."""
    if isinstance(exc, (InvalidArguments, ToolError)):
        return protocol.result_response(request_id, protocol.tool_error_result(exc))
    if isinstance(exc, RequestFailed):
        return protocol.error_response(request_id, exc.code, exc.message, exc.data)
    if isinstance(exc, _Overloaded):
        return protocol.error_response(request_id, _OVERLOADED, _overloaded_message(runtime))
    return _round_answer(request_id, exc, channel)  # type: ignore[arg-type]


def _round_answer(
    request_id: Any, exc: InputRequired | InvalidInput | CapabilityMissing, channel: MultiRoundChannel | None
) -> dict[str, Any]:
    """How a call that asked its client for input ends: the InputRequiredResult of this round, or
    the error that the client's answers were bad (-32602) or that it lacks the capability (-32021)."""
    if isinstance(exc, InputRequired) and channel is not None:
        return protocol.result_response(request_id, channel.result())
    if isinstance(exc, CapabilityMissing):
        data = {"requiredCapabilities": {exc.capability: {}}}
        return protocol.error_response(request_id, protocol.MISSING_CLIENT_CAPABILITY, str(exc), data)
    return protocol.error_response(request_id, protocol.INVALID_PARAMS, getattr(exc, "message", str(exc)))


def _input_round(runtime: _Runtime, method: str, params: dict[str, Any]) -> MultiRoundChannel | None:
    """At 2026-07-28, this request's multi-round-trip channel (its inputResponses and requestState
    checked: ``InvalidInput``); legacy requests have none."""
    if not _is_modern(params):
        return None
    capabilities = params["_meta"][protocol.META_CLIENT_CAPABILITIES]  # checked by _check_modern
    return MultiRoundChannel.for_request(runtime.sealer, method, params, capabilities)


async def _answer_call(
    runtime: _Runtime,
    tool: Tool,
    request_id: Any,
    arguments: Any,
    context: Context | None,
    channel: MultiRoundChannel | None = None,
    meta: Any = None,
) -> Response | dict[str, Any]:
    return _as_answer(await _call_message(runtime, tool, request_id, arguments, context, channel, meta))


def _as_answer(message: dict[str, Any]) -> Response | dict[str, Any]:
    """A call's JSON-RPC message as a handler answers it: the result, or the error with its status."""
    error = message.get("error")
    if error is None:
        return message["result"]
    if error["code"] == _OVERLOADED:
        return _json(message, 503, {"retry-after": _RETRY_AFTER})
    if error["code"] in (protocol.INVALID_PARAMS, protocol.MISSING_CLIENT_CAPABILITY):
        return _json(message, 400)  # the request's input was bad, or needs what the client lacks
    return _json(message)  # a tool's RequestFailed


async def _logging_set_level(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response | dict[str, Any]:
    """Legacy (2025-*) logging/setLevel; 2026-07-28 removed it for ``_meta`` logLevel."""
    if "logging" not in runtime.service.capabilities():
        return _rpc_error(
            request_id,
            protocol.METHOD_NOT_FOUND,
            f"Method not found: logging/setLevel ({runtime.service.name} sends no log messages)",
        )
    try:
        runtime.legacy_log_level = check_level(params.get("level"))
    except ValueError as exc:
        return _rpc_error(request_id, protocol.INVALID_PARAMS, f'"params.level": {exc}')
    return {}


# -- resources, prompts, completion ---------------------------------------------------------


def _not_offered(request_id: Any, runtime: _Runtime, params: dict[str, Any], method: str, what: str) -> Response:
    # As for any method a server does not serve: at 2026-07-28 that is a 404.
    status = 404 if _is_modern(params) else 200
    return _rpc_error(
        request_id,
        protocol.METHOD_NOT_FOUND,
        f"Method not found: {method} ({runtime.service.name} offers no {what})",
        status,
    )


def _no_cursor(params: dict[str, Any]) -> str | None:
    cursor = params.get("cursor")
    # Every list fits one page, so no cursor was ever handed out: any cursor is not ours.
    return None if cursor is None else f"invalid cursor {cursor!r}: this list has one page"


def _surface_error(request_id: Any, exc: Exception) -> Response:
    """Bad requests are -32602 with what was wrong; a function that raised is -32603."""
    if isinstance(exc, ResourceNotFound):
        return _rpc_error(request_id, protocol.INVALID_PARAMS, "Resource not found", data={"uri": exc.uri})
    if isinstance(exc, (PromptNotFound, InvalidArguments)):
        return _rpc_error(request_id, protocol.INVALID_PARAMS, str(exc), data=protocol.error_payload(exc))
    if isinstance(exc, ValueError):
        return _rpc_error(request_id, protocol.INVALID_PARAMS, str(exc))
    message = str(exc) if isinstance(exc, ToolError) else f"{type(exc).__name__}: {redact(str(exc))}"
    return _rpc_error(request_id, protocol.INTERNAL_ERROR, message)


async def _resources_list(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response | dict[str, Any]:
    if not runtime.service.resources:
        return _not_offered(request_id, runtime, params, "resources/list", "resources")
    if bad := _no_cursor(params):
        return _rpc_error(request_id, protocol.INVALID_PARAMS, bad)
    return {"resources": runtime.service.list_resources()}


async def _resources_templates_list(
    runtime: _Runtime, request_id: Any, params: dict[str, Any]
) -> Response | dict[str, Any]:
    if not runtime.service.resources:
        return _not_offered(request_id, runtime, params, "resources/templates/list", "resources")
    if bad := _no_cursor(params):
        return _rpc_error(request_id, protocol.INVALID_PARAMS, bad)
    templates = runtime.service.list_resource_templates()
    return {"resourceTemplates": templates}


async def _resources_read(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response | dict[str, Any]:
    if not runtime.service.resources:
        return _not_offered(request_id, runtime, params, "resources/read", "resources")
    try:
        result = await runtime.service.aread_resource(params.get("uri"))  # type: ignore[arg-type]
    except Exception as exc:
        return _surface_error(request_id, exc)
    return result


async def _prompts_list(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response | dict[str, Any]:
    if not runtime.service.prompts:
        return _not_offered(request_id, runtime, params, "prompts/list", "prompts")
    if bad := _no_cursor(params):
        return _rpc_error(request_id, protocol.INVALID_PARAMS, bad)
    return {"prompts": runtime.service.list_prompts()}


async def _prompts_get(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response | dict[str, Any]:
    if not runtime.service.prompts:
        return _not_offered(request_id, runtime, params, "prompts/get", "prompts")
    session = _current_session.get()
    if session is not None:
        return await _legacy_prompt_in_session(runtime, request_id, params, session)
    channel = None
    try:
        channel = _input_round(runtime, "prompts/get", params)
        context = Context(input_channel=channel)
        result = await runtime.service.aget_prompt(params.get("name"), params.get("arguments"), context=context)  # type: ignore[arg-type]
    except (InputRequired, InvalidInput, CapabilityMissing) as exc:
        return _as_answer(_round_answer(request_id, exc, channel))
    except Exception as exc:
        return _surface_error(request_id, exc)
    return result


async def _legacy_prompt_in_session(
    runtime: _Runtime, request_id: Any, params: dict[str, Any], session: LegacySession
) -> Response:
    """prompts/get for a legacy session: a prompt that asks its client gets the legacy channel."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    done = object()
    channel = LegacyInputChannel(session, queue.put_nowait, runtime.settings.input_timeout)  # async prompts ask

    async def run() -> None:
        context = Context(input_channel=channel)
        try:
            result = await runtime.service.aget_prompt(params.get("name"), params.get("arguments"), context=context)  # type: ignore[arg-type]
            answer = protocol.result_response(request_id, result)
        except CapabilityMissing as exc:
            answer = _round_answer(request_id, exc, None)
        except Exception as exc:
            answer = protocol.loads(_surface_error(request_id, exc).body)
        queue.put_nowait(answer)
        queue.put_nowait(done)

    return await _stream_once_it_speaks(queue, done, run)


async def _completion_complete(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response | dict[str, Any]:
    if "completions" not in runtime.service.capabilities():
        return _not_offered(request_id, runtime, params, "completion/complete", "completions")
    try:
        result = runtime.service.complete(params.get("ref"), params.get("argument"), params.get("context"))
    except Exception as exc:
        return _surface_error(request_id, exc)
    return result


# Handlers: `async def h(runtime, request_id, params) -> dict | Response`. A dict is the result;
# the dispatcher frames it for the request's era (2026-07-28 adds resultType, serverInfo, cache
# hints). A Response (an error, an SSE stream) is sent as it is. One table serves both eras: a
# 2026-07-28 request for a method in protocol.REMOVED_IN_MODERN is 404, a legacy request for a
# method in _MODERN_ONLY is -32601.
_METHODS: dict[str, Callable[[_Runtime, Any, dict[str, Any]], Awaitable[Response | dict[str, Any]]]] = {
    "initialize": _initialize,
    "ping": _ping,
    "server/discover": _discover,
    "tools/list": _tools_list,
    "tools/call": _tools_call,
    # the rest of the server surface
    "logging/setLevel": _logging_set_level,
    "resources/list": _resources_list,
    "resources/templates/list": _resources_templates_list,
    "resources/read": _resources_read,
    "prompts/list": _prompts_list,
    "prompts/get": _prompts_get,
    "completion/complete": _completion_complete,
    # legacy only (2026-07-28 removed them): subscriptions live in a session
    "resources/subscribe": _resources_subscribe,
    "resources/unsubscribe": _resources_unsubscribe,
    # the tasks extension (2026-07-28 only)
    "tasks/get": _tasks_get,
    "tasks/update": _tasks_update,
    "tasks/cancel": _tasks_cancel,
}
_MODERN_ONLY = frozenset({"server/discover", *task_runner.TASK_METHODS})


# -- POST /tools/{name} ---------------------------------------------------------------------


def _error_body(exc: DevenvError, status: int) -> JSONResponse:
    return JSONResponse({"error": protocol.error_payload(exc)}, status)


def _rest_status(exc: ToolError) -> int:
    """400 when the tool rejected its input, 504 when it ran out of time, else 500."""
    if _is_timeout(exc):
        return 504
    cause = exc.__cause__
    if isinstance(cause, _CLIENT_FAULT_TYPES) or exc.error_type in _CLIENT_FAULTS:
        return 400
    if isinstance(cause, OSError) and cause.errno in _CLIENT_ERRNOS:
        return 400
    return 500


# JSON-RPC errors that blame the request: a tool's RequestFailed with one is 400 on REST, else 500.
_CALLER_CODES = frozenset({protocol.INVALID_REQUEST, protocol.INVALID_PARAMS, protocol.MISSING_CLIENT_CAPABILITY})


def _is_timeout(exc: ToolError) -> bool:
    return isinstance(exc.__cause__, TimedOut)


def _overloaded_message(runtime: _Runtime) -> str:
    return f"{runtime.service.name} is running {runtime.max_concurrency} calls already (its limit); retry shortly"


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            "required": ["type"],
        }
    },
    "required": ["error"],
}


def _error_doc(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"description": description, "content": {_JSON: {"schema": _ERROR_SCHEMA}}}
    if headers:
        doc["headers"] = {name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()}
    return doc


def _rest_route(app: FastAPI, runtime: _Runtime, tool: Tool) -> None:
    required = any(f.is_required() for f in tool.input_model.model_fields.values())

    async def endpoint(arguments: Any = Body(... if required else None)) -> Response:
        # Served here only while a user's middleware is in the stack; else by _rest_asgi.
        return await _rest_call(runtime, tool, {} if arguments is None else arguments.model_dump(mode="json"))

    # FastAPI reads the body model from the annotation; it is only known at run time.
    endpoint.__annotations__["arguments"] = tool.input_model if required else tool.input_model | None

    app.add_api_route(
        f"/tools/{tool.name}",
        endpoint,
        methods=["POST"],
        name=tool.name,
        operation_id=tool.name,
        summary=tool.description.splitlines()[0] if tool.description else tool.name,
        description=tool.description,
        tags=["tools"],
        responses={
            200: {"description": "The tool's result", "content": {_JSON: {"schema": _rest_result_schema(tool)}}},
            400: _error_doc("The tool rejected its input, or asked for input only MCP can carry"),
            401: _error_doc("A bearer token is required (DEVENV_AUTH_TOKEN is set)", {"WWW-Authenticate": "Bearer"}),
            403: _error_doc("Origin not allowed"),
            404: _error_doc("No such tool"),
            413: _error_doc("Request body too large"),
            421: _error_doc("Host not allowed"),
            422: _error_doc("Arguments do not match the input schema"),
            429: _error_doc("Rate limit exceeded", {"Retry-After": "seconds to wait"}),
            503: _error_doc("Too many calls at once", {"Retry-After": "seconds to wait"}),
            504: _error_doc("The tool ran past its timeout"),
        },
    )


async def _rest_call(runtime: _Runtime, tool: Tool, payload: Any) -> Response:
    try:
        result = await runtime.call(tool, payload, "rest")
    except InvalidArguments as exc:
        return _error_body(exc, 422)
    except ToolError as exc:
        return _error_body(exc, _rest_status(exc))
    except CapabilityMissing as exc:  # plain JSON has no way back to the caller: use /mcp
        return _error_body(exc, 400)
    except RequestFailed as exc:
        body = {"error": {**protocol.error_payload(exc), "code": exc.code}}
        return _json(body, 400 if exc.code in _CALLER_CODES else 500)
    except _Overloaded:
        body = {"error": {"type": "Overloaded", "message": _overloaded_message(runtime)}}
        return _json(body, 503, {"retry-after": _RETRY_AFTER})
    return _json(result)


async def _rest_asgi(runtime: _Runtime, tool: Tool, scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /tools/{name}`` without FastAPI's body model: the runtime validates the arguments
    anyway, so they are parsed and checked once, as /mcp does."""
    try:
        response = await _rest_answer(runtime, tool, Request(scope, receive))
    except BodyLimit._TooLarge:
        raise  # BodyLimit, around this, answers the 413
    except Exception:
        logger.exception("POST /tools/%s failed outside the tool", tool.name)
        response = _json({"error": {"type": "InternalServerError", "message": "Internal error"}}, 500)
    await response(scope, receive, send)


async def _rest_answer(runtime: _Runtime, tool: Tool, request: Request) -> Response:
    content_type = request.headers.get("content-type", _JSON).split(";")[0].strip().lower()
    body = await request.body()
    if content_type != _JSON and not content_type.endswith("+json"):
        problem = (f"the body must be JSON (Content-Type: {_JSON}), not {content_type}", "model_attributes_type")
    else:
        try:
            return await _rest_call(runtime, tool, protocol.loads(body) if body else None)
        except protocol.JSONDecodeError as exc:
            problem = (f"JSON decode error: {exc}", "json_invalid")
    error = InvalidArguments(tool.name, [{"field": "", "message": problem[0], "type": problem[1]}])
    runtime.record(tool.name, "rest", "invalid_arguments", 0.0, error)
    return _error_body(error, 422)


def _rest_result_schema(tool: Tool) -> dict[str, Any]:
    if tool.output_schema is None:  # a content tool answers MCP content blocks
        return {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string"}}}}
    schema = {k: v for k, v in tool.output_schema.items() if not k.startswith("x-") and k != "$defs"}
    if tool.wraps_result:
        schema = schema["properties"]["result"]
    return _inline_refs(schema, tool.output_schema.get("$defs", {}))


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """Replace local ``$ref``s so the schema stands alone inside the OpenAPI document."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/") and ref[8:] in defs:
            return _inline_refs(defs[ref[8:]], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


# -- the app --------------------------------------------------------------------------------


def _drain_on_signals(runtime: _Runtime, delay: float) -> Callable[[], None]:
    """Chain onto the server's SIGTERM/SIGINT handlers (uvicorn's): mark the runtime draining first.

    With ``delay`` (``DEVENV_SHUTDOWN_DELAY``), SIGTERM reaches uvicorn only that much later:
    the process keeps serving while ``/ready`` says 503, so a load balancer stops sending
    before the listener closes. A second signal goes through at once.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # only the main thread receives signals (serve_in_thread runs elsewhere)
    loop = asyncio.get_running_loop()
    installed: dict[int, tuple[Any, Any]] = {}
    delayed = False

    def chain(previous: Callable[[int, Any], Any]) -> Callable[[int, Any], None]:
        def on_signal(signum: int, frame: Any) -> None:
            nonlocal delayed
            runtime.begin_drain(signal.Signals(signum).name)
            if signum == signal.SIGTERM and delay > 0 and not delayed:
                delayed = True
                loop.call_soon_threadsafe(loop.call_later, delay, previous, signum, None)
            else:
                previous(signum, frame)

        return on_signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if callable(previous):  # nobody to chain to otherwise: leave the default alone
            handler = chain(previous)
            signal.signal(sig, handler)
            installed[sig] = (previous, handler)

    def restore() -> None:
        for sig, (previous, handler) in installed.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)

    return restore


def create_app(service: Service, settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    service.debug = service.debug or settings.debug
    runtime = _Runtime(service, settings)
    limiter = rate_limiter(settings, service.name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.draining = False  # a server (re)starting this app serves again
        restore = _drain_on_signals(runtime, settings.shutdown_delay)
        try:
            yield
        finally:
            runtime.begin_drain("lifespan shutdown")
            restore()
            if limiter is not None:
                await limiter.aclose()

    app = _App(
        title=f"{service.name} (devenv)",
        version=service.version,
        description=f"MCP at POST /mcp; plain JSON at POST /tools/{{name}}. {service.instructions or ''}".strip(),
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    service.on_resource_updated(runtime.sessions.resource_updated)
    app.state.service = service
    app.router.routes.append(Route("/mcp", _mcp_endpoint, methods=["POST", "GET", "DELETE"], include_in_schema=False))

    for tool in service.tools.values():
        _rest_route(app, runtime, tool)

    @app.post("/tools/{name}", include_in_schema=False)
    async def unknown_tool(name: str) -> Response:
        runtime.metrics.unknown_tool("rest")
        return _error_body(runtime.tool_not_found(name), 404)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> Response:
        tool = request.url.path.rsplit("/", 1)[-1]
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        error = InvalidArguments(tool, errors)
        if tool in service.tools:  # FastAPI rejected the body before the runtime saw it: count it here
            runtime.record(tool, "rest", "invalid_arguments", 0.0, error)
        return _error_body(error, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """FastAPI's own refusals (a body that is not UTF-8, an unknown path) in devenv's error shape."""
        if isinstance(exc.__cause__, BodyLimit._TooLarge):
            # FastAPI read a streamed body past the limit and wrapped BodyLimit's signal in a 400.
            return BodyLimit.reject(request.url.path, settings.max_body_bytes)
        tool = request.url.path.rsplit("/", 1)[-1]
        if exc.status_code == 400 and request.url.path == f"/tools/{tool}" and tool in service.tools:
            error = InvalidArguments(tool, [{"field": "", "message": str(exc.detail), "type": "json_invalid"}])
            runtime.record(tool, "rest", "invalid_arguments", 0.0, error)
            return _error_body(error, 422)
        try:
            kind = http.HTTPStatus(exc.status_code).phrase.replace(" ", "").replace("-", "")
        except ValueError:
            kind = "HTTPError"
        return _json({"error": {"type": kind, "message": str(exc.detail)}}, exc.status_code, exc.headers)

    @app.get("/health", tags=["probes"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "service": service.name, "version": service.version}

    @app.get("/ready", tags=["probes"], responses={503: {"description": "Not ready, or shutting down"}})
    async def ready() -> Response:
        """Readiness: every declared dependency answers (503 while one does not, and once shutting down)."""
        if runtime.draining:
            return _json({"status": "shutting down", "checks": {}}, 503)
        checks = await anyio.to_thread.run_sync(service.check_ready)
        failed = {k: redact(v) for k, v in checks.items() if v is not None}
        body = {"status": "not ready" if failed else "ready", "checks": {k: v or "ok" for k, v in checks.items()}}
        body["checks"].update(failed)
        return _json(body, 503 if failed else 200)

    @app.get("/metrics", tags=["probes"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        body = await anyio.to_thread.run_sync(runtime.metrics.render)  # it pings the cache: off the loop
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if tracing.enabled():
        app.add_middleware(tracing.IncomingHeaders)  # the caller's traceparent header, for legacy peers
    # Added last, so it runs first: a refused request never reaches the body limit or a route.
    app.add_middleware(
        Guard, settings=settings, service=service.name, metrics=runtime.metrics, lifecycle=runtime, limiter=limiter
    )
    app.front_mcp()
    return app


class _App(FastAPI):
    """FastAPI, with ``/mcp`` and each tool's ``POST /tools/{name}`` sent straight to their
    handlers through devenv's own middleware.

    FastAPI's layers around a route (error and exception middleware, the exit stack, routing,
    its body model) cost about a third of a tool call, and these routes need none of them. Once
    a user adds middleware of their own, every request takes the whole stack again, so theirs
    always runs. The routes stay declared for the OpenAPI document.
    """

    _front: ASGIApp | None = None
    _devenv_middleware = 0

    def front_mcp(self) -> None:
        app: ASGIApp = self._fast
        for middleware in reversed(self.user_middleware):  # innermost first, as Starlette builds it
            app = middleware.cls(app, *middleware.args, **middleware.kwargs)
        self._front, self._devenv_middleware = app, len(self.user_middleware)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self._front is not None
            and (scope["path"] == "/mcp" or self._rest_tool(scope) is not None)
            and len(self.user_middleware) == self._devenv_middleware
        ):
            scope["app"] = self
            await self._front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def _rest_tool(self, scope: Scope) -> Tool | None:
        path = scope["path"]
        if scope["method"] != "POST" or not path.startswith("/tools/"):
            return None
        return self.state.service.tools.get(path[7:])  # an unknown name: the stack's 404

    async def _fast(self, scope: Scope, receive: Receive, send: Send) -> None:
        tool = self._rest_tool(scope)
        if tool is None:
            await _mcp_asgi(scope, receive, send)
        else:
            await _rest_asgi(self.state.runtime, tool, scope, receive, send)


async def _mcp_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    try:
        response = await _mcp_endpoint(Request(scope, receive))
    except BodyLimit._TooLarge:
        raise  # BodyLimit, around this, answers the 413
    except Exception:  # what Starlette's ServerErrorMiddleware would do, in JSON-RPC's shape
        logger.exception("POST /mcp failed outside any tool")
        response = _rpc_error(None, protocol.INTERNAL_ERROR, "Internal error", 500)
    await response(scope, receive, send)


def app_from_env() -> FastAPI:
    """Factory for uvicorn (``--factory``): serves ``$DEVENV_SERVICE``, used by ``devenv serve --reload``."""
    import os

    from .logs import configure_logging
    from .tools import default_registry

    name = os.environ.get("DEVENV_SERVICE")
    if not name:
        from .errors import ConfigError

        raise ConfigError("DEVENV_SERVICE is not set: which service should this process serve?")
    settings = get_settings()
    configure_logging(settings.log_level)
    from . import client_metrics

    client_metrics.enable()  # this service's own MCPClient calls show on its /metrics
    return create_app(default_registry().get(name), settings)
