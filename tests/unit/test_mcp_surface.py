"""POST /mcp for resources, prompts, completion, rich content, progress and logs, on a real uvicorn."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import orjson
import pytest

from devenv import Service, create_app
from devenv.content import Image, Text
from devenv.context import Context
from tests.conftest import serve_in_thread

ACCEPT = {"accept": "application/json, text/event-stream"}
cancelled = threading.Event()


def make_surface_service() -> Service:
    svc = Service("surface", instructions="the server surface under test")

    @svc.tool
    def picture() -> list[Text | Image]:
        return [Text("a pixel"), Image(b"png", "image/png")]

    @svc.tool
    def counted(n: int, ctx: Context) -> int:
        """A sync tool: it reports from its worker thread."""
        for i in range(n):
            ctx.report_progress(i + 1, n)
        ctx.debug("counted")
        ctx.warning("careful")
        return n

    @svc.tool
    async def slow(ctx: Context) -> str:
        ctx.report_progress(1)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    @svc.tool
    async def fails(ctx: Context) -> str:
        ctx.report_progress(1)
        raise RuntimeError("went wrong")

    @svc.resource("s://text", mime_type="text/plain")
    def text() -> str:
        return "hello"

    @svc.resource("s://items/{item}", complete={"item": ["apple", "apricot", "banana"]})
    def item(item: str) -> dict[str, str]:
        if item == "boom":
            raise RuntimeError("disk on fire")
        return {"item": item}

    @svc.prompt(complete={"topic": ["tax", "travel"]})
    def ask(topic: str) -> str:
        return f"Tell me about {topic}"

    return svc


@pytest.fixture(scope="module")
def base_url():
    with serve_in_thread(create_app(make_surface_service())) as url:
        yield url


@pytest.fixture(scope="module")
def bare_url():
    bare = Service("bare")

    @bare.tool
    def only() -> str:
        return "a tool"

    with serve_in_thread(create_app(bare)) as url:
        yield url


@pytest.fixture
def http(base_url):
    with httpx.Client(base_url=base_url, headers=ACCEPT, timeout=10) as client:
        yield client


def rpc(http, method, params=None, id=1):
    body = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        body["params"] = params
    return http.post("/mcp", json=body)


def events(response: httpx.Response) -> list[dict]:
    assert response.headers["content-type"].startswith("text/event-stream")
    return [orjson.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]


def test_initialize_declares_exactly_what_the_service_has(http, bare_url):
    caps = rpc(http, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}}).json()["result"]
    assert set(caps["capabilities"]) == {"tools", "resources", "prompts", "completions", "logging"}
    with httpx.Client(base_url=bare_url, headers=ACCEPT) as bare:
        bare_caps = rpc(bare, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}}).json()["result"]
    assert bare_caps["capabilities"] == {"tools": {"listChanged": False}}


@pytest.mark.parametrize(
    "method", ["resources/list", "resources/templates/list", "resources/read", "prompts/list", "completion/complete"]
)
def test_a_service_without_the_feature_answers_method_not_found(bare_url, method):
    with httpx.Client(base_url=bare_url, headers=ACCEPT) as bare:
        error = rpc(bare, method, {}).json()["error"]
    assert error["code"] == -32601
    assert "bare offers no" in error["message"]


def test_resources_list_templates_and_read(http):
    assert rpc(http, "resources/list").json()["result"]["resources"] == [
        {"uri": "s://text", "name": "text", "mimeType": "text/plain"}
    ]
    templates = rpc(http, "resources/templates/list").json()["result"]["resourceTemplates"]
    assert templates == [{"uriTemplate": "s://items/{item}", "name": "item"}]
    read = rpc(http, "resources/read", {"uri": "s://items/pear"}).json()["result"]
    assert read["contents"] == [{"uri": "s://items/pear", "mimeType": "application/json", "text": '{"item":"pear"}'}]


def test_an_unknown_resource_is_invalid_params_with_its_uri(http):
    error = rpc(http, "resources/read", {"uri": "s://nothing"}).json()["error"]
    assert error == {"code": -32602, "message": "Resource not found", "data": {"uri": "s://nothing"}}


def test_a_missing_uri_is_invalid_params(http):
    error = rpc(http, "resources/read", {}).json()["error"]
    assert error["code"] == -32602
    assert '"uri" must be a non-empty string' in error["message"]


def test_a_resource_that_raises_is_an_internal_error_naming_it(http):
    error = rpc(http, "resources/read", {"uri": "s://items/boom"}).json()["error"]
    assert error["code"] == -32603
    assert "RuntimeError: disk on fire" in error["message"]


def test_a_cursor_we_never_issued_is_refused(http):
    error = rpc(http, "prompts/list", {"cursor": "page-2"}).json()["error"]
    assert error["code"] == -32602
    assert "invalid cursor 'page-2'" in error["message"]


def test_prompts_list_and_get(http):
    prompts = rpc(http, "prompts/list").json()["result"]["prompts"]
    assert prompts == [{"name": "ask", "arguments": [{"name": "topic", "required": True}]}]
    got = rpc(http, "prompts/get", {"name": "ask", "arguments": {"topic": "tax"}}).json()["result"]
    assert got == {"messages": [{"role": "user", "content": {"type": "text", "text": "Tell me about tax"}}]}


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"name": "nope"}, "has no prompt 'nope'"),
        ({"name": "ask"}, "topic: required argument is missing"),
        ({"name": "ask", "arguments": {"topic": 3}}, "topic: a prompt argument must be a string"),
        ({"name": 7}, '"name" must be the prompt name'),
    ],
)
def test_bad_prompt_requests_are_invalid_params(http, params, needle):
    error = rpc(http, "prompts/get", params).json()["error"]
    assert error["code"] == -32602
    assert needle in error["message"]


def test_completion_for_a_prompt_and_a_template(http):
    prompt = {"ref": {"type": "ref/prompt", "name": "ask"}, "argument": {"name": "topic", "value": "t"}}
    assert rpc(http, "completion/complete", prompt).json()["result"]["completion"] == {
        "values": ["tax", "travel"],
        "total": 2,
        "hasMore": False,
    }
    template = {
        "ref": {"type": "ref/resource", "uri": "s://items/{item}"},
        "argument": {"name": "item", "value": "ap"},
        "context": {"arguments": {}},
    }
    assert rpc(http, "completion/complete", template).json()["result"]["completion"]["values"] == ["apple", "apricot"]


def test_a_bad_completion_ref_is_invalid_params(http):
    error = rpc(http, "completion/complete", {"ref": {"type": "ref/x"}, "argument": {"name": "a", "value": ""}})
    assert error.json()["error"]["code"] == -32602
    assert '"ref.type" must be' in error.json()["error"]["message"]


def test_a_content_tool_answers_content_blocks(http):
    result = rpc(http, "tools/call", {"name": "picture"}).json()["result"]
    assert result == {
        "content": [{"type": "text", "text": "a pixel"}, {"type": "image", "data": "cG5n", "mimeType": "image/png"}],
        "isError": False,
    }
    tool = next(t for t in rpc(http, "tools/list").json()["result"]["tools"] if t["name"] == "picture")
    assert "outputSchema" not in tool


def test_without_a_progress_token_a_context_tool_answers_plain_json(http):
    r = rpc(http, "tools/call", {"name": "counted", "arguments": {"n": 3}})
    assert r.headers["content-type"] == "application/json"
    assert r.json()["result"]["structuredContent"] == {"result": 3}


def test_progress_streams_on_the_requests_own_sse_response_in_order(http):
    r = rpc(http, "tools/call", {"name": "counted", "arguments": {"n": 3}, "_meta": {"progressToken": 42}}, id=9)
    messages = events(r)
    progress = [m["params"] for m in messages if m.get("method") == "notifications/progress"]
    assert progress == [{"progressToken": 42, "progress": i, "total": 3} for i in (1, 2, 3)]
    assert [m.get("method") for m in messages[:-1]] == ["notifications/progress"] * 3  # no logs: none asked
    assert messages[-1]["id"] == 9
    assert messages[-1]["result"]["structuredContent"] == {"result": 3}


def test_a_failing_tool_ends_its_stream_with_the_error_result(http):
    messages = events(rpc(http, "tools/call", {"name": "fails", "_meta": {"progressToken": "f"}}))
    assert messages[0]["method"] == "notifications/progress"
    assert messages[-1]["result"]["isError"] is True
    assert "went wrong" in messages[-1]["result"]["content"][0]["text"]


def test_bad_arguments_still_end_the_stream_with_an_answer(http):
    messages = events(rpc(http, "tools/call", {"name": "counted", "arguments": {}, "_meta": {"progressToken": 1}}))
    assert messages[-1]["result"]["isError"] is True
    assert "n: Field required" in messages[-1]["result"]["content"][0]["text"]


@pytest.mark.parametrize("token", [1.5, True, {"a": 1}])
def test_a_malformed_progress_token_is_invalid_params(http, token):
    error = rpc(http, "tools/call", {"name": "counted", "arguments": {"n": 1}, "_meta": {"progressToken": token}})
    assert error.json()["error"]["code"] == -32602
    assert "progressToken" in error.json()["error"]["message"]


def test_legacy_set_level_then_logs_stream_at_or_above_it(base_url):
    with httpx.Client(base_url=base_url, headers=ACCEPT, timeout=10) as http:
        bad = rpc(http, "logging/setLevel", {"level": "loud"}).json()["error"]
        assert bad["code"] == -32602
        assert "unknown log level 'loud'" in bad["message"]
        try:
            assert rpc(http, "logging/setLevel", {"level": "info"}).json()["result"] == {}
            messages = events(rpc(http, "tools/call", {"name": "counted", "arguments": {"n": 1}}))
            logs = [m["params"] for m in messages if m.get("method") == "notifications/message"]
            assert logs == [{"level": "warning", "data": "careful"}]  # debug is below info
        finally:
            assert rpc(http, "logging/setLevel", {"level": "emergency"}).json()["result"] == {}


def test_set_level_on_a_service_that_cannot_log_is_method_not_found(bare_url):
    with httpx.Client(base_url=bare_url, headers=ACCEPT) as bare:
        assert rpc(bare, "logging/setLevel", {"level": "info"}).json()["error"]["code"] == -32601


async def test_closing_the_stream_cancels_the_tool(base_url):
    cancelled.clear()
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "slow", "_meta": {"progressToken": 1}},
    }
    async with httpx.AsyncClient(base_url=base_url, headers=ACCEPT, timeout=10) as client:
        async with client.stream("POST", "/mcp", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    assert orjson.loads(line[6:])["method"] == "notifications/progress"
                    break  # the first event arrived: the tool runs; now hang up
    deadline = time.monotonic() + 10
    while not cancelled.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert cancelled.is_set(), "the tool kept running after its caller went away"


# -- 2026-07-28: the log level and the version travel with each request ----------------------

MODERN = "2026-07-28"


def modern(http, method, params=None, id=1, name=None, meta=None):
    params = dict(params or {})
    params["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        **(meta or {}),
    }
    headers = {"mcp-protocol-version": MODERN, "mcp-method": method}
    if name is not None:
        headers["mcp-name"] = name
    return http.post("/mcp", json={"jsonrpc": "2.0", "id": id, "method": method, "params": params}, headers=headers)


def test_modern_log_level_in_meta_streams_logs_and_frames_the_answer(http):
    r = modern(
        http,
        "tools/call",
        {"name": "counted", "arguments": {"n": 1}},
        name="counted",
        meta={"io.modelcontextprotocol/logLevel": "debug"},
    )
    messages = events(r)
    assert [m["params"]["data"] for m in messages if m.get("method") == "notifications/message"] == [
        "counted",
        "careful",
    ]
    assert not [m for m in messages if m.get("method") == "notifications/progress"]  # no token, no progress
    final = messages[-1]["result"]
    assert final["resultType"] == "complete"
    assert final["structuredContent"] == {"result": 1}


def test_modern_request_without_log_level_gets_no_logs_even_after_a_legacy_set_level(http):
    assert rpc(http, "logging/setLevel", {"level": "debug"}).json()["result"] == {}
    try:
        r = modern(http, "tools/call", {"name": "counted", "arguments": {"n": 2}}, name="counted")
        assert r.headers["content-type"] == "application/json"  # nothing to stream: plain JSON
        assert r.json()["result"]["structuredContent"] == {"result": 2}
    finally:
        rpc(http, "logging/setLevel", {"level": "emergency"})


def test_modern_unknown_log_level_is_invalid_params(http):
    r = modern(
        http,
        "tools/call",
        {"name": "counted", "arguments": {"n": 1}},
        name="counted",
        meta={"io.modelcontextprotocol/logLevel": "chatty"},
    )
    error = r.json()["error"]
    assert error["code"] == -32602
    assert "unknown log level 'chatty'" in error["message"]


def test_modern_results_of_the_surface_carry_result_type(http):
    read = modern(http, "resources/read", {"uri": "s://text"}, name="s://text").json()["result"]
    assert read["resultType"] == "complete"
    assert read["contents"][0]["text"] == "hello"
    listed = modern(http, "prompts/list").json()["result"]
    assert listed["resultType"] == "complete" and "ttlMs" in listed


def test_modern_set_level_is_removed(http):
    r = modern(http, "logging/setLevel", {"level": "info"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == -32601


def test_modern_missing_feature_is_a_404(bare_url):
    with httpx.Client(base_url=bare_url, headers=ACCEPT) as bare:
        r = modern(bare, "prompts/list")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == -32601
