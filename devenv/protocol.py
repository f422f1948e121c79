"""MCP over JSON-RPC 2.0: versions, error codes, message shapes, and error (de)serialisation.

Kept free of HTTP and of FastAPI so that the in-process transport, the server and the
HTTP client all shape messages and errors the same way.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import DevenvError, InvalidArguments, ProtocolError, ServiceNotFound, ToolError, ToolNotFound

__all__ = [
    "INTERNAL_ERROR",
    "JSONDecodeError",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "LATEST_VERSION",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "SUPPORTED_VERSIONS",
    "dumps",
    "error_from_payload",
    "error_payload",
    "error_response",
    "loads",
    "result_response",
    "tool_error_result",
    "tool_result",
]

SUPPORTED_VERSIONS = ("2025-06-18", "2025-11-25")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# Where a devenv peer puts the machine-readable error inside an `isError` result, so the
# caller can raise the same exception class it would have raised in-process.
ERROR_META_KEY = "dev.devenv/error"


JSONDecodeError = orjson.JSONDecodeError


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


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
