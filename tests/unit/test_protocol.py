"""devenv.protocol: error (de)serialisation, tools/call result shapes, JSON helpers."""

from __future__ import annotations

import pytest

from devenv import protocol
from devenv.errors import (
    ConfigError,
    DevenvError,
    InvalidArguments,
    ProtocolError,
    ServiceNotFound,
    ServiceUnavailable,
    ToolError,
    ToolNotFound,
)


def fields(exc: DevenvError) -> dict:
    """What a caller can read off an exception: its class, message and public attributes."""
    return {"class": type(exc), "str": str(exc), **{k: v for k, v in vars(exc).items() if not k.startswith("_")}}


ROUND_TRIPS = [
    InvalidArguments(
        "find_category",
        [
            {"field": "query", "message": "Field required", "type": "missing"},
            {"field": "corners.0.x", "message": "Input should be a valid integer", "type": "int_parsing"},
        ],
    ),
    InvalidArguments("t", [{"field": "", "message": "arguments must be a JSON object", "type": "dict_type"}]),
    ToolError("find_category", "ValueError", "bad input"),
    ToolError("find_category", "KeyError", "'x'", "Traceback (most recent call last):\n  ...\nKeyError: 'x'\n"),
    ToolError("t", "ResultError", "result does not match the return annotation: ..."),
    ToolNotFound("jd-classifier", "nope", ["find_category", "list_categories"]),
    ToolNotFound("jd-classifier", "nope"),
    ServiceNotFound("nope", ["jd-classifier", "notifications"]),
    ServiceNotFound("nope"),
]


@pytest.mark.parametrize("exc", ROUND_TRIPS, ids=lambda e: f"{type(e).__name__}")
def test_error_round_trip(exc):
    payload = protocol.error_payload(exc)
    wire = protocol.loads(protocol.dumps(payload))  # what actually travels
    assert wire == payload
    rebuilt = protocol.error_from_payload(wire, service="jd-classifier", tool="find_category")
    assert fields(rebuilt) == fields(exc)


def test_error_payload_shapes():
    assert protocol.error_payload(ToolError("t", "ValueError", "boom")) == {
        "type": "ToolError",
        "message": "tool 't' failed: ValueError: boom",
        "tool": "t",
        "error_type": "ValueError",
        "detail": "boom",
    }
    assert protocol.error_payload(ToolNotFound("svc", "t", ["a"])) == {
        "type": "ToolNotFound",
        "message": "service 'svc' has no tool 't'; its tools: a",
        "service": "svc",
        "tool": "t",
        "known": ["a"],
    }
    errors = [{"field": "q", "message": "Field required", "type": "missing"}]
    assert protocol.error_payload(InvalidArguments("t", errors)) == {
        "type": "InvalidArguments",
        "message": "invalid arguments for 't': q: Field required",
        "tool": "t",
        "errors": errors,
    }
    assert protocol.error_payload(ServiceNotFound("x", ["a", "b"])) == {
        "type": "ServiceNotFound",
        "message": "unknown service 'x'; known services: a, b",
        "service": "x",
        "known": ["a", "b"],
    }


def test_traceback_is_only_in_the_payload_when_present():
    assert "traceback" not in protocol.error_payload(ToolError("t", "E", "m"))
    assert protocol.error_payload(ToolError("t", "E", "m", "TB"))["traceback"] == "TB"


@pytest.mark.parametrize(
    "exc",
    [
        ConfigError("DEVENV_TIMEOUT='x' is not a number"),
        ServiceUnavailable("redis", "redis://cache:6379/0", "connection refused"),
        ProtocolError("bad reply", -32600),
        DevenvError("plain"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_without_a_rich_payload_come_back_as_protocol_error_with_their_message(exc):
    payload = protocol.error_payload(exc)
    assert payload == {"type": type(exc).__name__, "message": str(exc)}
    rebuilt = protocol.error_from_payload(payload, service="svc", tool="t")
    assert type(rebuilt) is ProtocolError
    assert str(rebuilt) == f"svc/t: {exc}"


@pytest.mark.parametrize(
    "payload",
    [{"type": "Whatever", "message": "odd"}, {"message": "no type"}, {}, {"type": None}],
    ids=["unknown-type", "no-type", "empty", "null-type"],
)
def test_unknown_payload_type_is_protocol_error(payload):
    rebuilt = protocol.error_from_payload(payload, service="svc", tool="t")
    assert type(rebuilt) is ProtocolError
    assert str(rebuilt).startswith("svc/t: ")
    if "message" in payload:
        assert str(rebuilt) == f"svc/t: {payload['message']}"


def test_sparse_payloads_fall_back_to_the_callers_service_and_tool():
    tool_error = protocol.error_from_payload({"type": "ToolError"}, service="svc", tool="t")
    assert (type(tool_error), tool_error.tool, tool_error.error_type, tool_error.message) == (
        ToolError,
        "t",
        "Exception",
        "",
    )
    not_found = protocol.error_from_payload({"type": "ToolNotFound"}, service="svc", tool="t")
    assert (type(not_found), not_found.service, not_found.tool, not_found.known) == (ToolNotFound, "svc", "t", [])
    invalid = protocol.error_from_payload({"type": "InvalidArguments"}, service="svc", tool="t")
    assert (type(invalid), invalid.tool, invalid.errors) == (InvalidArguments, "t", [])
    unknown_service = protocol.error_from_payload({"type": "ServiceNotFound"}, service="svc", tool="t")
    assert (type(unknown_service), unknown_service.service) == (ServiceNotFound, "svc")


def test_tool_error_detail_falls_back_to_message():
    rebuilt = protocol.error_from_payload({"type": "ToolError", "message": "boom"}, service="s", tool="t")
    assert rebuilt.message == "boom"


# -- result shapes --------------------------------------------------------------------------


def test_tool_result_shape():
    structured = {"category": "tax", "score": 0.5, "tags": ["ä", 1]}
    result = protocol.tool_result(structured)
    assert result == {
        "content": [{"type": "text", "text": '{"category":"tax","score":0.5,"tags":["ä",1]}'}],
        "structuredContent": structured,
        "isError": False,
    }
    assert protocol.loads(result["content"][0]["text"]) == structured


def test_tool_error_result_shape():
    exc = ToolError("t", "ValueError", "boom")
    result = protocol.tool_error_result(exc)
    assert result == {
        "content": [{"type": "text", "text": "tool 't' failed: ValueError: boom"}],
        "isError": True,
        "_meta": {protocol.ERROR_META_KEY: protocol.error_payload(exc)},
    }
    assert "structuredContent" not in result
    assert protocol.ERROR_META_KEY == "dev.devenv/error"


def test_json_rpc_envelopes():
    assert protocol.result_response(7, {"x": 1}) == {"jsonrpc": "2.0", "id": 7, "result": {"x": 1}}
    assert protocol.error_response("a", protocol.METHOD_NOT_FOUND, "nope") == {
        "jsonrpc": "2.0",
        "id": "a",
        "error": {"code": -32601, "message": "nope"},
    }
    assert protocol.error_response(None, protocol.INVALID_PARAMS, "bad", {"k": 1})["error"] == {
        "code": -32602,
        "message": "bad",
        "data": {"k": 1},
    }


def test_error_codes_and_versions():
    assert (protocol.PARSE_ERROR, protocol.INVALID_REQUEST, protocol.METHOD_NOT_FOUND) == (-32700, -32600, -32601)
    assert (protocol.INVALID_PARAMS, protocol.INTERNAL_ERROR) == (-32602, -32603)
    assert protocol.SUPPORTED_VERSIONS == ("2025-06-18", "2025-11-25")
    assert protocol.LATEST_VERSION == "2025-11-25"


# -- dumps / loads --------------------------------------------------------------------------


def test_dumps_gives_compact_utf8_bytes():
    assert protocol.dumps({"a": [1, 2.5, None, True], "é": "ü"}) == '{"a":[1,2.5,null,true],"é":"ü"}'.encode()


def test_dumps_accepts_non_string_keys():
    assert protocol.loads(protocol.dumps({1: "one", 2: "two"})) == {"1": "one", "2": "two"}


def test_dumps_rejects_what_json_cannot_carry():
    with pytest.raises(TypeError):
        protocol.dumps({"x": object()})


@pytest.mark.parametrize("data", [b'{"a": 1}', '{"a": 1}', bytearray(b'{"a": 1}')])
def test_loads_accepts_bytes_and_str(data):
    assert protocol.loads(data) == {"a": 1}


@pytest.mark.parametrize("data", [b"{", b"", b"{'a': 1}", b"NaN"])
def test_loads_raises_json_decode_error(data):
    with pytest.raises(protocol.JSONDecodeError):
        protocol.loads(data)
    assert issubclass(protocol.JSONDecodeError, ValueError)
