"""POST /mcp at MCP 2026-07-28 against a real uvicorn server: the per-request envelope, the
headers that mirror the body, and the spec's error for every bad input (never a 500)."""

from __future__ import annotations

import base64
import json
from http.client import HTTPConnection
from typing import Annotated
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import Field

from devenv import Service, create_app, protocol
from devenv.config import Settings
from devenv.errors import ConfigError
from tests.conftest import serve_in_thread
from tests.unit.demo_service import make_service

V = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": V,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
}
SERVER_INFO = {"io.modelcontextprotocol/serverInfo": {"name": "demo", "version": "0.1.0"}}


def wire_service() -> Service:
    """The demo service plus a tool that marks header arguments and one that needs sampling."""
    service = make_service()

    @service.tool
    def route(
        region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})],
        shard: Annotated[int | None, Field(json_schema_extra={"x-mcp-header": "Shard", "type": "integer"})] = None,
        query: str = "",
    ) -> str:
        """Answer where a query would run."""
        return f"{region}/{shard}/{query}"

    @service.tool(client_capabilities={"sampling": {}})
    def summarise(text: str) -> str:
        """Pretend to ask the client's model for a summary."""
        return text[:10]

    return service


@pytest.fixture(scope="module")
def base_url():
    with serve_in_thread(create_app(wire_service(), Settings())) as url:
        yield url


@pytest.fixture
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


def headers_for(method: str, name: str | None = None, **extra: str) -> dict[str, str]:
    h = {"accept": "application/json, text/event-stream", "mcp-protocol-version": V, "mcp-method": method}
    if name is not None:
        h["mcp-name"] = name
    h.update(extra)
    return h


def post(http, method, params, *, headers=None, id=1):
    """A conformant 2026-07-28 request unless ``headers`` replaces the mirrored headers."""
    if headers is None:
        headers = headers_for(method, params.get("name") if method == "tools/call" else None)
    return http.post("/mcp", json={"jsonrpc": "2.0", "id": id, "method": method, "params": params}, headers=headers)


def call(http, name, arguments, meta=META, **extra_headers):
    params = {"name": name, "arguments": arguments, "_meta": meta}
    return post(http, "tools/call", params, headers=headers_for("tools/call", name, **extra_headers))


def error_of(r, status, code):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code, body
    return body


# -- what a good request gets ----------------------------------------------------------------


def test_discover_declares_versions_capabilities_and_identity(http):
    r = post(http, "server/discover", {"_meta": META})
    assert r.status_code == 200
    result = r.json()["result"]
    assert result["resultType"] == "complete"
    assert result["supportedVersions"] == ["2026-07-28", "2025-11-25", "2025-06-18"]
    assert result["capabilities"] == {"tools": {"listChanged": False}}  # the demo has tools and nothing else
    assert result["_meta"] == SERVER_INFO
    assert result["instructions"] == "Tools for testing devenv itself."
    assert (result["ttlMs"], result["cacheScope"]) == (300_000, "public")


def test_client_info_is_optional(http):
    meta = {k: v for k, v in META.items() if k != "io.modelcontextprotocol/clientInfo"}
    assert post(http, "server/discover", {"_meta": meta}).status_code == 200


def test_tools_list_carries_result_type_cache_hints_and_the_legacy_definitions(http):
    modern = post(http, "tools/list", {"_meta": META}).json()["result"]
    legacy = http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).json()["result"]
    assert modern["tools"] == legacy["tools"]  # same schemas, same (registration) order
    assert [t["name"] for t in modern["tools"]][:3] == ["echo", "slow_square", "make_box"]
    assert modern["resultType"] == "complete" and modern["_meta"] == SERVER_INFO
    assert (modern["ttlMs"], modern["cacheScope"]) == (60_000, "public")
    assert "resultType" not in legacy and "ttlMs" not in legacy  # the 2025 answer is unchanged
    make_box = next(t for t in modern["tools"] if t["name"] == "make_box")
    assert make_box["inputSchema"]["properties"]["corners"]["items"] == {"$ref": "#/$defs/Point"}  # 2020-12 as is
    route = next(t for t in modern["tools"] if t["name"] == "route")
    assert route["inputSchema"]["properties"]["region"]["x-mcp-header"] == "Region"


def test_tools_call_result_is_complete_and_identifies_the_server(http):
    r = call(http, "echo", {"text": "hi", "times": 2}, **{"mcp-param-unused": "x"})
    assert r.status_code == 200
    result = r.json()["result"]
    assert result["structuredContent"] == {"result": "hihi"}
    assert result["resultType"] == "complete" and result["_meta"] == SERVER_INFO
    assert "ttlMs" not in result  # a tool result is not cacheable


def test_tool_errors_keep_devenv_error_meta_beside_server_info(http):
    result = call(http, "fail", {"message": "disk full"}).json()["result"]
    assert result["isError"] is True and result["resultType"] == "complete"
    assert result["_meta"]["dev.devenv/error"]["type"] == "ToolError"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "demo"


def test_trace_context_in_meta_is_accepted_and_not_an_argument(http):
    meta = {
        **META,
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01",
        "tracestate": "vendor=1",
        "baggage": "user=alice",
    }
    r = call(http, "echo", {"text": "t"}, meta=meta)
    assert r.json()["result"]["structuredContent"] == {"result": "t"}


def test_mcp_name_may_be_base64_encoded(http):
    encoded = "=?base64?" + base64.b64encode(b"echo").decode() + "?="
    params = {"name": "echo", "arguments": {"text": "b"}, "_meta": META}
    r = post(http, "tools/call", params, headers=headers_for("tools/call", encoded))
    assert r.json()["result"]["structuredContent"] == {"result": "b"}


def test_whitespace_around_a_header_value_is_not_part_of_it(base_url):
    # httpx refuses to send padded values; http.client sends them as they are, like undici.
    url = urlsplit(base_url)
    params = {"name": "echo", "arguments": {"text": "w"}, "_meta": META}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
    conn = HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("POST", "/mcp", body, {**headers_for("tools/call", "echo  "), "content-type": "application/json"})
        reply = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert reply["result"]["structuredContent"] == {"result": "w"}


# -- bad input: each gets the spec's error ----------------------------------------------------

ENVELOPE_CASES = {
    "no _meta": {},
    "_meta not an object": {"_meta": "2026-07-28"},
    "no protocolVersion": {"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}},
    "no clientCapabilities": {"_meta": {"io.modelcontextprotocol/protocolVersion": V}},
    "clientCapabilities not an object": {"_meta": {**META, "io.modelcontextprotocol/clientCapabilities": []}},
}


@pytest.mark.parametrize("params", ENVELOPE_CASES.values(), ids=ENVELOPE_CASES.keys())
def test_a_malformed_envelope_is_400_invalid_params(http, params):
    body = error_of(post(http, "server/discover", params, id=101), 400, -32602)
    assert body["id"] == 101
    assert "_meta" in body["error"]["message"]


def test_params_that_are_not_an_object_are_400_invalid_params(http):
    r = http.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": [1]},
        headers=headers_for("tools/list"),
    )
    error_of(r, 400, -32602)


def test_the_missing_envelope_keys_are_named(http):
    body = error_of(post(http, "tools/list", ENVELOPE_CASES["no clientCapabilities"]), 400, -32602)
    assert body["error"]["data"] == {"missing": ["io.modelcontextprotocol/clientCapabilities"]}


HEADER_CASES = {
    "no MCP-Protocol-Version": ({"mcp-method": "tools/list"}, "MCP-Protocol-Version"),
    "version header contradicts _meta": (
        {"mcp-protocol-version": "2025-11-25", "mcp-method": "tools/list"},
        "does not match",
    ),
    "no Mcp-Method": ({"mcp-protocol-version": V}, "Mcp-Method"),
    "Mcp-Method contradicts body": ({"mcp-protocol-version": V, "mcp-method": "tools/call"}, "'tools/call'"),
}


@pytest.mark.parametrize("headers, fragment", HEADER_CASES.values(), ids=HEADER_CASES.keys())
def test_headers_that_contradict_the_body_are_400_header_mismatch(http, headers, fragment):
    body = error_of(post(http, "tools/list", {"_meta": META}, headers=headers, id="h"), 400, -32020)
    assert fragment in body["error"]["message"]
    assert body["id"] == "h"


@pytest.mark.parametrize("name", [None, "crash", "=?base64?!!!?="])
def test_mcp_name_missing_or_contradicting_is_400_header_mismatch(http, name):
    params = {"name": "echo", "arguments": {"text": "x"}, "_meta": META}
    body = error_of(post(http, "tools/call", params, headers=headers_for("tools/call", name)), 400, -32020)
    assert "Mcp-Name" in body["error"]["message"]


@pytest.mark.parametrize("version", ["v999.0.0", "2099-01-01"])
def test_an_unsupported_version_is_400_with_the_supported_list(http, version):
    meta = {**META, "io.modelcontextprotocol/protocolVersion": version}
    r = post(
        http,
        "server/discover",
        {"_meta": meta},
        headers={"mcp-protocol-version": version, "mcp-method": "server/discover"},
    )
    body = error_of(r, 400, -32022)
    assert body["error"]["data"] == {"supported": ["2026-07-28"], "requested": version}


def test_a_legacy_version_in_meta_points_to_the_handshake(http):
    meta = {**META, "io.modelcontextprotocol/protocolVersion": "2025-11-25"}
    headers = {"mcp-protocol-version": "2025-11-25", "mcp-method": "tools/list"}
    body = error_of(post(http, "tools/list", {"_meta": meta}, headers=headers), 400, -32022)
    assert "initialize" in body["error"]["message"]


@pytest.mark.parametrize(
    "method", ["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"]
)
def test_methods_removed_in_2026_are_404_method_not_found(http, method):
    body = error_of(post(http, method, {"_meta": META}, id=500), 404, -32601)
    assert body["id"] == 500
    assert "removed" in body["error"]["message"]


def test_unknown_methods_are_404_method_not_found(http):
    body = error_of(post(http, "unknown/method", {"_meta": META}, id=601), 404, -32601)
    assert body["id"] == 601


def test_a_capability_the_client_did_not_declare_is_400(http):
    body = error_of(call(http, "summarise", {"text": "long text here"}), 400, -32021)
    assert body["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}
    meta = {**META, "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}
    assert call(http, "summarise", {"text": "long text here"}, meta=meta).json()["result"]["isError"] is False


def test_unknown_tools_stay_invalid_params(http):
    body = error_of(call(http, "missing", {}), 200, -32602)
    assert body["error"]["data"]["type"] == "ToolNotFound"


# -- x-mcp-header / Mcp-Param-* ---------------------------------------------------------------


def test_marked_arguments_travel_in_matching_headers(http):
    region64 = "=?base64?" + base64.b64encode("eu-west 1 ü".encode()).decode() + "?="
    ok = call(
        http,
        "route",
        {"region": "eu-west 1 ü", "shard": 42},
        **{"mcp-param-region": region64, "mcp-param-shard": "42.0"},
    )
    assert ok.json()["result"]["structuredContent"] == {"result": "eu-west 1 ü/42/"}
    no_shard = call(http, "route", {"region": "us", "shard": None}, **{"mcp-param-region": "us"})
    assert no_shard.status_code == 200  # null counts as absent: no header expected


@pytest.mark.parametrize(
    "arguments, headers, fragment",
    [
        ({"region": "us"}, {}, "mcp-param-region header is required"),
        ({"region": "us"}, {"mcp-param-region": "eu"}, "does not match"),
        ({"region": "us", "shard": 7}, {"mcp-param-region": "us", "mcp-param-shard": "8"}, "does not match"),
        ({"region": "us"}, {"mcp-param-region": "us", "mcp-param-shard": "1"}, "is not"),
        ({"region": "us"}, {"mcp-param-region": "=?base64?%%%?="}, "characters"),
    ],
)
def test_param_headers_that_disagree_with_arguments_are_400_header_mismatch(http, arguments, headers, fragment):
    body = error_of(call(http, "route", arguments, **headers), 400, -32020)
    assert fragment in body["error"]["message"]


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ({"type": "number"}, "string, integer or boolean"),
        ({"x-mcp-header": ""}, "HTTP token"),
        ({"x-mcp-header": "Bad Name"}, "HTTP token"),
    ],
)
def test_a_tool_whose_header_marks_break_the_rules_is_refused_at_start(extra, fragment):
    service = Service("bad")

    def t(x: str) -> str:
        return x

    t.__annotations__ = {"x": Annotated[str, Field(json_schema_extra={"x-mcp-header": "X", **extra})], "return": str}
    service.tool(t)
    with pytest.raises(ConfigError, match=fragment):
        create_app(service, Settings())


def test_header_marks_must_be_unique_and_statically_reachable():
    dup = Service("dup")

    @dup.tool
    def a(
        x: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Key"})],
        y: Annotated[str, Field(json_schema_extra={"x-mcp-header": "key"})],
    ) -> str:
        return x + y

    with pytest.raises(ConfigError, match="used twice"):
        create_app(dup, Settings())

    nested = Service("nested")

    @nested.tool
    def b(xs: list[Annotated[str, Field(json_schema_extra={"x-mcp-header": "X"})]]) -> str:
        return ""

    with pytest.raises(ConfigError, match="through 'properties' alone"):
        create_app(nested, Settings())


# -- the legacy era on the same endpoint -------------------------------------------------------


def test_a_legacy_request_for_discover_is_method_not_found_as_before(http):
    r = http.post("/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "server/discover"})
    assert r.status_code == 200
    assert r.json()["error"]["code"] == -32601


def test_legacy_and_modern_requests_interleave(http):
    legacy = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "l"}}}
    for _ in range(2):
        assert http.post("/mcp", json=legacy, headers={"mcp-protocol-version": "2025-06-18"}).json()["result"][
            "structuredContent"
        ] == {"result": "l"}
        assert call(http, "echo", {"text": "m"}).json()["result"]["resultType"] == "complete"


@pytest.mark.parametrize(
    "raw, decoded",
    [
        ("us-west1", "us-west1"),
        ("a\tb", "a\tb"),
        ("  padded ", "padded"),
        ("=?base64?SGVsbG8sIOS4lueVjA==?=", "Hello, 世界"),
        ("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=", "=?base64?literal?="),
        ("café", None),  # raw non-ASCII: a client must Base64 it
        ("a\nb", None),
        ("a\x7fb", None),
        ("=?base64?not base64?=", None),
        ("=?base64?/w==?=", None),  # valid Base64, not UTF-8
    ],
)
def test_header_values_decode_as_the_spec_encodes_them(raw, decoded):
    assert protocol.decode_header_value(raw) == decoded
