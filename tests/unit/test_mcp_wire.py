"""POST /mcp against a real uvicorn server: the protocol, and every bad input we promise to handle."""

from __future__ import annotations

import httpx
import pytest

from devenv import create_app
from devenv.config import Settings
from tests.conftest import serve_in_thread
from tests.unit.demo_service import make_service

ACCEPT = {"accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def base_url():
    with serve_in_thread(create_app(make_service(), Settings(max_body_bytes=64 * 1024))) as url:
        yield url


@pytest.fixture
def http(base_url):
    with httpx.Client(base_url=base_url, headers=ACCEPT, timeout=10) as client:
        yield client


def rpc(http, method, params=None, id=1, headers=None):
    body = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        body["params"] = params
    return http.post("/mcp", json=body, headers=headers or {})


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_initialize_echoes_a_supported_version(http, version):
    r = rpc(
        http,
        "initialize",
        {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    result = r.json()["result"]
    assert result["protocolVersion"] == version
    assert result["serverInfo"] == {"name": "demo", "version": "0.1.0"}
    assert result["capabilities"]["tools"] == {"listChanged": False}
    assert result["instructions"] == "Tools for testing devenv itself."
    assert "mcp-session-id" not in r.headers  # stateless


def test_initialize_counters_an_unknown_version_with_the_latest(http):
    r = rpc(http, "initialize", {"protocolVersion": "2024-01-01", "capabilities": {}})
    assert r.json()["result"]["protocolVersion"] == "2025-11-25"


def test_notifications_are_accepted_with_202_and_no_body(http):
    r = http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert r.status_code == 202
    assert r.content == b""


def test_ping_answers_an_empty_result(http):
    assert rpc(http, "ping", id="p-1").json() == {"jsonrpc": "2.0", "id": "p-1", "result": {}}


def test_tools_list_describes_schemas_annotations_and_docstrings(http):
    tools = {t["name"]: t for t in rpc(http, "tools/list").json()["result"]["tools"]}
    echo = tools["echo"]
    assert echo["description"] == "Repeat text."
    assert echo["inputSchema"]["properties"]["text"] == {
        "description": "what to repeat",
        "title": "Text",
        "type": "string",
    }
    assert echo["inputSchema"]["properties"]["times"]["maximum"] == 5
    assert echo["inputSchema"]["required"] == ["text"]
    assert echo["inputSchema"]["additionalProperties"] is False
    assert echo["outputSchema"]["properties"]["result"] == {"type": "string"}
    assert echo["annotations"] == {"readOnlyHint": True, "idempotentHint": True}
    assert tools["fail"]["annotations"] == {"readOnlyHint": False, "idempotentHint": False, "destructiveHint": True}
    assert tools["make_box"]["outputSchema"]["properties"]["corners"]["type"] == "array"


def test_tools_call_returns_structured_content_and_its_text(http):
    result = rpc(http, "tools/call", {"name": "make_box", "arguments": {"label": "a", "corners": [{"x": 1, "y": 2}]}})
    result = result.json()["result"]
    assert result["isError"] is False
    assert result["structuredContent"] == {"label": "a", "corners": [{"x": 1, "y": 2}]}
    assert result["content"] == [{"type": "text", "text": '{"label":"a","corners":[{"x":1,"y":2}]}'}]


def test_non_object_results_are_wrapped(http):
    result = rpc(http, "tools/call", {"name": "echo", "arguments": {"text": "ab", "times": 2}}).json()["result"]
    assert result["structuredContent"] == {"result": "abab"}


def test_invalid_arguments_are_an_is_error_result_naming_the_fields(http):
    r = rpc(http, "tools/call", {"name": "echo", "arguments": {"text": 5, "times": 9, "extra": 1}})
    assert r.status_code == 200
    result = r.json()["result"]
    assert result["isError"] is True
    error = result["_meta"]["dev.devenv/error"]
    assert error["type"] == "InvalidArguments"
    assert sorted(e["field"] for e in error["errors"]) == ["extra", "text", "times"]
    assert "text" in result["content"][0]["text"]


def test_arguments_that_are_not_an_object_are_invalid(http):
    result = rpc(http, "tools/call", {"name": "echo", "arguments": ["a"]}).json()["result"]
    assert result["isError"] is True
    assert "must be a JSON object" in result["content"][0]["text"]


def test_a_tool_that_raises_is_an_is_error_result_without_traceback(http):
    result = rpc(http, "tools/call", {"name": "fail", "arguments": {"message": "no such file"}}).json()["result"]
    assert result["isError"] is True
    error = result["_meta"]["dev.devenv/error"]
    assert (error["type"], error["error_type"], error["detail"]) == ("ToolError", "ValueError", "no such file")
    assert "traceback" not in error


def test_a_result_that_breaks_the_return_annotation_is_a_tool_error(http):
    result = rpc(http, "tools/call", {"name": "wrong_type", "arguments": {}}).json()["result"]
    assert result["isError"] is True
    assert result["_meta"]["dev.devenv/error"]["error_type"] == "ResultError"


def test_unknown_tool_is_invalid_params(http):
    r = rpc(http, "tools/call", {"name": "nope", "arguments": {}})
    error = r.json()["error"]
    assert error["code"] == -32602
    assert "nope" in error["message"]
    assert error["data"]["known"] == sorted(error["data"]["known"]) and "echo" in error["data"]["known"]


def test_tools_call_without_a_name_is_invalid_params(http):
    assert rpc(http, "tools/call", {"arguments": {}}).json()["error"]["code"] == -32602


def test_unknown_method_is_method_not_found(http):
    r = rpc(http, "resources/list")
    assert r.json()["error"]["code"] == -32601
    assert "resources/list" in r.json()["error"]["message"]


def test_malformed_json_is_a_parse_error(http):
    r = http.post("/mcp", content=b'{"jsonrpc": "2.0", "id": 1,', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == -32700
    assert r.json()["id"] is None


@pytest.mark.parametrize(
    "body, fragment",
    [
        ([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], "batch"),
        ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, "jsonrpc"),
        ("just a string", "jsonrpc"),
        ({"jsonrpc": "2.0", "id": 1}, "method"),
        ({"jsonrpc": "2.0", "id": 1, "method": 7}, "method"),
        ({"jsonrpc": "2.0", "id": None, "method": "ping"}, "id"),
        ({"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}, "id"),
    ],
)
def test_invalid_requests_are_400_with_invalid_request(http, body, fragment):
    r = http.post("/mcp", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == -32600
    assert fragment in r.json()["error"]["message"]


def test_params_that_are_not_an_object_are_invalid_params(http):
    assert rpc(http, "ping", params=[1]).json()["error"]["code"] == -32602


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_get_and_delete_are_405(http, method):
    r = http.request(method, "/mcp")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"


def test_wrong_content_type_is_415(http):
    r = http.post("/mcp", content=b"ping", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert "Content-Type" in r.json()["error"]["message"]


@pytest.mark.parametrize("origin", ["http://evil.example.com", "https://attacker.test:8443", "null"])
def test_foreign_origins_are_forbidden(http, origin):
    r = rpc(http, "ping", headers={"origin": origin})
    assert r.status_code == 403
    assert "Origin" in r.json()["error"]["message"]


@pytest.mark.parametrize("origin", ["http://localhost:6274", "http://127.0.0.1:8101", "http://[::1]:3000"])
def test_loopback_origins_are_allowed(http, origin):
    assert rpc(http, "ping", headers={"origin": origin}).status_code == 200


def test_allowed_origins_come_from_settings():
    app = create_app(make_service(), Settings(allowed_origins=("https://agents.example.com",)))
    with serve_in_thread(app) as url:
        ok = httpx.post(
            f"{url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"origin": "https://agents.example.com"},
        )
        bad = httpx.post(
            f"{url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"origin": "https://other.example.com"},
        )
    assert (ok.status_code, bad.status_code) == (200, 403)


@pytest.mark.parametrize("version", ["1999-01-01", "garbage"])
def test_unsupported_protocol_version_header_is_400(http, version):
    r = rpc(http, "ping", headers={"mcp-protocol-version": version})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == -32022  # UnsupportedProtocolVersion, whichever era the client is from
    assert version in error["message"]
    assert error["data"] == {"supported": ["2026-07-28", "2025-11-25", "2025-06-18"], "requested": version}


def test_supported_protocol_version_header_is_accepted(http):
    assert rpc(http, "ping", headers={"mcp-protocol-version": "2025-06-18"}).status_code == 200


def test_oversized_body_is_413_by_content_length(http):
    r = rpc(http, "tools/call", {"name": "echo", "arguments": {"text": "x" * 70_000}})
    assert r.status_code == 413
    assert "65536" in r.json()["error"]["message"]


def test_oversized_body_is_413_when_streamed_without_length(http):
    def chunks():
        for _ in range(20):
            yield b"x" * 8192

    r = http.post("/mcp", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_the_server_keeps_serving_after_bad_input(http):
    http.post("/mcp", content=b"\xff\xfe garbage", headers={"content-type": "application/json"})
    assert rpc(http, "tools/call", {"name": "echo", "arguments": {"text": "ok"}}).json()["result"][
        "structuredContent"
    ] == {"result": "ok"}
