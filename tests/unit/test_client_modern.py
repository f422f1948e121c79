"""MCPClient at MCP 2026-07-28: headers and _meta, traceparent, progress, elicitation (MRTR),
resources and prompts -- against the official SDK's server (mcp 2.x) as the peer."""

from __future__ import annotations

import asyncio
from typing import Annotated

import pytest
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from pydantic import BaseModel

from devenv import CapabilityMissing, MCPClient, create_app
from devenv.transports.base import TRACEPARENT
from devenv.transports.http import HTTPTransport
from tests.conftest import serve_in_thread
from tests.unit.demo_service import make_service

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Name(BaseModel):
    name: str


def ask_name() -> Elicit[Name]:
    return Elicit("Who are you?", Name)


def modern_server():
    server = MCPServer("modern")

    @server.tool()
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool()
    async def count(n: int, ctx: Context) -> int:
        for i in range(n):
            await ctx.report_progress(i + 1, n, f"step {i + 1}")
        return n

    @server.tool()
    def greet(who: Annotated[Name, Resolve(ask_name)]) -> str:
        return f"hello {who.name}"

    @server.resource("demo://greeting")
    def greeting() -> str:
        return "hi there"

    @server.prompt()
    def review(code: str) -> str:
        return f"Review this: {code}"

    return server


class Recorder:
    """ASGI wrapper that keeps each request's headers and JSON body."""

    def __init__(self, app) -> None:
        self.app, self.seen = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        import json

        self.seen.append(({k.decode(): v.decode() for k, v in scope["headers"]}, json.loads(body or b"null")))

        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # later reads wait for the disconnect, as the server expects
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


@pytest.fixture(scope="module")
def served():
    recorder = Recorder(modern_server().streamable_http_app(json_response=False))
    with serve_in_thread(recorder) as url:
        yield recorder, url


@pytest.fixture
def client(served):
    recorder, url = served
    made = MCPClient(transport=HTTPTransport(resolve=lambda s: url))
    yield made
    made.close()


def test_speaks_2026_07_28_without_initialize(client, served):
    recorder, _ = served
    recorder.seen.clear()
    assert client.call("modern/add", {"a": 1, "b": 2}) == 3
    methods = [body["method"] for _, body in recorder.seen]
    assert methods == ["server/discover", "tools/list", "tools/call"]
    headers, body = recorder.seen[-1]
    meta = body["params"]["_meta"]
    assert meta["io.modelcontextprotocol/protocolVersion"] == headers["mcp-protocol-version"] == "2026-07-28"
    assert meta["io.modelcontextprotocol/clientCapabilities"] == {}
    assert meta["io.modelcontextprotocol/clientInfo"]["name"] == "devenv"
    assert (headers["mcp-method"], headers["mcp-name"]) == ("tools/call", "add")
    assert "mcp-session-id" not in headers


async def test_traceparent_from_the_call_and_from_the_context(client, served):
    recorder, _ = served
    assert client.call("modern/add", {"a": 1, "b": 1}, traceparent=TRACE) == 2
    assert recorder.seen[-1][1]["params"]["_meta"]["traceparent"] == TRACE
    assert recorder.seen[-1][0]["traceparent"] == TRACE
    other = "00-" + "1" * 32 + "-" + "2" * 16 + "-00"
    token = TRACEPARENT.set(other)
    try:
        assert await client.acall("modern/add", {"a": 1, "b": 1}) == 2
    finally:
        TRACEPARENT.reset(token)
    await client.aclose()
    assert recorder.seen[-1][1]["params"]["_meta"]["traceparent"] == other
    assert client.call("modern/add", {"a": 0, "b": 0}) == 0
    assert "traceparent" not in recorder.seen[-1][1]["params"]["_meta"]


def test_a_malformed_traceparent_is_refused(client):
    with pytest.raises(ValueError, match="traceparent must be W3C"):
        client.call("modern/add", {"a": 1, "b": 1}, traceparent="not-a-trace")


def test_progress_reaches_the_callback_sync_and_async(client):
    seen = []
    assert client.call("modern/count", {"n": 3}, on_progress=lambda p, t, m: seen.append((p, t, m))) == 3
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]

    async def run():
        got = []

        async def record(progress, total, message):
            got.append(progress)

        result = await client.acall("modern/count", {"n": 2}, on_progress=record)
        await client.aclose()
        return result, got

    assert asyncio.run(run()) == (2, [1, 2])


def test_elicitation_is_answered_by_the_callback(client, served):
    recorder, _ = served
    asked = []

    def answer(params):
        asked.append(params["message"])
        return {"name": "ada"}

    assert client.call("modern/greet", {}, on_elicit=answer) == "hello ada"
    assert asked == ["Who are you?"]
    first, retry = [body for _, body in recorder.seen[-2:]]
    assert first["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] == {"elicitation": {"form": {}}}
    assert retry["params"]["inputResponses"] and retry["id"] != first["id"]


def test_elicitation_without_a_callback_is_a_clear_error(client):
    with pytest.raises(CapabilityMissing, match="pass on_elicit="):
        client.call("modern/greet", {})


async def test_async_elicitation_callback(client):
    async def answer(params):
        return {"action": "accept", "content": {"name": "bob"}}

    assert await client.acall("modern/greet", {}, on_elicit=answer) == "hello bob"
    await client.aclose()


def test_resources_and_prompts(client):
    assert [r["uri"] for r in client.list_resources("modern")] == ["demo://greeting"]
    assert client.read_resource("modern", "demo://greeting")[0]["text"] == "hi there"
    assert [p["name"] for p in client.list_prompts("modern")] == ["review"]
    prompt = client.get_prompt("modern", "review", {"code": "x = 1"})
    assert prompt["messages"][0]["content"]["text"] == "Review this: x = 1"


async def test_resources_and_prompts_async(client):
    assert (await client.aread_resource("modern", "demo://greeting"))[0]["text"] == "hi there"
    assert (await client.aget_prompt("modern", "review", {"code": "y"}))["messages"]
    assert [p["name"] for p in await client.alist_prompts("modern")] == ["review"]
    await client.aclose()


def test_bad_resource_uri_and_prompt_name_are_refused(client):
    with pytest.raises(ValueError, match="uri must be a non-empty string"):
        client.read_resource("modern", "")
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        client.get_prompt("modern", 3)  # type: ignore[arg-type]


def test_a_callback_that_is_not_callable_is_refused(client):
    with pytest.raises(TypeError, match="on_progress must be callable"):
        client.call("modern/add", {"a": 1, "b": 1}, on_progress="print")


class LegacyOnly(Recorder):
    """A server from before 2026-07-28: it refuses server/discover the way devenv used to."""

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/mcp":
            from starlette.responses import JSONResponse

            body = (await receive()).get("body", b"")
            if b"server/discover" in body:
                error = {"code": -32600, "message": "unsupported", "data": {"supported": ["2025-06-18", "2025-11-25"]}}
                self.seen.append(({}, {"method": "server/discover"}))
                return await JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, 400)(scope, receive, send)

            async def first():
                return {"type": "http.request", "body": body, "more_body": False}

            return await super().__call__(scope, first, send)
        return await super().__call__(scope, receive, send)


def test_a_server_without_2026_07_28_gets_the_legacy_handshake():
    recorder = LegacyOnly(create_app(make_service()))
    with serve_in_thread(recorder) as url:
        with MCPClient(transport=HTTPTransport(resolve=lambda s: url)) as client:
            assert client.call("demo/echo", {"text": "a"}) == "a"
            server = client.transport._servers["demo"]
    assert (server.era, server.version) == ("legacy", "2025-11-25")
    methods = [body["method"] for _, body in recorder.seen]
    assert methods == ["server/discover", "initialize", "notifications/initialized", "tools/list", "tools/call"]


def test_devenv_services_are_called_at_2026_07_28():
    recorder = Recorder(create_app(make_service()))
    with serve_in_thread(recorder) as url:
        with MCPClient(transport=HTTPTransport(resolve=lambda s: url)) as client:
            assert client.call("demo/echo", {"text": "a"}) == "a"
            server = client.transport._servers["demo"]
    assert (server.era, server.version) == ("modern", "2026-07-28")
    assert [body["method"] for _, body in recorder.seen] == ["server/discover", "tools/list", "tools/call"]


def test_resources_and_prompts_in_process_match_http():
    from services.conformance.service import service

    local = MCPClient(services=[service])
    with serve_in_thread(create_app(service)) as url:
        with MCPClient(transport=HTTPTransport(resolve=lambda s: url)) as remote:
            for client in (local, remote):
                assert "test://static-text" in [r["uri"] for r in client.list_resources("conformance")]
            assert local.read_resource("conformance", "test://static-text")[0]["text"]
            assert remote.read_resource("conformance", "test://static-text") == local.read_resource(
                "conformance", "test://static-text"
            )
            names = [p["name"] for p in local.list_prompts("conformance")]
            assert names == [p["name"] for p in remote.list_prompts("conformance")]
            simple = names[0]
            assert (
                remote.get_prompt("conformance", simple)["messages"]
                == local.get_prompt("conformance", simple)["messages"]
            )


def test_in_process_progress_reaches_the_callback():
    from services.conformance.service import service

    progressing = [t for t in service.tools if "progress" in t]
    seen = []
    MCPClient(services=[service]).call(f"conformance/{progressing[0]}", {}, on_progress=lambda *a: seen.append(a))
    assert seen and all(len(event) == 3 for event in seen)


def test_era_must_be_known():
    with pytest.raises(ValueError, match="era must be"):
        HTTPTransport(era="2026")


def test_a_kept_alive_connection_the_server_closed_is_not_reused():
    """A restarted server (or uvicorn's idle timeout) drops kept-alive connections: a later
    non-idempotent call, which is never retried, must not be sent on a dead one."""
    from tests.conftest import free_port

    port = free_port()
    client = MCPClient(transport=HTTPTransport(resolve=lambda s: f"http://127.0.0.1:{port}", retries=0))
    with serve_in_thread(create_app(make_service()), port=port):
        first = client.call("demo/make_box", {"label": "a", "corners": []})
    with serve_in_thread(create_app(make_service()), port=port):
        second = client.call("demo/make_box", {"label": "b", "corners": []})
    client.close()
    assert first["label"] == "a" and second["label"] == "b"


async def test_the_async_pool_drops_connections_the_server_closed():
    from tests.conftest import free_port

    port = free_port()
    client = MCPClient(transport=HTTPTransport(resolve=lambda s: f"http://127.0.0.1:{port}", retries=0))
    with serve_in_thread(create_app(make_service()), port=port):
        first = await client.acall("demo/make_box", {"label": "a", "corners": []})
    await asyncio.sleep(0.05)  # the loop sees the server's FIN
    with serve_in_thread(create_app(make_service()), port=port):
        second = await client.acall("demo/make_box", {"label": "b", "corners": []})
    await client.aclose()
    assert first["label"] == "a" and second["label"] == "b"
