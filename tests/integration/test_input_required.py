"""Multi-round-trip input over real HTTP: the official SDK client as the peer, and two real
`devenv serve` processes, as two replicas behind a load balancer would be.

A round may land on any replica: what one seals, another that shares DEVENV_STATE_SECRET opens;
one with another secret refuses it (-32602), so the client starts over.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest
from mcp import Client, MCPError, types

from devenv import CapabilityMissing, create_app
from devenv.testing import serve_in_thread, serve_process
from services.conformance.service import service

ROOT = Path(__file__).resolve().parents[2]
MODERN = "2026-07-28"
ALL = {"elicitation": {}, "sampling": {}, "roots": {}}


@pytest.fixture(scope="module")
def mcp_url():
    with serve_in_thread(create_app(service)) as url:
        yield f"{url}/mcp"


# -- the official SDK client answers devenv's asks ---------------------------------------------


async def elicit(context, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Alice", "context": "tides"})


async def sample(context, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="Paris"), model="m", stop_reason="endTurn"
    )


async def roots(context) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/repo", name="repo")])


def text(result) -> str:
    return result.content[0].text


async def test_sdk_client_answers_each_kind_of_ask(mcp_url):
    async with Client(
        mcp_url, elicitation_callback=elicit, sampling_callback=sample, list_roots_callback=roots
    ) as client:
        assert client.protocol_version == MODERN
        assert text(await client.call_tool("test_input_required_result_elicitation", {})) == "Hello, Alice!"
        assert text(await client.call_tool("test_input_required_result_sampling", {})) == "The model said: Paris"
        listed = await client.call_tool("test_input_required_result_list_roots", {})
        assert text(listed) == "roots: file:///work/repo"
        together = await client.call_tool("test_input_required_result_multiple_inputs", {})
        assert text(together) == "Alice; Paris; 1 root(s)"
        rounds = await client.call_tool("test_input_required_result_multi_round", {})
        assert text(rounds).startswith("step1: {'name': 'Alice'")
        prompt = await client.get_prompt("test_input_required_result_prompt")
        assert prompt.messages[0].content.text == "Write about: tides"


async def test_sdk_client_without_the_capability_gets_minus_32021(mcp_url):
    async with Client(mcp_url, sampling_callback=sample) as client:  # declares sampling only
        with pytest.raises(MCPError) as refused:
            await client.call_tool("test_input_required_result_elicitation", {})
        assert refused.value.error.code == -32021
        assert "elicitation" in refused.value.error.message
        assert text(await client.call_tool("test_input_required_result_capabilities", {})) == "1 answer(s)"


# -- the wire, by hand: what a retry may carry -------------------------------------------------


def call(
    url: str,
    arguments=None,
    *,
    responses=None,
    state=None,
    capabilities=ALL,
    tool="test_input_required_result_elicitation",
):
    params = {
        "name": tool,
        "arguments": arguments or {},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": capabilities,
        },
    }
    if responses is not None:
        params["inputResponses"] = responses
    if state is not None:
        params["requestState"] = state
    headers = {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": tool}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    return httpx.post(url, json=body, headers={**headers, "accept": "application/json, text/event-stream"}, timeout=10)


ACCEPT = {"action": "accept", "content": {"name": "Alice"}}


def test_bad_rounds_get_minus_32602_naming_what_is_wrong(mcp_url):
    first = call(mcp_url).json()["result"]
    assert first["resultType"] == "input_required" and first["_meta"]["io.modelcontextprotocol/serverInfo"]
    cases = {
        "integrity": call(mcp_url, responses={"user_name": ACCEPT}, state=first["requestState"] + "x"),
        "another request": call(
            mcp_url, {"unexpected": 1}, responses={"user_name": ACCEPT}, state=first["requestState"]
        ),
        "inputResponses must be an object": call(mcp_url, responses=["user_name"]),
        "inputResponses['user_name'] must be an object": call(mcp_url, responses={"user_name": 12345}),
        "requestState must be the string": call(mcp_url, responses={"user_name": ACCEPT}, state=7),
    }
    for why, response in cases.items():
        assert response.status_code == 400, (why, response.text)
        error = response.json()["error"]
        assert error["code"] == -32602 and why in error["message"], (why, error)


def test_an_undeclared_capability_is_400_minus_32021_with_what_is_required(mcp_url):
    response = call(mcp_url, capabilities={"sampling": {}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32021 and error["data"] == {"requiredCapabilities": {"elicitation": {}}}


def test_a_round_asking_for_input_is_counted_as_such(mcp_url):
    call(mcp_url)
    metrics = httpx.get(mcp_url.removesuffix("/mcp") + "/metrics").text
    line = next(
        m
        for m in metrics.splitlines()
        if m.startswith("mcp_requests_total{")
        and 'tool="test_input_required_result_elicitation"' in m
        and 'status="input_required"' in m
        and 'transport="mcp"' in m
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1


# -- two replicas ------------------------------------------------------------------------------


def test_a_retry_may_land_on_another_replica_that_shares_the_secret():
    shared = "s" * 40
    with contextlib.ExitStack() as stack:
        a, b, stranger = (
            stack.enter_context(serve_process("conformance", env={"DEVENV_STATE_SECRET": secret}, cwd=ROOT)).url
            + "/mcp"
            for secret in (shared, shared, "o" * 40)
        )
        tool = "test_input_required_result_multi_round"
        first = call(a, tool=tool).json()["result"]
        assert list(first["inputRequests"]) == ["step1"]
        second = call(b, tool=tool, responses={"step1": ACCEPT}, state=first["requestState"]).json()["result"]
        assert list(second["inputRequests"]) == ["step2"], "B opened what A sealed"
        done = call(a, tool=tool, responses={"step2": ACCEPT}, state=second["requestState"]).json()["result"]
        assert done["resultType"] == "complete"
        assert done["content"][0]["text"].startswith("step1: {'name': 'Alice'}, step2: {'name': 'Alice'}")

        refused = call(stranger, tool=tool, responses={"step1": ACCEPT}, state=first["requestState"])
        assert refused.status_code == 400 and "another key" in refused.json()["error"]["message"]


# -- callers that cannot answer: the same error in every mode ------------------------------------


def test_plain_json_callers_are_told_the_tool_needs_mcp(mcp_url):
    response = httpx.post(mcp_url.removesuffix("/mcp") + "/tools/test_input_required_result_elicitation", json={})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "CapabilityMissing" and error["capability"] == "elicitation", error


def test_mcpclient_without_a_way_to_answer_raises_capability_missing_in_every_mode(mcp_url):
    from devenv import MCPClient
    from devenv.transports.http import HTTPTransport

    uri = "conformance/test_input_required_result_sampling"
    with pytest.raises(CapabilityMissing) as in_process:
        MCPClient(services=[service]).call(uri, {})
    with MCPClient(transport=HTTPTransport(resolve=lambda s: mcp_url.removesuffix("/mcp"))) as remote:
        with pytest.raises(CapabilityMissing) as over_http:
            remote.call(uri, {})
    assert in_process.value.capability == over_http.value.capability == "sampling"
