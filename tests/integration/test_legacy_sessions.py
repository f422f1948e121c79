"""Legacy (MCP 2025-11-25) sessions against a real `devenv serve conformance` process: a tool asking
its client for input (sampling, elicitation, roots) over the call's SSE stream, resource
subscriptions on the session's GET stream, and the bad input around them. The official `mcp` SDK
client is the peer; raw HTTP (httpx) where the SDK would hide what the server said."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from mcp import Client, types

from devenv.testing import serve_process

ROOT = Path(__file__).resolve().parents[2]
LEGACY = "2025-11-25"
JSON_AND_SSE = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@contextmanager
def served(**env: str) -> Iterator[str]:
    """`devenv serve conformance` as a user starts it, with extra DEVENV_* settings; its /mcp URL."""
    with serve_process("conformance", env=env, cwd=ROOT) as process:
        yield f"{process.url}/mcp"


@pytest.fixture(scope="module")
def url():
    with served() as mcp_url:
        yield mcp_url


def rpc(method: str, params: dict | None = None, request_id: int | str | None = 1) -> dict:
    message: dict = {"jsonrpc": "2.0", "method": method, "params": params or {}}
    if request_id is not None:
        message["id"] = request_id
    return message


def initialize(http: httpx.Client, url: str, capabilities: dict | None = None) -> str:
    """A legacy handshake over raw HTTP; the session id the server handed out."""
    params = {
        "protocolVersion": LEGACY,
        "capabilities": capabilities or {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    answer = http.post(url, json=rpc("initialize", params), headers=JSON_AND_SSE)
    assert answer.status_code == 200, answer.text
    session = answer.headers["mcp-session-id"]
    assert answer.json()["result"]["capabilities"]["resources"]["subscribe"] is True
    notified = http.post(url, json=rpc("notifications/initialized", request_id=None), headers=in_session(session))
    assert notified.status_code == 202
    return session


def in_session(session: str) -> dict[str, str]:
    return {**JSON_AND_SSE, "mcp-session-id": session, "mcp-protocol-version": LEGACY}


def sse_messages(lines: Iterator[str]) -> Iterator[dict]:
    for line in lines:
        if line.startswith("data: "):
            yield json.loads(line[6:])


# -- the official SDK client as the peer ------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # auto: 2026-07-28, multi-round-trip
async def test_sdk_client_answers_a_tools_sampling_request(url, mode):
    asked: list[types.CreateMessageRequestParams] = []

    async def sample(context, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append(params)
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="Paris"), model="m", stop_reason="endTurn"
        )

    async with Client(url, mode=mode, sampling_callback=sample) as client:
        assert client.protocol_version == {"legacy": LEGACY, "auto": "2026-07-28"}[mode]
        result = await client.call_tool("test_sampling", {"prompt": "capital of France?"})
    assert result.is_error is False, result.content
    assert result.content[0].text == "LLM response: Paris"
    assert [m.content.text for m in asked[0].messages] == ["capital of France?"] and asked[0].max_tokens == 100


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # auto: 2026-07-28, multi-round-trip
async def test_sdk_client_answers_an_elicitation_with_the_fixtures_form(url, mode):
    forms: list[dict] = []

    async def elicit(context, params) -> types.ElicitResult:
        forms.append(params.requested_schema)
        return types.ElicitResult(action="accept", content={"username": "ada", "email": "ada@example.com"})

    async with Client(url, mode=mode, elicitation_callback=elicit) as client:
        result = await client.call_tool("test_elicitation", {"message": "who are you?"})
        declined = await client.call_tool("test_elicitation_sep1034_defaults", {})
    assert (
        result.content[0].text
        == 'User response: action=accept, content={"email": "ada@example.com", "username": "ada"}'
    )
    assert forms[0]["required"] == ["username", "email"]
    assert forms[1]["properties"]["age"] == {"type": "integer", "default": 30}
    assert declined.content[0].text.startswith("Elicitation completed: action=accept")


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # auto: 2026-07-28, multi-round-trip
async def test_sdk_client_lists_its_roots_for_a_tool(url, mode):
    async def roots(context) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/a", name="a"), types.Root(uri="file:///b")])

    async with Client(url, mode=mode, list_roots_callback=roots) as client:
        result = await client.call_tool("test_input_required_result_list_roots", {})
    assert result.content[0].text == "roots: file:///work/a, file:///b"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_sdk_client_answers_a_prompt_that_asks(url, mode):
    async def elicit(context, params) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"context": "tides"})

    async with Client(url, mode=mode, elicitation_callback=elicit) as client:
        prompt = await client.get_prompt("test_input_required_result_prompt", {})
        plain = await client.get_prompt("test_simple_prompt", {})
    assert prompt.messages[0].content.text == "Write about: tides"
    assert plain.messages[0].content.text == "This is a simple prompt for testing."


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed:UserWarning")
async def test_sdk_client_hears_of_a_subscribed_resource_changing(url):
    updates: asyncio.Queue[str] = asyncio.Queue()

    async def on_message(message) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            await updates.put(str(message.params.uri))

    async with Client(url, mode="legacy", message_handler=on_message) as client:
        assert client.server_capabilities.resources.subscribe is True
        await client.subscribe_resource("test://watched-resource")
        await client.call_tool("update_watched_resource", {"text": "version 1"})
        assert await asyncio.wait_for(updates.get(), 30) == "test://watched-resource"
        assert (await client.read_resource("test://watched-resource")).contents[0].text == "version 1"
        await client.unsubscribe_resource("test://watched-resource")


async def test_sdk_client_at_2026_07_28_is_never_given_a_session(url):
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            url,
            json=rpc(
                "tools/list",
                {
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientCapabilities": {},
                    }
                },
            ),
            headers={
                **JSON_AND_SSE,
                "mcp-protocol-version": "2026-07-28",
                "mcp-method": "tools/list",
                "mcp-session-id": "not-a-session",
            },
        )
    assert answer.status_code == 200 and "mcp-session-id" not in answer.headers
    async with Client(url, mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        assert (await client.call_tool("test_simple_text", {})).is_error is False


# -- raw HTTP: the wire itself, and bad input -------------------------------------------------


def test_a_tool_that_asks_nothing_answers_plain_json_in_a_session_and_a_stateless_client_still_works(url):
    with httpx.Client() as http:
        session = initialize(http, url)
        answer = http.post(url, json=rpc("tools/call", {"name": "test_simple_text"}), headers=in_session(session))
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json()["result"]["content"][0]["text"].startswith("This is a simple text")
        stateless = http.post(url, json=rpc("tools/call", {"name": "test_simple_text"}), headers=JSON_AND_SSE)
        assert stateless.status_code == 200 and "mcp-session-id" not in stateless.headers


def test_unknown_and_ended_sessions_are_404(url):
    with httpx.Client() as http:
        unknown = http.post(url, json=rpc("tools/list"), headers=in_session("no-such-session"))
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == -32001 and "Session not found" in unknown.json()["error"]["message"]
        session = initialize(http, url)
        assert http.delete(url, headers=in_session(session)).status_code == 200
        after = http.post(url, json=rpc("tools/list"), headers=in_session(session))
        assert after.status_code == 404
        assert http.delete(url, headers=in_session(session)).status_code == 404
        assert http.get(url, headers=in_session(session)).status_code == 404


def test_a_response_for_an_id_nobody_waits_for_is_400_naming_it(url):
    with httpx.Client() as http:
        session = initialize(http, url)
        stray = {"jsonrpc": "2.0", "id": "devenv-999", "result": {"action": "accept"}}
        answer = http.post(url, json=stray, headers=in_session(session))
    assert answer.status_code == 400
    assert "'devenv-999'" in answer.json()["error"]["message"] and "waiting" in answer.json()["error"]["message"]


def test_a_client_that_did_not_declare_sampling_gets_capability_missing(url):
    with httpx.Client() as http:
        session = initialize(http, url, capabilities={"elicitation": {}})
        answer = http.post(
            url,
            json=rpc("tools/call", {"name": "test_sampling", "arguments": {"prompt": "hi"}}),
            headers=in_session(session),
        )
    assert answer.status_code == 200  # a 2025 client reads JSON-RPC errors from a 200
    error = answer.json()["error"]
    assert error["code"] == -32021 and error["data"] == {"requiredCapabilities": {"sampling": {}}}
    assert "sampling" in error["message"] and "declare" in error["message"]


def test_subscribe_needs_a_session_and_a_resource_the_service_has(url):
    with httpx.Client() as http:
        stateless = http.post(
            url, json=rpc("resources/subscribe", {"uri": "test://watched-resource"}), headers=JSON_AND_SSE
        )
        assert "needs a session" in stateless.json()["error"]["message"]
        session = initialize(http, url)
        unknown = http.post(url, json=rpc("resources/subscribe", {"uri": "test://nope"}), headers=in_session(session))
        assert unknown.json()["error"]["code"] == -32602 and unknown.json()["error"]["data"] == {"uri": "test://nope"}
        no_uri = http.post(url, json=rpc("resources/subscribe", {}), headers=in_session(session))
        assert no_uri.json()["error"]["code"] == -32602 and '"uri"' in no_uri.json()["error"]["message"]


def test_unsubscribe_stops_the_updates(url):
    """Updates wait for the GET stream; ending the session ends that stream, so every one is read."""
    with httpx.Client(timeout=30) as http:
        session = initialize(http, url)
        headers = in_session(session)

        def call(method: str, params: dict) -> None:
            assert "error" not in http.post(url, json=rpc(method, params), headers=headers).json()

        uri = {"uri": "test://watched-resource"}
        call("resources/subscribe", uri)
        call("tools/call", {"name": "update_watched_resource", "arguments": {"text": "a"}})  # heard
        call("resources/unsubscribe", uri)
        call("tools/call", {"name": "update_watched_resource", "arguments": {"text": "b"}})  # not heard
        call("resources/subscribe", uri)
        call("tools/call", {"name": "update_watched_resource", "arguments": {"text": "c"}})  # heard
        with http.stream("GET", url, headers=headers) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            messages = sse_messages(stream.iter_lines())
            first = next(messages)
            assert http.delete(url, headers=headers).status_code == 200
            rest = list(messages)
    assert [first, *rest] == [
        {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": uri},
        {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": uri},
    ]


def test_a_second_get_stream_for_one_session_is_409(url):
    with httpx.Client(timeout=30) as http:
        session = initialize(http, url)
        with http.stream("GET", url, headers=in_session(session)) as first:
            assert first.status_code == 200
            second = http.get(url, headers=in_session(session))
            assert second.status_code == 409 and "open already" in second.json()["error"]
            http.delete(url, headers=in_session(session))


def test_an_elicitation_answered_by_a_separate_post():
    with served() as url, httpx.Client(timeout=30) as http:
        session = initialize(http, url, capabilities={"elicitation": {}})
        call = rpc("tools/call", {"name": "test_elicitation", "arguments": {"message": "name?"}}, request_id=7)
        with http.stream("POST", url, json=call, headers=in_session(session)) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            messages = sse_messages(stream.iter_lines())
            request = next(messages)
            assert request["method"] == "elicitation/create" and request["params"]["message"] == "name?"
            reply = {"jsonrpc": "2.0", "id": request["id"], "result": {"action": "decline"}}
            assert http.post(url, json=reply, headers=in_session(session)).status_code == 202
            answer = next(messages)
        assert answer["id"] == 7
        assert answer["result"]["content"][0]["text"] == "User response: action=decline, content={}"
        # the id was answered once: a second answer waits for nobody
        again = http.post(url, json=reply, headers=in_session(session))
        assert again.status_code == 400


def test_a_client_that_never_answers_fails_the_tool_after_the_input_timeout():
    with served(DEVENV_INPUT_TIMEOUT="0.5") as url, httpx.Client(timeout=30) as http:
        session = initialize(http, url, capabilities={"sampling": {}})
        call = rpc("tools/call", {"name": "test_sampling", "arguments": {"prompt": "hi"}})
        with http.stream("POST", url, json=call, headers=in_session(session)) as stream:
            messages = sse_messages(stream.iter_lines())
            assert next(messages)["method"] == "sampling/createMessage"  # and we never answer it
            answer = next(messages)
    result = answer["result"]
    assert result["isError"] is True
    assert "did not answer sampling/createMessage within 0.5 s" in result["content"][0]["text"]


def test_the_session_limit_is_503_until_a_session_ends():
    with served(DEVENV_MAX_SESSIONS="2") as url, httpx.Client() as http:
        first = initialize(http, url)
        initialize(http, url)
        params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        refused = http.post(url, json=rpc("initialize", params), headers=JSON_AND_SSE)
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert "DEVENV_MAX_SESSIONS" in refused.json()["error"]["message"]
        assert "mcp-session-id" not in refused.headers
        http.delete(url, headers=in_session(first))
        initialize(http, url)


def test_rest_callers_of_a_tool_that_asks_get_400_capability_missing(url):
    answer = httpx.post(url.removesuffix("/mcp") + "/tools/test_sampling", json={"prompt": "hi"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "CapabilityMissing" and "sampling" in error["message"]
