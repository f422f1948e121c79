"""Limits: body size (413), per-tool timeout, per-service concurrency (503 + Retry-After), rate limit (429)."""

from __future__ import annotations

import asyncio
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from devenv import MCPClient, Service, ServiceUnavailable, ToolError, create_app
from devenv.config import Settings
from devenv.security import MemoryRateLimiter
from tests.conftest import serve_in_thread
from tests.hardening.conftest import wait_until


def call(name: str, arguments: dict, id: int = 1) -> dict:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


def blocking_service(gate: threading.Event) -> Service:
    service = Service("limits")
    service.ran = []  # type: ignore[attr-defined]

    @service.tool(read_only=True)
    def wait(tag: str = "") -> str:
        """Blocks until the test opens the gate."""
        service.ran.append(tag)  # type: ignore[attr-defined]
        gate.wait(60)
        return tag

    @service.tool(read_only=True)
    def quick(n: int = 0) -> int:
        return n

    @service.tool(timeout=0.3)
    def stuck() -> int:
        """Never returns in time (a sync tool: its thread is abandoned)."""
        gate.wait(60)
        return 1

    @service.tool(timeout=0.3)
    async def stuck_async() -> int:
        await asyncio.sleep(60)
        return 1

    @service.tool(timeout=0.3)
    async def stuck_then_raise() -> int:
        """Turns its cancellation into another error."""
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("interrupted") from None
        return 1

    @service.tool
    def own_timeout() -> int:
        """A timeout of the tool's own (an upstream call), not the server's."""
        raise TimeoutError("timed out: upstream did not answer")

    @service.tool
    def slow_default() -> int:
        """No timeout of its own: the server's DEVENV_TOOL_TIMEOUT applies."""
        gate.wait(60)
        return 1

    return service


@pytest.fixture
def gate():
    event = threading.Event()
    yield event
    event.set()  # release whatever still waits, also when a test failed


# -- body size -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/mcp", "/tools/quick"])
@pytest.mark.parametrize("streamed", [False, True])
def test_bodies_over_the_limit_are_413_and_no_tool_runs(gate, path, streamed):
    service = blocking_service(gate)
    with serve_in_thread(create_app(service, Settings(max_body_bytes=1024))) as url:
        payload = b'{"n": 1, "pad": "' + b"x" * 4096 + b'"}'
        content = iter([payload[:100], payload[100:]]) if streamed else payload
        r = httpx.post(f"{url}{path}", content=content, headers={"content-type": "application/json"})
        metrics = httpx.get(f"{url}/metrics").text
    assert r.status_code == 413
    assert "1024" in r.text
    assert 'mcp_requests_total{devenv_service="limits",status="ok",tool="quick",transport="mcp"} 0.0' in metrics
    assert not re.search(r'mcp_requests_total\{[^}]*tool="quick"[^}]*\} [1-9]', metrics)  # counted nowhere


# -- per-tool timeout --------------------------------------------------------------------------------


def test_a_tool_past_its_timeout_fails_as_a_tool_error_on_every_wire(gate, monkeypatch):
    with serve_in_thread(create_app(blocking_service(gate))) as url:
        rest = httpx.post(f"{url}/tools/stuck", json={})
        mcp = httpx.post(f"{url}/mcp", json=call("stuck_async", {})).json()["result"]
        monkeypatch.setenv("DEVENV_URL_LIMITS", url)
        with MCPClient(mode="http") as client, pytest.raises(ToolError) as info:
            client.call("limits/stuck", {})
        metrics = httpx.get(f"{url}/metrics").text
    assert rest.status_code == 504
    assert rest.json()["error"]["error_type"] == "TimeoutError"
    assert "timed out" in rest.json()["error"]["detail"]
    assert mcp["isError"] is True and "timed out" in mcp["content"][0]["text"]
    assert info.value.error_type == "TimeoutError" and "0.3 s" in info.value.message
    assert 'status="timeout",tool="stuck"' in metrics


def test_a_tool_that_turns_its_cancellation_into_an_error_still_times_out(gate):
    with serve_in_thread(create_app(blocking_service(gate))) as url:
        r = httpx.post(f"{url}/tools/stuck_then_raise", json={})
        own = httpx.post(f"{url}/tools/own_timeout", json={})
        assert httpx.post(f"{url}/tools/quick", json={"n": 3}).json() == 3
    assert r.status_code == 504 and "timed out" in r.json()["error"]["detail"]
    assert own.status_code == 500  # the tool's own TimeoutError is a failure, not the server's timeout


def test_timed_out_calls_do_not_leave_the_server_stuck(gate):
    """More abandoned sync calls than the worker-thread pool holds (40), then a normal call."""
    with serve_in_thread(create_app(blocking_service(gate))) as url:
        with ThreadPoolExecutor(48) as pool:
            codes = list(
                pool.map(lambda _: httpx.post(f"{url}/tools/stuck", json={}, timeout=60).status_code, range(48))
            )
        assert codes == [504] * 48
        assert httpx.post(f"{url}/tools/quick", json={"n": 7}, timeout=30).json() == 7
        assert httpx.get(f"{url}/health").status_code == 200


def test_the_server_wide_timeout_applies_to_tools_without_their_own(gate):
    app = create_app(blocking_service(gate), Settings(tool_timeout=0.3))
    with serve_in_thread(app) as url:
        r = httpx.post(f"{url}/tools/slow_default", json={})
    assert r.status_code == 504 and "0.3 s" in r.text


def test_in_process_async_calls_honour_a_timeout_too(gate):
    tool = blocking_service(gate).tools["stuck_async"]
    with pytest.raises(ToolError) as info:
        asyncio.run(tool.arun({}, timeout=0.2))
    assert info.value.error_type == "TimeoutError"


# -- concurrency ------------------------------------------------------------------------------------


def test_a_full_service_answers_503_with_retry_after_and_recovers(gate):
    service = blocking_service(gate)
    app = create_app(service, Settings(max_concurrency=2))
    runtime = app.state.runtime
    with serve_in_thread(app) as url, ThreadPoolExecutor(2) as pool:
        held = [pool.submit(httpx.post, f"{url}/tools/wait", json={"tag": str(i)}, timeout=60) for i in range(2)]
        wait_until(lambda: runtime.in_flight == 2, what="two calls in flight")
        rest = httpx.post(f"{url}/tools/quick", json={"n": 1})
        mcp = httpx.post(f"{url}/mcp", json=call("quick", {"n": 1}, id=9))
        health = httpx.get(f"{url}/health")
        gate.set()
        assert [f.result().status_code for f in held] == [200, 200]
        after = httpx.post(f"{url}/tools/quick", json={"n": 2})
        metrics = httpx.get(f"{url}/metrics").text
    assert rest.status_code == 503 and rest.headers["retry-after"] == "1"
    assert rest.json()["error"]["type"] == "Overloaded"
    assert mcp.status_code == 503 and mcp.headers["retry-after"] == "1"
    assert mcp.json()["id"] == 9 and mcp.json()["error"]["code"] == -32000
    assert health.status_code == 200  # probes are never turned away
    assert after.json() == 2
    assert 'devenv_rejected_requests_total{devenv_service="limits",reason="overloaded"} 2.0' in metrics


def test_a_client_retries_an_idempotent_call_until_a_slot_frees(gate, monkeypatch):
    app = create_app(blocking_service(gate), Settings(max_concurrency=1))
    runtime = app.state.runtime
    with serve_in_thread(app) as url, ThreadPoolExecutor(2) as pool:
        monkeypatch.setenv("DEVENV_URL_LIMITS", url)
        client = MCPClient(mode="http", timeout=60, retries=50)
        client.list_tools("limits")  # session first, so the retried request is the call itself
        held = pool.submit(httpx.post, f"{url}/tools/wait", json={"tag": "held"}, timeout=60)
        wait_until(lambda: runtime.in_flight == 1, what="the slot taken")
        waiting = pool.submit(client.call, "limits/quick", {"n": 5})
        wait_until(lambda: b'reason="overloaded"' in runtime.metrics.render(), what="a 503 seen by the client")
        gate.set()
        assert waiting.result(60) == 5
        assert held.result(60).status_code == 200
        client.close()


# -- rate limit ---------------------------------------------------------------------------------------


def test_memory_token_bucket():
    bucket = MemoryRateLimiter(rate=2.0, burst=3)
    assert [bucket.take_now("a", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take_now("a", now=100.0) == pytest.approx(0.5)
    assert bucket.take_now("b", now=100.0) == 0.0  # another key, another bucket
    assert bucket.take_now("a", now=101.0) == 0.0  # refilled at 2 per second


def rate_limited_app(**settings) -> object:
    return create_app(blocking_service(threading.Event()), Settings(rate_limit=0.01, rate_burst=3, **settings))


def statuses(url: str, n: int) -> list[int]:
    out = []
    for i in range(n):
        if i % 2:
            out.append(httpx.post(f"{url}/mcp", json=call("quick", {"n": i})).status_code)
        else:
            out.append(httpx.post(f"{url}/tools/quick", json={"n": i}).status_code)
    return out


def test_rate_limit_in_memory_answers_429_with_retry_after():
    with serve_in_thread(rate_limited_app()) as url:
        codes = statuses(url, 5)
        r = httpx.post(f"{url}/tools/quick", json={"n": 1})
        mcp = httpx.post(f"{url}/mcp", json=call("quick", {}))
        assert httpx.get(f"{url}/health").status_code == 200  # probes are not limited
    assert codes == [200, 200, 200, 429, 429]
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["type"] == "RateLimited"
    assert mcp.json()["error"]["code"] == -32002


def test_rate_limit_per_token():
    token = "rate-" + "k" * 30
    app = rate_limited_app(auth_token=token)
    with serve_in_thread(app) as url:
        auth = {"authorization": f"Bearer {token}"}
        codes = [httpx.post(f"{url}/tools/quick", json={}, headers=auth).status_code for _ in range(4)]
        unauthenticated = httpx.post(f"{url}/tools/quick", json={})
    assert codes == [200, 200, 200, 429]
    assert unauthenticated.status_code == 401  # refused before it could spend anyone's tokens


def test_rate_limit_in_redis_holds_across_replicas(redis_server):
    replicas = [rate_limited_app(redis_url=redis_server.url) for _ in range(2)]
    with serve_in_thread(replicas[0]) as a, serve_in_thread(replicas[1]) as b:
        codes = [httpx.post(f"{url}/tools/quick", json={}).status_code for url in (a, b, a, b, a, b)]
    # In memory each replica would let 3 through (6 in all); in Redis the bucket is shared.
    assert codes.count(200) == 3 and codes.count(429) == 3


def test_rate_limit_falls_back_to_memory_while_redis_is_down(redis_server, caplog):
    app = rate_limited_app(redis_url=redis_server.url)
    with serve_in_thread(app) as url:
        assert httpx.post(f"{url}/tools/quick", json={}).status_code == 200
        redis_server.stop()
        codes = [httpx.post(f"{url}/tools/quick", json={}, timeout=30).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # a fresh per-replica bucket: limited, never a 500
    assert "limiting per replica" in caplog.text


def test_a_client_gives_up_on_429_within_its_timeout(monkeypatch):
    app = create_app(blocking_service(threading.Event()), Settings(rate_limit=0.01, rate_burst=4))
    with serve_in_thread(app) as url:
        monkeypatch.setenv("DEVENV_URL_LIMITS", url)
        with MCPClient(mode="http", timeout=3) as client:
            assert client.call("limits/quick", {"n": 1}) == 1  # discovery and the call take tokens too
            # The burst runs out within a few calls, whatever the era's handshake cost; then Retry-After
            # is 100 s, past the 3 s timeout, so the client must give up at once instead of waiting.
            with pytest.raises(ServiceUnavailable) as info:
                for _ in range(4):
                    client.call("limits/quick", {})
    assert "429" in info.value.reason
