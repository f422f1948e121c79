"""MCP over JSON-RPC 2.0: versions, error codes, message shapes, and error (de)serialisation.

Kept free of HTTP and of FastAPI so that the in-process transport, the server and the
HTTP client all shape messages and errors the same way.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from .errors import (
    CapabilityMissing,
    DevenvError,
    InvalidArguments,
    ProtocolError,
    ServiceNotFound,
    ToolError,
    ToolNotFound,
)

__all__ = [
    "ALL_VERSIONS",
    "CACHEABLE_METHODS",
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "JSONDecodeError",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "LATEST_VERSION",
    "META_CLIENT_CAPABILITIES",
    "META_CLIENT_INFO",
    "META_LOG_LEVEL",
    "META_PROTOCOL_VERSION",
    "META_SERVER_INFO",
    "METHOD_NOT_FOUND",
    "MISSING_CLIENT_CAPABILITY",
    "MODERN_VERSION",
    "MODERN_VERSIONS",
    "NAMED_METHODS",
    "PARSE_ERROR",
    "REMOVED_IN_MODERN",
    "SUPPORTED_VERSIONS",
    "TRACE_META_KEYS",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "decode_header_value",
    "dumps",
    "error_from_payload",
    "error_payload",
    "error_response",
    "is_modern",
    "loads",
    "result_response",
    "tool_error_result",
    "tool_result",
]

# Legacy ("initialize handshake") revisions; LATEST_VERSION is what a legacy handshake counters with.
SUPPORTED_VERSIONS = ("2025-06-18", "2025-11-25")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]
# Modern revisions: no handshake, every request carries its version and capabilities in `_meta`.
MODERN_VERSION = "2026-07-28"
MODERN_VERSIONS = (MODERN_VERSION,)
ALL_VERSIONS = (*MODERN_VERSIONS, *reversed(SUPPORTED_VERSIONS))  # newest first, as server/discover lists them

META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
META_LOG_LEVEL = "io.modelcontextprotocol/logLevel"
TRACE_META_KEYS = ("traceparent", "tracestate", "baggage")  # W3C trace context, reserved in `_meta`

# Methods 2026-07-28 removed: a modern request for one is 404 / -32601 like any unknown method.
REMOVED_IN_MODERN = frozenset(
    {
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "tasks/list",
        "tasks/result",
    }
)
# Methods whose `Mcp-Name` header mirrors a body parameter.
NAMED_METHODS = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    # the tasks extension: a load balancer routes a task's polls by its id
    "tasks/get": "taskId",
    "tasks/update": "taskId",
    "tasks/cancel": "taskId",
}
# Results that carry `ttlMs` / `cacheScope` (SEP-2549), with the hints devenv gives them: lists
# change only when the service is redeployed; a resource's content may depend on the caller.
CACHEABLE_METHODS = {
    "server/discover": (300_000, "public"),
    "tools/list": (60_000, "public"),
    "prompts/list": (60_000, "public"),
    "resources/list": (60_000, "public"),
    "resources/templates/list": (60_000, "public"),
    "resources/read": (0, "private"),
}

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022

# Where a devenv peer puts the machine-readable error inside an `isError` result, so the
# caller can raise the same exception class it would have raised in-process.
ERROR_META_KEY = "dev.devenv/error"


JSONDecodeError = orjson.JSONDecodeError


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def is_modern(params: dict[str, Any]) -> bool:
    """Whether a request that reached a handler is a 2026-07-28 one (the dispatcher admits a
    `_meta` protocol version only when it is a modern revision)."""
    meta = params.get("_meta")
    return isinstance(meta, dict) and META_PROTOCOL_VERSION in meta


_SENTINEL_START, _SENTINEL_END = "=?base64?", "?="


def decode_header_value(value: str) -> str | None:
    """An ``Mcp-Name`` / ``Mcp-Param-*`` value as text: Base64 sentinels decoded, None if malformed.

    Leading and trailing spaces and tabs are not part of an HTTP field value (RFC 9110 5.5), so
    they are dropped first; a value that needs them travels Base64-encoded."""
    value = value.strip(" \t")
    if value.startswith(_SENTINEL_START) and value.endswith(_SENTINEL_END) and len(value) >= 11:
        try:
            return base64.b64decode(value[9:-2], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
    if value.isascii() and value.isprintable():  # the usual case, checked in C
        return value
    return value if all(c == "\t" or " " <= c <= "~" for c in value) else None


def result_response(request_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_response(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def tool_result(structured: dict[str, Any]) -> dict[str, Any]:
    """A successful tools/call result: structured content plus its JSON text for older clients."""
    return {
        "content": [{"type": "text", "text": dumps(structured).decode()}],
        "structuredContent": structured,
        "isError": False,
    }


def tool_error_result(exc: DevenvError) -> dict[str, Any]:
    """An ``isError`` result (MCP 2025-11-25: argument and execution errors go to the model)."""
    return {
        "content": [{"type": "text", "text": str(exc)}],
        "isError": True,
        "_meta": {ERROR_META_KEY: error_payload(exc)},
    }


def error_payload(exc: DevenvError) -> dict[str, Any]:
    """The JSON form of a devenv error, used in `isError` results and REST error bodies."""
    payload: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, InvalidArguments):
        payload.update(tool=exc.tool, errors=exc.errors)
    elif isinstance(exc, ToolError):
        payload.update(tool=exc.tool, error_type=exc.error_type, detail=exc.message)
        if exc.traceback:
            payload["traceback"] = exc.traceback
    elif isinstance(exc, ToolNotFound):
        payload.update(service=exc.service, tool=exc.tool, known=exc.known)
    elif isinstance(exc, ServiceNotFound):
        payload.update(service=exc.service, known=exc.known)
    elif isinstance(exc, CapabilityMissing):
        payload.update(method=exc.method, capability=exc.capability)
    return payload


def error_from_payload(payload: dict[str, Any], *, service: str, tool: str) -> DevenvError:
    """Rebuild the exception a devenv peer reported; a type we cannot rebuild is a ``ProtocolError``."""
    kind = payload.get("type")
    if kind == "InvalidArguments":
        return InvalidArguments(payload.get("tool", tool), list(payload.get("errors", [])))
    if kind == "ToolError":
        return ToolError(
            payload.get("tool", tool),
            payload.get("error_type", "Exception"),
            payload.get("detail", payload.get("message", "")),
            payload.get("traceback"),
        )
    if kind == "ToolNotFound":
        return ToolNotFound(payload.get("service", service), payload.get("tool", tool), payload.get("known"))
    if kind == "ServiceNotFound":
        return ServiceNotFound(payload.get("service", service), payload.get("known"))
    return ProtocolError(f"{service}/{tool}: {payload.get('message', payload)}")
