"""The tasks extension on the wire, against a real uvicorn server: task creation, polling,
input, cancellation, the capability gate, and the spec's error for each bad input."""

from __future__ import annotations

import asyncio
from typing import Annotated

import httpx
import pytest
from pydantic import Field

from devenv import Context, ProtocolError, RequestFailed, Service, Text, create_app
from devenv.cache import MemoryCache
from devenv.config import Settings
from devenv.errors import ConfigError
from tests.conftest import serve_in_thread
from tests.task_wire import EXTENSION, TaskWire

LEGACY = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}


def task_service() -> Service:
    service = Service("taskdemo")
    service.cache = MemoryCache()

    @service.tool(task_support="optional")
    async def sleep_for(seconds: Annotated[float, Field(ge=0)]) -> Text:
        """Sleep, then answer."""
        await asyncio.sleep(seconds)
        return Text(f"slept {seconds:g}")

    @service.tool(task_support="required")
    async def only_task() -> Text:
        """Runs only as a task."""
        return Text("ran as a task")

    @service.tool(task_support="optional")
    def raises() -> Text:
        """A tool error: the task completes with isError."""
        raise ValueError("bad input for raises")

    @service.tool(task_support="optional")
    async def fails_request() -> Text:
        """A JSON-RPC error: the task fails."""
        raise RequestFailed(-32099, "the request failed", {"why": "on purpose"})

    @service.tool(task_support="optional")
    async def ask(ctx: Context) -> Text:
        """Ask for a name, answer with it."""
        answer = await ctx.request_input("elicitation/create", {"mode": "form", "message": "name?"})
        return Text(f"hello {answer['content']['name']}")

    @service.tool(task_support="optional")
    async def wants_roots(ctx: Context) -> Text:
        """Ask for roots, which the client did not declare."""
        await ctx.request_input("roots/list", {})
        return Text("unreachable")

    @service.tool(task_support="optional", defer_task=True)
    async def deferred(ctx: Context, go_long: bool = True) -> Text:
        """Start the task only when asked to; then ask for a name through the task."""
        if not go_long:
            return Text("done in the request")
        await ctx.start_task()
        answer = await ctx.request_input("elicitation/create", {"mode": "form", "message": "name?"})
        return Text(f"later, {answer['content']['name']}")

    @service.tool(task_support="required", defer_task=True)
    async def ask_then_task(ctx: Context) -> Text:
        """Ask for a name in the call (multi-round trip), then go on as a task."""
        answer = await ctx.elicit("name?", {"type": "object", "properties": {"name": {"type": "string"}}}, key="who")
        await ctx.start_task()
        return Text(f"task for {answer['content']['name']}")

    @service.tool
    def plain_fails_request() -> Text:
        """Not a task tool: RequestFailed answers a JSON-RPC error in the request."""
        raise RequestFailed(-32098, "refused in the request")

    return service


@pytest.fixture(scope="module")
def base_url():
    with serve_in_thread(create_app(task_service(), Settings())) as url:
        yield url


@pytest.fixture
def wire(base_url):
    client = TaskWire(base_url)
    yield client
    client.close()


@pytest.fixture
def plain(base_url):
    client = TaskWire(base_url, capabilities={})  # a client that did not declare the extension
    yield client
    client.close()


def test_discover_declares_the_extension(wire):
    caps = wire.result("server/discover", {})["capabilities"]
    assert caps["extensions"] == {EXTENSION: {}}
    assert "tasks" not in caps


def test_a_service_without_task_tools_declares_nothing_and_serves_no_task_method():
    service = Service("notasks")

    @service.tool
    def hi() -> str:
        return "hi"

    with serve_in_thread(create_app(service, Settings())) as url:
        client = TaskWire(url)
        try:
            assert "extensions" not in client.result("server/discover", {})["capabilities"]
            response = client.post("tasks/get", {"taskId": "a" * 32})
            assert response.status_code == 404 and response.json()["error"]["code"] == -32601
        finally:
            client.close()


def test_a_task_runs_to_completed_with_its_result_inlined(wire):
    created = wire.call("sleep_for", {"seconds": 0.2})
    assert created["resultType"] == "task" and created["status"] == "working"
    assert not {"result", "error", "inputRequests", "requestState", "ttl", "pollInterval"} & set(created)
    got = wire.get(created["taskId"])  # durable before the CreateTaskResult was sent
    assert got["resultType"] == "complete" and got["taskId"] == created["taskId"]
    done = wire.wait(created["taskId"])
    assert done["status"] == "completed"
    assert done["result"]["content"] == [{"type": "text", "text": "slept 0.2"}]
    assert done["result"]["isError"] is False


def test_a_tool_error_completes_with_is_error(wire):
    done = wire.wait(wire.call("raises")["taskId"])
    assert done["status"] == "completed" and done["result"]["isError"] is True
    assert "bad input for raises" in done["result"]["content"][0]["text"]


def test_a_request_failed_makes_the_task_failed(wire):
    done = wire.wait(wire.call("fails_request")["taskId"])
    assert done["status"] == "failed" and "result" not in done
    assert done["error"] == {"code": -32099, "message": "the request failed", "data": {"why": "on purpose"}}


def test_input_goes_through_tasks_get_and_tasks_update(wire):
    task_id = wire.call("ask")["taskId"]
    task = wire.wait(task_id, "input_required")
    [(key, request)] = task["inputRequests"].items()
    assert request == {"method": "elicitation/create", "params": {"mode": "form", "message": "name?"}}
    ack = wire.result(
        "tasks/update", {"taskId": task_id, "inputResponses": {key: {"action": "accept", "content": {"name": "Ada"}}}}
    )
    assert ack["resultType"] == "complete" and not {"taskId", "status"} & set(ack)
    done = wire.wait(task_id)
    assert done["status"] == "completed" and done["result"]["content"][0]["text"] == "hello Ada"


def test_input_the_client_did_not_declare_fails_the_task_with_32021(wire):
    done = wire.wait(wire.call("wants_roots")["taskId"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == -32021 and done["error"]["data"] == {"requiredCapabilities": {"roots": {}}}


def test_cancel_stops_a_running_task_and_twice_is_the_same_ack(wire):
    task_id = wire.call("sleep_for", {"seconds": 60})["taskId"]
    first = wire.result("tasks/cancel", {"taskId": task_id})
    assert first["resultType"] == "complete" and not {"taskId", "status"} & set(first)
    assert wire.result("tasks/cancel", {"taskId": task_id})["resultType"] == "complete"
    assert wire.wait(task_id)["status"] == "cancelled"


def test_without_the_extension_an_optional_tool_answers_in_the_request(plain):
    result = plain.call("sleep_for", {"seconds": 0})
    assert result["resultType"] == "complete" and "taskId" not in result
    assert result["content"] == [{"type": "text", "text": "slept 0"}]


def test_without_the_extension_a_required_tool_is_refused_with_32021(plain):
    response = plain.post("tools/call", {"name": "only_task", "arguments": {}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32021 and "only_task" in error["message"]
    assert error["data"] == {"requiredCapabilities": {"extensions": {EXTENSION: {}}}}


@pytest.mark.parametrize("method", ["tasks/get", "tasks/update", "tasks/cancel"])
def test_without_the_extension_task_methods_are_refused_with_32021(plain, method):
    response = plain.post(method, {"taskId": "gate-test", "inputResponses": {}})
    assert response.status_code == 400 and response.json()["error"]["code"] == -32021


def test_a_legacy_client_gets_optional_tools_in_the_request_and_required_ones_refused(base_url):
    def legacy(name):
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {}}}
        return httpx.post(f"{base_url}/mcp", json=body, headers=LEGACY).json()

    assert legacy("raises")["result"]["isError"] is True  # ran in the request
    error = legacy("only_task")["error"]
    assert error["code"] == -32021 and "2026-07-28" in error["message"]
    body = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"taskId": "x"}}
    assert httpx.post(f"{base_url}/mcp", json=body, headers=LEGACY).json()["error"]["code"] == -32601


def test_request_failed_in_the_request_is_a_json_rpc_error(plain):
    message = plain.rpc("tools/call", {"name": "plain_fails_request", "arguments": {}})
    assert message["error"] == {"code": -32098, "message": "refused in the request"}


def test_invalid_arguments_are_answered_at_once_without_a_task(wire):
    result = wire.call("sleep_for", {"seconds": -1})
    assert result["resultType"] == "complete" and result["isError"] is True and "taskId" not in result


@pytest.mark.parametrize("task_id", ["tasks-conformance-nonexistent-12345", "x", "a" * 500, "é/../..", "A" * 32])
@pytest.mark.parametrize("method", ["tasks/get", "tasks/update", "tasks/cancel"])
def test_an_unknown_task_is_32602(wire, method, task_id):
    message = wire.rpc(method, {"taskId": task_id, "inputResponses": {}})
    assert message["error"]["code"] == -32602
    assert "no task" in message["error"]["message"]


def test_a_missing_task_id_is_32602(wire):
    message = wire.rpc("tasks/get", {})
    assert message["error"]["code"] == -32602 and "params.taskId" in message["error"]["message"]


@pytest.mark.parametrize("task_id", [7, ["a"], {"id": "a"}])
def test_a_task_id_that_is_not_a_string_cannot_match_its_header(wire, task_id):
    response = wire.post("tasks/get", {"taskId": task_id}, name=str(task_id))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020 and "params.taskId" in response.json()["error"]["message"]


def test_mcp_name_must_match_the_task_id(wire):
    task_id = wire.call("sleep_for", {"seconds": 0})["taskId"]
    response = wire.post("tasks/get", {"taskId": task_id}, name="someone-else")
    assert response.status_code == 400 and response.json()["error"]["code"] == -32020
    missing = wire.post("tasks/get", {"taskId": task_id}, name=0)  # no Mcp-Name header at all
    assert missing.status_code == 400 and "Mcp-Name" in missing.json()["error"]["message"]


@pytest.mark.parametrize(
    ("responses", "fragment"),
    [(None, "params.inputResponses"), ([], "params.inputResponses"), ({"k": 5}, "inputResponses['k']")],
)
def test_malformed_input_responses_are_32602(wire, responses, fragment):
    task_id = wire.call("sleep_for", {"seconds": 0})["taskId"]
    params = {"taskId": task_id} if responses is None else {"taskId": task_id, "inputResponses": responses}
    message = wire.rpc("tasks/update", params)
    assert message["error"]["code"] == -32602 and fragment in message["error"]["message"]


def test_removed_v1_task_methods_are_404(wire):
    for method in ("tasks/result", "tasks/list"):
        response = wire.post(method, {"taskId": "x"})
        assert response.status_code == 404 and response.json()["error"]["code"] == -32601


def test_task_support_must_be_a_known_level():
    service = Service("levels")

    def job() -> str:
        return "done"

    with pytest.raises(ConfigError, match="task_support='sometimes'; one of forbidden, optional, required"):
        service.tool(task_support="sometimes")(job)


def test_request_failed_reaches_an_in_process_caller_unwrapped_as_a_protocol_error():
    tool = task_service().tools["plain_fails_request"]
    with pytest.raises(ProtocolError) as caught:
        tool.run({})
    assert isinstance(caught.value, RequestFailed) and caught.value.code == -32098
    with pytest.raises(RequestFailed, match="refused in the request"):
        asyncio.run(tool.arun({}))
    with pytest.raises(TypeError, match="integer"):
        RequestFailed("-32000", "a code that is text")  # type: ignore[arg-type]


def test_a_deferred_task_starts_when_the_tool_says_so_and_takes_input_through_it(wire):
    created = wire.call("deferred", {"go_long": True})
    assert created["resultType"] == "task"
    task = wire.wait(created["taskId"], "input_required")
    [key] = task["inputRequests"]
    wire.result(
        "tasks/update",
        {"taskId": created["taskId"], "inputResponses": {key: {"action": "accept", "content": {"name": "Bo"}}}},
    )
    assert wire.wait(created["taskId"])["result"]["content"][0]["text"] == "later, Bo"


def test_a_deferred_tool_that_ends_first_answers_in_the_request(wire, plain):
    result = wire.call("deferred", {"go_long": False})
    assert result["resultType"] == "complete" and result["content"][0]["text"] == "done in the request"
    # Without the extension ctx.start_task() is a no-op: the tool runs on in the request, and
    # its ask is the multi-round trip's (here refused: this client declared no elicitation).
    message = plain.rpc("tools/call", {"name": "deferred", "arguments": {"go_long": True}})
    assert message["error"]["code"] == -32021


def test_defer_task_needs_task_support():
    service = Service("deferral")

    def job() -> str:
        return "done"

    with pytest.raises(ConfigError, match="defer_task needs task_support"):
        service.tool(defer_task=True)(job)


def test_a_deferred_task_gathers_its_input_by_multi_round_trip_first(wire):
    first = wire.call("ask_then_task")
    assert first["resultType"] == "input_required" and "taskId" not in first
    assert list(first["inputRequests"]) == ["who"]
    retry = {
        "name": "ask_then_task",
        "arguments": {},
        "inputResponses": {"who": {"action": "accept", "content": {"name": "Cy"}}},
        "requestState": first["requestState"],
    }
    created = wire.result("tools/call", retry)
    assert created["resultType"] == "task" and not {"requestState", "inputRequests"} & set(created)
    assert wire.wait(created["taskId"])["result"]["content"][0]["text"] == "task for Cy"
    tampered = wire.post("tools/call", {**retry, "requestState": first["requestState"][:-4] + "AAAA"})
    assert tampered.status_code == 400 and tampered.json()["error"]["code"] == -32602


def test_an_answer_of_the_wrong_shape_is_32602_and_the_request_stays_open(wire):
    task_id = wire.call("ask")["taskId"]
    [key] = wire.wait(task_id, "input_required")["inputRequests"]
    message = wire.rpc("tasks/update", {"taskId": task_id, "inputResponses": {key: {"action": "maybe"}}})
    assert message["error"]["code"] == -32602 and key in message["error"]["message"]
    assert key in wire.get(task_id)["inputRequests"]
    wire.result("tasks/cancel", {"taskId": task_id})


def test_rest_answers_request_failed_and_missing_input_channels_plainly(base_url):
    failed = httpx.post(f"{base_url}/tools/plain_fails_request", json={})
    assert failed.status_code == 500
    assert failed.json()["error"] == {
        "type": "RequestFailed",
        "message": "refused in the request (JSON-RPC -32098)",
        "code": -32098,
    }
    asks = httpx.post(f"{base_url}/tools/ask", json={})
    assert asks.status_code == 400 and asks.json()["error"]["type"] == "CapabilityMissing"
    assert "no channel back" in asks.json()["error"]["message"]
