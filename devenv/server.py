"""``create_app(service)``: the ASGI app that serves one service's tools.

- ``POST /mcp``: MCP Streamable HTTP, stateless, answering ``application/json``.
  Hand-written on purpose: a thin wire is what makes a tool call cheap.
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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import protocol
from .config import Settings, get_settings, redact
from .context import Context, check_level
from .errors import DevenvError, InvalidArguments, PromptNotFound, ResourceNotFound, ToolError, ToolNotFound
from .metrics import ServiceMetrics
from .security import Guard, rate_limiter
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
        self.metrics = ServiceMetrics(service.name, cache_errors=lambda: service.cache_errors)
        self.tool_definitions = [t.definition() for t in service.tools.values()]  # tools/list, built once
        self.timeouts = {t.name: t.timeout or settings.tool_timeout for t in service.tools.values()}
        self.max_concurrency = settings.max_concurrency
        self.in_flight = 0  # touched on the event loop only
        self.draining = False  # set on SIGTERM (or lifespan shutdown): /ready answers 503
        # The level a legacy (2025-*) client set with logging/setLevel. Legacy /mcp is stateless
        # here, so it holds for this process, not per session; 2026-07-28 sets it per request.
        self.legacy_log_level: str | None = None

    async def call(self, tool: Tool, arguments: Any, transport: str, context: Context | None = None) -> Any:
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
        except ToolError as exc:
            status, error = ("timeout" if _is_timeout(exc) else "tool_error"), exc
            raise
        finally:
            self.in_flight -= 1
            self.record(tool.name, transport, status, time.perf_counter() - start, error)

    def record(self, tool: str, transport: str, status: str, elapsed: float, error: DevenvError | None) -> None:
        self.metrics.observe(tool, transport, status, elapsed)
        extra = {
            "service": self.service.name,
            "tool": tool,
            "transport": transport,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
        }
        if error is not None:
            extra["error"] = redact(str(error))
        call_log.info("tool call", extra=extra)

    def begin_drain(self, why: str) -> None:
        if not self.draining:
            self.draining = True
            logger.info("shutting down (%s): /ready answers 503, calls in flight finish", why)

    def tool_not_found(self, name: str) -> ToolNotFound:
        return ToolNotFound(self.service.name, name, sorted(self.service.tools))


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
        # Stateless: no server-initiated stream to GET, no session to DELETE.
        return _json({"error": "use POST for MCP messages"}, 405, {"allow": "POST"})
    # Host, Origin, token and rate limit were checked by security.Guard before this ran.
    version = request.headers.get("mcp-protocol-version")
    if version is not None and version not in protocol.SUPPORTED_VERSIONS:
        return _rpc_error(
            None,
            protocol.INVALID_REQUEST,
            f"unsupported MCP-Protocol-Version {version!r}; supported: {', '.join(protocol.SUPPORTED_VERSIONS)}",
            400,
            {"supported": list(protocol.SUPPORTED_VERSIONS), "requested": version},
        )
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
            return Response(status_code=202)  # a client's answer to a request we never send
        return _rpc_error(_echo_id(message), protocol.INVALID_REQUEST, '"method" is required', 400)
    method = message["method"]
    if not isinstance(method, str):
        return _rpc_error(_echo_id(message), protocol.INVALID_REQUEST, '"method" must be a string', 400)
    if "id" not in message:
        return Response(status_code=202)  # notifications (initialized, cancelled, ...) need no answer
    request_id = message["id"]
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return _rpc_error(None, protocol.INVALID_REQUEST, '"id" must be a string or an integer', 400)
    params = message.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return _rpc_error(request_id, protocol.INVALID_PARAMS, '"params" must be an object')
    handler = _METHODS.get(method)
    if handler is None:
        return _rpc_error(request_id, protocol.METHOD_NOT_FOUND, f"Method not found: {method}")
    return await handler(runtime, request_id, params)


async def _initialize(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    requested = params.get("protocolVersion")
    version = requested if requested in protocol.SUPPORTED_VERSIONS else protocol.LATEST_VERSION
    result: dict[str, Any] = {
        "protocolVersion": version,
        "capabilities": runtime.service.capabilities(),
        "serverInfo": {"name": runtime.service.name, "version": runtime.service.version},
    }
    if runtime.service.instructions:
        result["instructions"] = runtime.service.instructions
    return _json(protocol.result_response(request_id, result))


async def _ping(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    return _json(protocol.result_response(request_id, {}))


async def _tools_list(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    return _json(protocol.result_response(request_id, {"tools": runtime.tool_definitions}))


async def _tools_call(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    name = params.get("name")
    if not isinstance(name, str):
        return _rpc_error(request_id, protocol.INVALID_PARAMS, '"params.name" must be the tool name (a string)')
    tool = runtime.service.tools.get(name)
    if tool is None:
        exc = runtime.tool_not_found(name)
        return _rpc_error(
            request_id, protocol.INVALID_PARAMS, f"Unknown tool: {name}", data=protocol.error_payload(exc)
        )
    if tool.context_param is not None:  # only tools that take a Context can stream; others pay nothing
        return await _tools_call_with_context(runtime, tool, request_id, params)
    try:
        result = await runtime.call(tool, params.get("arguments"), "mcp")
    except (InvalidArguments, ToolError) as exc:
        return _json(protocol.result_response(request_id, protocol.tool_error_result(exc)))
    except _Overloaded:
        return _json(
            protocol.error_response(request_id, _OVERLOADED, _overloaded_message(runtime)),
            503,
            {"retry-after": _RETRY_AFTER},
        )
    return _json(protocol.result_response(request_id, tool.call_result(result)))


# -- progress and logs: a tool's Context, streamed on its request's own SSE response ---------

_LOG_LEVEL_META = "io.modelcontextprotocol/logLevel"
_VERSION_META = "io.modelcontextprotocol/protocolVersion"


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
    if _VERSION_META in meta:  # 2026-07-28: the level travels with each request
        level = meta.get(_LOG_LEVEL_META)
        if level is not None:
            try:
                check_level(level)
            except ValueError as exc:
                raise ValueError(f'"_meta.{_LOG_LEVEL_META}": {exc}') from None
    else:
        level = runtime.legacy_log_level
    return token, level


async def _tools_call_with_context(runtime: _Runtime, tool: Tool, request_id: Any, params: dict[str, Any]) -> Response:
    try:
        token, level = _requested_stream(runtime, params)
    except ValueError as exc:
        return _rpc_error(request_id, protocol.INVALID_PARAMS, str(exc))
    arguments = params.get("arguments")
    if token is None and level is None:  # nobody listens: a plain JSON answer, the Context is silent
        return await _answer_call(runtime, tool, request_id, arguments, None)
    if runtime.in_flight >= runtime.max_concurrency:
        return await _answer_call(runtime, tool, request_id, arguments, None)  # answers the 503 at once
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def sink(message: dict[str, Any]) -> None:  # sync tools report from their worker thread
        if threading.get_ident() == loop_thread:
            queue.put_nowait(message)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, message)

    context = Context(progress_token=token, log_level=level, sink=sink)
    done = object()

    async def events() -> AsyncIterator[bytes]:
        async def run() -> None:
            try:
                answer = await _call_message(runtime, tool, request_id, arguments, context)
            except Exception as exc:  # never a silent end of stream: the client gets an answer
                logger.exception("tools/call %s failed outside the tool", tool.name)
                answer = protocol.error_response(request_id, protocol.INTERNAL_ERROR, f"{type(exc).__name__}")
            queue.put_nowait(answer)  # after every notification the tool sent: they keep their order
            queue.put_nowait(done)

        task = asyncio.create_task(run())
        try:
            while (item := await queue.get()) is not done:
                yield _sse(item)
        finally:
            if not task.done():
                task.cancel()  # the client closed the stream: that is MCP's cancellation

    return _EventStream(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


async def _call_message(
    runtime: _Runtime, tool: Tool, request_id: Any, arguments: Any, context: Context | None
) -> dict[str, Any]:
    """The JSON-RPC answer to one tools/call, as a message (the streamed path's final event)."""
    try:
        result = await runtime.call(tool, arguments, "mcp", context)
    except (InvalidArguments, ToolError) as exc:
        return protocol.result_response(request_id, protocol.tool_error_result(exc))
    except _Overloaded:
        return protocol.error_response(request_id, _OVERLOADED, _overloaded_message(runtime))
    return protocol.result_response(request_id, tool.call_result(result))


async def _answer_call(
    runtime: _Runtime, tool: Tool, request_id: Any, arguments: Any, context: Context | None
) -> Response:
    message = await _call_message(runtime, tool, request_id, arguments, context)
    if "error" in message and message["error"]["code"] == _OVERLOADED:
        return _json(message, 503, {"retry-after": _RETRY_AFTER})
    return _json(message)


async def _logging_set_level(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    """Legacy (2025-*) logging/setLevel; 2026-07-28 removed it for ``_meta`` logLevel."""
    if "logging" not in runtime.service.capabilities():
        return _rpc_error(request_id, protocol.METHOD_NOT_FOUND, f"{runtime.service.name} sends no log messages")
    try:
        runtime.legacy_log_level = check_level(params.get("level"))
    except ValueError as exc:
        return _rpc_error(request_id, protocol.INVALID_PARAMS, f'"params.level": {exc}')
    return _json(protocol.result_response(request_id, {}))


# -- resources, prompts, completion ---------------------------------------------------------


def _not_offered(request_id: Any, runtime: _Runtime, what: str) -> Response:
    return _rpc_error(request_id, protocol.METHOD_NOT_FOUND, f"{runtime.service.name} offers no {what}")


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


async def _resources_list(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    if not runtime.service.resources:
        return _not_offered(request_id, runtime, "resources")
    if bad := _no_cursor(params):
        return _rpc_error(request_id, protocol.INVALID_PARAMS, bad)
    return _json(protocol.result_response(request_id, {"resources": runtime.service.list_resources()}))


async def _resources_templates_list(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    if not runtime.service.resources:
        return _not_offered(request_id, runtime, "resources")
    if bad := _no_cursor(params):
        return _rpc_error(request_id, protocol.INVALID_PARAMS, bad)
    templates = runtime.service.list_resource_templates()
    return _json(protocol.result_response(request_id, {"resourceTemplates": templates}))


async def _resources_read(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    if not runtime.service.resources:
        return _not_offered(request_id, runtime, "resources")
    try:
        result = await runtime.service.aread_resource(params.get("uri"))  # type: ignore[arg-type]
    except Exception as exc:
        return _surface_error(request_id, exc)
    return _json(protocol.result_response(request_id, result))


async def _prompts_list(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    if not runtime.service.prompts:
        return _not_offered(request_id, runtime, "prompts")
    if bad := _no_cursor(params):
        return _rpc_error(request_id, protocol.INVALID_PARAMS, bad)
    return _json(protocol.result_response(request_id, {"prompts": runtime.service.list_prompts()}))


async def _prompts_get(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    if not runtime.service.prompts:
        return _not_offered(request_id, runtime, "prompts")
    try:
        result = await runtime.service.aget_prompt(params.get("name"), params.get("arguments"))  # type: ignore[arg-type]
    except Exception as exc:
        return _surface_error(request_id, exc)
    return _json(protocol.result_response(request_id, result))


async def _completion_complete(runtime: _Runtime, request_id: Any, params: dict[str, Any]) -> Response:
    if "completions" not in runtime.service.capabilities():
        return _not_offered(request_id, runtime, "completions")
    try:
        result = runtime.service.complete(params.get("ref"), params.get("argument"), params.get("context"))
    except Exception as exc:
        return _surface_error(request_id, exc)
    return _json(protocol.result_response(request_id, result))


_METHODS = {
    "initialize": _initialize,
    "ping": _ping,
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
}


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
        payload = {} if arguments is None else arguments.model_dump(mode="json")
        try:
            result = await runtime.call(tool, payload, "rest")
        except InvalidArguments as exc:
            return _error_body(exc, 422)
        except ToolError as exc:
            return _error_body(exc, _rest_status(exc))
        except _Overloaded:
            body = {"error": {"type": "Overloaded", "message": _overloaded_message(runtime)}}
            return _json(body, 503, {"retry-after": _RETRY_AFTER})
        return _json(result)

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
            400: _error_doc("The tool rejected its input"),
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

    app = FastAPI(
        title=f"{service.name} (devenv)",
        version=service.version,
        description=f"MCP at POST /mcp; plain JSON at POST /tools/{{name}}. {service.instructions or ''}".strip(),
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.service = service
    app.router.routes.append(Route("/mcp", _mcp_endpoint, methods=["POST", "GET", "DELETE"], include_in_schema=False))

    for tool in service.tools.values():
        _rest_route(app, runtime, tool)

    @app.post("/tools/{name}", include_in_schema=False)
    async def unknown_tool(name: str) -> Response:
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
        return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    # Added last, so it runs first: a refused request never reaches the body limit or a route.
    app.add_middleware(
        Guard, settings=settings, service=service.name, metrics=runtime.metrics, lifecycle=runtime, limiter=limiter
    )
    return app


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
    return create_app(default_registry().get(name), settings)
