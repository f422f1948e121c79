"""``create_app(service)``: the ASGI app that serves one service's tools.

- ``POST /mcp``: MCP Streamable HTTP, stateless, answering ``application/json``.
  Hand-written on purpose: a thin wire is what makes a tool call cheap.
- ``POST /tools/{name}``: plain JSON in and out, one OpenAPI operation per tool.
- ``GET /health``, ``GET /ready``, ``GET /metrics``.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import protocol
from .config import Settings, get_settings, redact
from .errors import DevenvError, InvalidArguments, ToolError, ToolNotFound
from .metrics import ServiceMetrics
from .tools import Service, Tool

__all__ = ["app_from_env", "create_app"]

call_log = logging.getLogger("devenv.calls")

_JSON = "application/json"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
# Exceptions that say "the input was wrong" rather than "the tool broke": REST answers 400.
_CLIENT_FAULTS = {
    "ValueError",
    "LookupError",
    "KeyError",
    "IndexError",
    "PermissionError",
    "FileNotFoundError",
    "FileExistsError",
    "IsADirectoryError",
    "NotADirectoryError",
}


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
        message = f"request body exceeds the limit of {self.limit} bytes"
        if scope["path"] == "/mcp":
            return _rpc_error(None, protocol.INVALID_REQUEST, message, 413)
        return _json({"error": {"type": "PayloadTooLarge", "message": message, "limit": self.limit}}, 413)

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


class _Runtime:
    """Runs tool calls for both wires, with one log line and metrics per call."""

    def __init__(self, service: Service, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.metrics = ServiceMetrics(service.name)
        self.allowed_origins = set(settings.allowed_origins)
        self.tool_definitions = [t.definition() for t in service.tools.values()]  # tools/list, built once

    async def call(self, tool: Tool, arguments: Any, transport: str) -> Any:
        start = time.perf_counter()
        status = "ok"
        error: DevenvError | None = None
        try:
            return await tool.arun(arguments)
        except InvalidArguments as exc:
            status, error = "invalid_arguments", exc
            raise
        except ToolError as exc:
            status, error = "tool_error", exc
            raise
        finally:
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

    def origin_allowed(self, origin: str | None) -> bool:
        """DNS-rebinding defence: browsers send Origin; only loopback and listed origins may call."""
        if origin is None or "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        return (urlsplit(origin).hostname or "") in _LOOPBACK

    def tool_not_found(self, name: str) -> ToolNotFound:
        return ToolNotFound(self.service.name, name, sorted(self.service.tools))


# -- POST /mcp ------------------------------------------------------------------------------


async def _mcp_endpoint(request: Request) -> Response:
    runtime: _Runtime = request.app.state.runtime
    if request.method != "POST":
        # Stateless: no server-initiated stream to GET, no session to DELETE.
        return _json({"error": "use POST for MCP messages"}, 405, {"allow": "POST"})
    if not runtime.origin_allowed(request.headers.get("origin")):
        return _rpc_error(None, protocol.INVALID_REQUEST, "Origin not allowed", 403)
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
        return _rpc_error(message.get("id"), protocol.INVALID_REQUEST, '"method" is required', 400)
    method = message["method"]
    if not isinstance(method, str):
        return _rpc_error(message.get("id"), protocol.INVALID_REQUEST, '"method" must be a string', 400)
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
        "capabilities": {"tools": {"listChanged": False}},
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
    try:
        result = await runtime.call(tool, params.get("arguments"), "mcp")
    except (InvalidArguments, ToolError) as exc:
        return _json(protocol.result_response(request_id, protocol.tool_error_result(exc)))
    return _json(protocol.result_response(request_id, protocol.tool_result(tool.structured(result))))


_METHODS = {"initialize": _initialize, "ping": _ping, "tools/list": _tools_list, "tools/call": _tools_call}


# -- POST /tools/{name} ---------------------------------------------------------------------


def _error_body(exc: DevenvError, status: int) -> JSONResponse:
    return JSONResponse({"error": protocol.error_payload(exc)}, status)


def _rest_route(app: FastAPI, runtime: _Runtime, tool: Tool) -> None:
    required = any(f.is_required() for f in tool.input_model.model_fields.values())

    async def endpoint(arguments: Any = Body(... if required else None)) -> Response:
        payload = {} if arguments is None else arguments.model_dump(mode="json")
        try:
            result = await runtime.call(tool, payload, "rest")
        except InvalidArguments as exc:
            return _error_body(exc, 422)
        except ToolError as exc:
            return _error_body(exc, 400 if exc.error_type in _CLIENT_FAULTS else 500)
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
            400: {"description": "The tool rejected its input"},
            413: {"description": "Request body too large"},
            422: {"description": "Arguments do not match the input schema"},
        },
    )


def _rest_result_schema(tool: Tool) -> dict[str, Any]:
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


def create_app(service: Service, settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    service.debug = service.debug or settings.debug
    runtime = _Runtime(service, settings)
    app = FastAPI(
        title=f"{service.name} (devenv)",
        version=service.version,
        description=f"MCP at POST /mcp; plain JSON at POST /tools/{{name}}. {service.instructions or ''}".strip(),
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

    @app.get("/health", tags=["probes"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "service": service.name, "version": service.version}

    @app.get("/ready", tags=["probes"])
    async def ready() -> Response:
        """Readiness: every declared dependency answers (503 while one does not)."""
        checks = await anyio.to_thread.run_sync(service.check_ready)
        failed = {k: redact(v) for k, v in checks.items() if v is not None}
        body = {"status": "not ready" if failed else "ready", "checks": {k: v or "ok" for k, v in checks.items()}}
        body["checks"].update(failed)
        return _json(body, 503 if failed else 200)

    @app.get("/metrics", tags=["probes"])
    async def metrics() -> Response:
        return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
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
