"""MCPClient answers a tool's requests for input (elicitation, sampling, roots) with the
caller's callbacks: in-process, and over HTTP against the official SDK's server (mcp 2.x) at
2026-07-28 and at 2025-11-25, with the same answers every way. Bad callbacks and unanswerable requests fail
with errors that name the callback to pass."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devenv import CapabilityMissing, Context, MCPClient, ProtocolError, Service, ToolError, create_app
from devenv.client_input import ClientInput
from devenv.transports.http import HTTPTransport
from tests.conftest import serve_in_thread
from tests.unit.input_service import QUESTION, make_sdk_server, make_service

HI = {"role": "user", "content": {"type": "text", "text": "hi"}}
ROOTS = ["file:///work/a", {"uri": "file:///work/b", "name": "b"}]


def name_ada(params):
    assert params["message"] == QUESTION
    return {"name": "ada"}


def short(params):
    return "short: " + params["messages"][0]["content"]["text"]


@pytest.fixture(scope="module")
def sdk_url():
    with serve_in_thread(make_sdk_server().streamable_http_app()) as url:
        yield url


@pytest.fixture(scope="module")
def devenv_url():
    with serve_in_thread(create_app(make_service())) as url:
        yield url


@pytest.fixture(params=["inprocess", "devenv-2026-07-28", "sdk-2026-07-28", "sdk-legacy"])
def make_client(request, sdk_url, devenv_url):
    """Clients of the same tools in each mode; each test makes its own with its callbacks."""
    made = []

    def make(**callbacks):
        if request.param == "inprocess":
            client = MCPClient(services=[make_service()], **callbacks)
        else:
            # At 2026-07-28 the answers ride the retried call (InputRequiredResult); at 2025-11-25
            # the server asks on the call's event stream and the client POSTs each answer back.
            era = "legacy" if request.param == "sdk-legacy" else "modern"
            url = devenv_url if request.param.startswith("devenv") else sdk_url
            transport = HTTPTransport(resolve=lambda s: url, retries=0, timeout=10, era=era)
            client = MCPClient(transport=transport, **callbacks)
        made.append(client)
        return client

    make.mode = request.param
    yield make
    for client in made:
        client.close()


def test_every_kind_of_input_is_answered_by_the_client_defaults(make_client):
    client = make_client(on_elicit=name_ada, on_sample=short, roots=ROOTS)
    assert client.call("asker/greet") == "hello ada"
    assert client.call("asker/summarize", {"text": "a long story"}) == "short: Summarize: a long story"
    assert client.call("asker/workspace") == "file:///work/a file:///work/b"


def test_per_call_callbacks_override_the_defaults(make_client):
    if make_client.mode == "sdk-legacy":
        pytest.skip("at 2025-11-25 a session declares its capabilities once, from the client's defaults")
    client = make_client(on_elicit=name_ada, roots=["file:///default"])
    assert client.call("asker/greet", on_elicit=lambda p: {"name": "bob"}) == "hello bob"
    assert client.call("asker/workspace", on_list_roots=lambda: ["file:///mine"]) == "file:///mine"
    assert client.call("asker/workspace") == "file:///default"


def test_async_callbacks_with_acall(make_client):
    async def answer(params):
        await asyncio.sleep(0)
        return {"action": "accept", "content": {"name": "eve"}}

    async def sample(params):
        return {"role": "assistant", "content": {"type": "text", "text": "sampled"}, "model": "m1"}

    async def roots():
        return ["file:///async"]

    client = make_client(on_elicit=answer, on_sample=sample, on_list_roots=roots)

    async def run():
        return (
            await client.acall("asker/greet"),
            await client.acall("asker/summarize", {"text": "x"}),
            await client.acall("asker/workspace"),
        )

    assert asyncio.run(run()) == ("hello eve", "sampled", "file:///async")


def test_an_async_callback_in_a_sync_call_is_refused(make_client):
    async def answer(params):
        return {"name": "eve"}

    with pytest.raises(TypeError, match="needs the async call: use acall"):
        make_client(on_elicit=answer).call("asker/greet")


@pytest.mark.parametrize(
    ("tool", "arguments", "argument"),
    [("greet", {}, "on_elicit"), ("summarize", {"text": "x"}, "on_sample"), ("workspace", {}, "on_list_roots")],
)
def test_asking_without_the_callback_names_the_callback(make_client, tool, arguments, argument):
    # Over HTTP the server refuses the call (-32021: the client did not declare it); in-process
    # the tool's Context does. Either way the caller learns which callback to pass.
    with pytest.raises(CapabilityMissing, match=f"pass .*{argument}= to MCPClient or to the call"):
        make_client().call(f"asker/{tool}", arguments)


def test_the_tool_sees_exactly_the_capabilities_declared(make_client):
    if make_client.mode.startswith("sdk"):
        pytest.skip("a devenv tool (ctx.supports)")
    assert make_client().call("asker/declared") == []
    assert make_client(on_sample=short, roots=[]).call("asker/declared") == ["sampling", "roots"]
    assert make_client().call("asker/declared", on_elicit=name_ada) == ["elicitation"]


def test_a_tool_that_handles_a_refusal_carries_on_but_a_broken_callback_fails_the_call(make_client):
    if make_client.mode.startswith("sdk"):
        pytest.skip("a devenv tool that catches what ctx.elicit raises")
    # With no callback the tool is told (CapabilityMissing) and may carry on, in every mode.
    assert make_client().call("asker/stubborn") == "carried on"

    # A callback that fails is the caller's failure: over HTTP it fails on the client's side, so
    # whatever the tool would make of it; in-process the call fails with it all the same.
    def broken(params):
        raise KeyError("the user closed the dialog")

    with pytest.raises(KeyError, match="closed the dialog"):
        make_client(on_elicit=broken).call("asker/stubborn")


def test_a_callback_that_raises_fails_the_call_with_its_own_error(make_client):
    def broken(params):
        raise KeyError("the user closed the dialog")

    with pytest.raises(KeyError, match="closed the dialog"):
        make_client(on_elicit=broken).call("asker/greet")


@pytest.mark.parametrize(
    ("tool", "arguments", "callbacks", "message"),
    [
        ("greet", {}, {"on_elicit": lambda p: ["ada"]}, "on_elicit must return a dict"),
        ("greet", {}, {"on_elicit": lambda p: {"action": "maybe"}}, "on_elicit must return"),
        ("summarize", {"text": "x"}, {"on_sample": lambda p: {"content": "no model"}}, "on_sample must return"),
        ("summarize", {"text": "x"}, {"on_sample": lambda p: 42}, "on_sample must return"),
        ("workspace", {}, {"on_list_roots": lambda: "file:///a"}, "on_list_roots must be a list"),
        ("workspace", {}, {"on_list_roots": lambda: [{"name": "x"}]}, "each root is a file:// URI"),
    ],
)
def test_a_callback_of_the_wrong_shape_is_named(make_client, tool, arguments, callbacks, message):
    with pytest.raises(TypeError, match=message):
        make_client(**callbacks).call(f"asker/{tool}", arguments)


def test_a_root_that_is_not_a_file_uri_is_refused_at_once():
    with pytest.raises(ValueError, match="must start with file://"):
        MCPClient(services=[make_service()], roots=["https://example.com"])
    with pytest.raises(ValueError, match="roots= .* or on_list_roots="):
        MCPClient(services=[make_service()], roots=[], on_list_roots=list)
    with pytest.raises(TypeError, match="on_sample must be callable"):
        MCPClient(services=[make_service()], on_sample="yes")


def test_a_tool_error_stays_a_tool_error_when_every_callback_worked():
    service = Service("asker")

    @service.tool()
    async def picky(ctx: Context) -> str:
        await ctx.list_roots()
        raise RuntimeError("no roots I like")

    with pytest.raises(ToolError, match="no roots I like"):
        MCPClient(services=[service], roots=["file:///a"]).call("asker/picky")


def test_capabilities_declared_are_exactly_the_callbacks():
    assert ClientInput().capabilities == {}
    assert ClientInput(on_sample=short).capabilities == {"sampling": {}}
    both = ClientInput(on_elicit=name_ada).over(ClientInput(roots=["file:///a"]))
    assert both.capabilities == {"elicitation": {"form": {}}, "roots": {}}
    assert both.supports("roots") and not both.supports("sampling")


# -- over HTTP: what the client declares, and a server that asks regardless ----------------------


class Careless:
    """A 2026-07-28 server that asks for sampling whatever the client declared, and keeps what it saw."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.app = Starlette(routes=[Route("/mcp", self.mcp, methods=["POST"])])

    async def mcp(self, request: Request) -> JSONResponse:
        body = orjson.loads(await request.body())
        self.seen.append(body)
        params = body.get("params") or {}
        if body["method"] == "server/discover":
            result = {"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "resultType": "complete"}
        elif body["method"] == "tools/list":
            result = {"tools": [{"name": "ask", "inputSchema": {"type": "object"}}], "resultType": "complete"}
        elif "inputResponses" not in params:
            sampling = {"method": "sampling/createMessage", "params": {"messages": [HI], "maxTokens": 5}}
            result = {"resultType": "input_required", "inputRequests": {"llm": sampling, "odd": {"method": "x/y"}}}
            if params["arguments"].get("only_sampling"):
                del result["inputRequests"]["odd"]
        else:
            text = params["inputResponses"]["llm"]["content"]["text"]
            result = {"content": [{"type": "text", "text": text}], "resultType": "complete"}
        return JSONResponse({"jsonrpc": "2.0", "id": body.get("id"), "result": result})


@pytest.fixture(scope="module")
def careless():
    server = Careless()
    with serve_in_thread(server.app) as url:
        yield server, url


def test_the_client_declares_the_capabilities_it_has_callbacks_for(careless):
    server, url = careless
    with MCPClient(transport=HTTPTransport(resolve=lambda s: url, retries=0), on_sample=short) as client:
        with pytest.raises(ProtocolError, match="'x/y', which MCPClient does not answer"):
            client.call("careless/ask", {}, roots=["file:///a"])
        assert client.call("careless/ask", {"only_sampling": True}) == "short: hi"
    calls = [body for body in server.seen if body["method"] == "tools/call"]
    declared = calls[0]["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"]
    assert declared == {"sampling": {}, "roots": {}}
    assert calls[-1]["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] == {"sampling": {}}


def test_a_server_asking_for_what_the_call_cannot_answer_names_the_callback(careless):
    _, url = careless
    with MCPClient(transport=HTTPTransport(resolve=lambda s: url, retries=0)) as client:
        with pytest.raises(CapabilityMissing, match=r"sampling/createMessage .*pass on_sample="):
            client.call("careless/ask", {"only_sampling": True})


# -- the conformance service's input tools: the same answers in-process and over HTTP -----------


@pytest.fixture(scope="module")
def conformance_url():
    from services.conformance.service import service

    with serve_in_thread(create_app(service)) as url:
        yield url


@pytest.fixture(params=["inprocess", "http"])
def conformance_client(request, conformance_url):
    from services.conformance.service import service

    def answer(params):  # fills the fields the form asks for
        fields = {"name": "Alice", "context": "tides", "confirm": True}
        return {key: fields[key] for key in params["requestedSchema"].get("properties", {}) if key in fields}

    callbacks = {"on_elicit": answer, "on_sample": lambda params: "Paris", "roots": ["file:///work/repo"]}
    if request.param == "inprocess":
        client = MCPClient(services=[service], **callbacks)
    else:
        client = MCPClient(transport=HTTPTransport(resolve=lambda s: conformance_url, retries=0), **callbacks)
    yield client
    client.close()


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        ("elicitation", "Hello, Alice!"),
        ("sampling", "The model said: Paris"),
        ("list_roots", "roots: file:///work/repo"),
        ("multiple_inputs", "Alice; Paris; 1 root(s)"),  # three asks at once (asyncio.gather)
        ("multi_round", "step1: {'name': 'Alice'}, step2: {}"),
        ("capabilities", "2 answer(s)"),
    ],
)
def test_conformance_input_tools_answer_alike_in_process_and_over_http(conformance_client, tool, expected):
    result = conformance_client.call(f"conformance/test_input_required_result_{tool}")
    # In-process a content tool answers its content blocks; over HTTP one text block is its text.
    assert result in (expected, [{"type": "text", "text": expected}])


def test_a_prompt_that_asks_is_answered_in_both_modes(conformance_client):
    prompt = conformance_client.get_prompt("conformance", "test_input_required_result_prompt")
    assert prompt["messages"][0]["content"]["text"] == "Write about: tides"
