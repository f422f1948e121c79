"""Faults injected on purpose: SIGTERM, restart under load, kill -9, Redis going away and coming back.

Services run as real `devenv serve` processes (fixture ``serve``); loops are bounded and
every wait has a generous deadline, so a slow machine makes the tests slower, not flaky.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from devenv import MCPClient, RedisCache, Service, ServiceUnavailable, create_app
from devenv.transports.http import HTTPTransport
from tests.conftest import serve_in_thread
from tests.hardening import tally
from tests.hardening.conftest import wait_until


@pytest.fixture
def remote(monkeypatch):
    """``remote(url, **options)``: a remote-mode client for `hardy` at ``url``, closed after the test."""
    made: list[MCPClient] = []

    def make(url: str, **kwargs) -> MCPClient:
        monkeypatch.setenv("DEVENV_URL_HARDY", url)
        made.append(MCPClient(mode="http", **kwargs))
        return made[-1]

    yield make
    for client in made:
        client.close()


# -- SIGTERM -------------------------------------------------------------------------------------------


def test_sigterm_turns_ready_503_and_finishes_the_call_in_flight(serve, tmp_path):
    served = serve(DEVENV_SHUTDOWN_DELAY="3")
    assert httpx.get(f"{served.url}/ready").status_code == 200
    marker = tmp_path / "in-flight"
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(
            httpx.post, f"{served.url}/tools/slow", json={"seconds": 4, "marker": str(marker)}, timeout=60
        )
        wait_until(marker.exists, what="the slow call to start")
        served.signal(signal.SIGTERM)
        ready = wait_until(
            lambda: (r := httpx.get(f"{served.url}/ready", timeout=5)).status_code == 503 and r,
            what="/ready to turn 503",
        )
        # Still serving while load balancers catch up, and telling keep-alive clients to go.
        during = httpx.post(f"{served.url}/tools/echo", json={"text": "late"}, timeout=30)
        result = in_flight.result(60)
    code = served.wait(60)
    assert ready.json()["status"] == "shutting down"
    assert during.json() == "late" and during.headers["connection"] == "close"
    assert result.status_code == 200 and result.json() == 4
    assert code in (0, -signal.SIGTERM)  # uvicorn exits by re-raising the signal it handled


def _stream_of_calls(client: MCPClient, stop: threading.Event, ok: list[int], failures: list[str], worker: int):
    for n in range(100_000):  # bounded; stops on `stop` long before
        if stop.is_set():
            return
        text = f"{worker}-{n}"
        try:
            if client.call("hardy/echo", {"text": text}) != text:
                failures.append(f"wrong answer for {text}")
            else:
                ok[worker] += 1
        except Exception as exc:  # every failure is counted, whatever it is
            failures.append(f"{type(exc).__name__}: {exc}")


def test_restart_under_a_steady_stream_of_calls_loses_none(serve, remote):
    """SIGTERM the service, start it again on the same port, twice; retries cover every gap."""
    served = serve(DEVENV_SHUTDOWN_DELAY="0.5")
    client = remote(served.url, timeout=120, retries=100)
    workers = 3
    ok = [0] * workers
    failures: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_stream_of_calls, args=(client, stop, ok, failures, i), daemon=True)
        for i in range(workers)
    ]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: sum(ok) >= 50, timeout=60, what="calls to flow")
        for _ in range(2):
            served.signal(signal.SIGTERM)
            served.wait(60)
            before = sum(ok)
            served.start()  # the same port: the client's URL does not change
            wait_until(lambda b=before: sum(ok) >= b + 50, timeout=120, what="calls to flow again")
    finally:
        stop.set()
        for t in threads:
            t.join(180)
    made = sum(ok) + len(failures)
    tally.add("calls made", made)
    tally.add("calls lost", len(failures))
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert made >= 150


def test_sigterm_with_nothing_in_flight_exits_promptly(serve):
    served = serve()
    served.signal(signal.SIGTERM)
    assert served.wait(60) in (0, -signal.SIGTERM)


# -- kill -9 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["slow_write", "slow"])
def test_kill_9_mid_call_raises_service_unavailable_within_the_timeout(serve, remote, tmp_path, tool):
    """slow_write is not idempotent: fails at once. slow is: retried until the client's timeout."""
    served = serve()
    client = remote(served.url, timeout=8)
    assert client.call("hardy/echo", {"text": "up"}) == "up"
    marker = tmp_path / "in-flight"
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        call = pool.submit(client.call, f"hardy/{tool}", {"seconds": 60, "marker": str(marker)})
        wait_until(marker.exists, what="the call to start")
        served.signal(signal.SIGKILL)
        with pytest.raises(ServiceUnavailable) as info:
            call.result(timeout=60)  # generous: a hang would be the 60 s of the tool, or forever
        elapsed = time.monotonic() - started
    assert info.value.service == "hardy" and info.value.url == f"{served.url}/mcp"
    assert elapsed < 8 + 15  # the client's timeout, plus slack for a loaded machine; never the tool's 60 s
    served.start()
    assert client.call("hardy/echo", {"text": "back"}) == "back"  # the same client recovers


# -- retries ------------------------------------------------------------------------------------------


class Failing:
    """ASGI app that answers ``status`` to every tools/call (after a real initialize)."""

    def __init__(self, app, status: int, headers: dict[str, str] | None = None, failures: int = 10**9) -> None:
        self.app, self.status, self.headers, self.failures, self.calls = app, status, headers or {}, failures, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/mcp":
            body, more = b"", True
            while more:
                message = await receive()
                body, more = body + message.get("body", b""), message.get("more_body", False)
            if b"tools/call" in body:
                self.calls += 1
                if self.calls <= self.failures:
                    from starlette.responses import Response

                    return await Response("busy", self.status, headers=self.headers)(scope, receive, send)

            async def replay():
                return {"type": "http.request", "body": body, "more_body": False}

            return await self.app(scope, replay, send)
        return await self.app(scope, receive, send)


def _demo() -> Service:
    from tests.unit.demo_service import make_service

    return make_service()


def _recording(transport: HTTPTransport) -> list[float]:
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    transport._sleep = record  # acall's pause between retries
    transport._sync_sleep = delays.append  # call's (no event loop behind a sync call)
    return delays


def test_idempotent_retries_back_off_exponentially_with_jitter_and_a_cap():
    failing = Failing(create_app(_demo()), 503)
    with serve_in_thread(failing) as url:
        transport = HTTPTransport(resolve=lambda s: url, retries=8, backoff=0.1, max_backoff=1.0, timeout=60)
        delays = _recording(transport)
        with pytest.raises(ServiceUnavailable):
            transport.call_tool("demo", "echo", {"text": "x"})
        transport.close()
    assert failing.calls == 9  # the first try and 8 retries
    for n, delay in enumerate(delays):
        ceiling = min(1.0, 0.1 * 2**n)
        assert ceiling * 0.5 <= delay <= ceiling  # jittered within [half, all] of the capped backoff
    assert max(delays) <= 1.0 and len(set(delays)) == len(delays)


def test_non_idempotent_tools_are_never_retried():
    failing = Failing(create_app(_demo()), 503)
    with serve_in_thread(failing) as url:
        transport = HTTPTransport(resolve=lambda s: url, retries=8)
        delays = _recording(transport)
        with pytest.raises(ServiceUnavailable):
            transport.call_tool("demo", "make_box", {"label": "a", "corners": []})
        transport.close()
    assert (failing.calls, delays) == (1, [])


def test_retry_after_is_honoured():
    failing = Failing(create_app(_demo()), 503, {"retry-after": "2"}, failures=1)
    with serve_in_thread(failing) as url:
        transport = HTTPTransport(resolve=lambda s: url, retries=3, backoff=0.01)
        delays = _recording(transport)
        assert transport.call_tool("demo", "echo", {"text": "x"}) == "x"
        transport.close()
    assert delays == [2.0]


def test_retries_stop_at_the_clients_timeout(closed_port_url):
    """Nothing listens: an idempotent call keeps retrying, but never past `timeout` in all."""
    transport = HTTPTransport(
        resolve=lambda s: closed_port_url, retries=10**6, backoff=0.05, max_backoff=0.2, timeout=2
    )
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        transport.call_tool("demo", "echo", {"text": "x"})
    transport.close()
    assert time.monotonic() - started < 2 + 10  # the timeout, plus slack for a loaded machine


# -- Redis down and back ------------------------------------------------------------------------------


def cached_service() -> Service:
    service = Service("cachy")
    service.runs = 0  # type: ignore[attr-defined]

    @service.tool(read_only=True, cache_ttl=300)
    def square(n: int) -> int:
        service.runs += 1  # type: ignore[attr-defined]
        return n * n

    return service


def test_redis_down_degrades_the_cache_and_readiness_then_both_recover(redis_server, caplog):
    cached = cached_service()
    cached.cache = RedisCache(redis_server.url, timeout=0.5)
    needy = Service("needy", requires=("cache",))
    needy.cache = RedisCache(redis_server.url, timeout=0.5)
    caplog.set_level(logging.WARNING, logger="devenv.tools")
    with serve_in_thread(create_app(cached)) as url, serve_in_thread(create_app(needy)) as needy_url:

        def square(n: int) -> int:
            r = httpx.post(f"{url}/tools/square", json={"n": n}, timeout=30)
            assert r.status_code == 200, r.text
            return r.json()

        assert (square(3), square(3), cached.runs) == (9, 9, 1)  # the second came from Redis
        assert httpx.get(f"{needy_url}/ready").status_code == 200

        redis_server.stop()
        assert [square(4) for _ in range(3)] == [16, 16, 16]  # no cache, no failure
        assert cached.runs == 4
        not_ready = httpx.get(f"{needy_url}/ready", timeout=30)
        assert not_ready.status_code == 503 and not_ready.json()["checks"]["cache"] != "ok"
        metrics = httpx.get(f"{url}/metrics").text
        assert 'devenv_cache_errors_total{devenv_service="cachy",op="get"} 3.0' in metrics
        assert caplog.text.count("cache read skipped") == 1  # one warning per outage, not per call

        redis_server.start()  # the same port; nothing is restarted on the service side
        wait_until(lambda: httpx.get(f"{needy_url}/ready", timeout=30).status_code == 200, what="ready again")

        def hits_again() -> bool:
            before = cached.runs
            assert (square(5), square(5)) == (25, 25)
            return cached.runs - before <= 1  # the second came from the cache

        wait_until(hits_again, what="cache hits again")
    assert "cache is back" in caplog.text


def test_a_slowly_failing_cache_is_left_alone_for_a_moment():
    """A cache that times out (not one that refuses) is not asked again on the very next call."""

    class Slow:
        blocking = False
        attempts = 0

        def get(self, key):
            Slow.attempts += 1
            time.sleep(0.15)
            raise ServiceUnavailable("redis", "redis://cache:6379/0", "timeout")

        set = get

    service = cached_service()
    service.cache = Slow()
    tool = service.tools["square"]
    assert [tool.run({"n": 2}) for _ in range(5)] == [4] * 5
    assert Slow.attempts == 1
    assert service.cache_errors["get"] == 5 and service.cache_errors["set"] == 5


def test_logs_of_a_restart_name_the_shutdown(serve):
    served = serve()
    served.signal(signal.SIGTERM)
    served.wait(60)
    log = Path(served.log_dir, f"serve-{served.port}-1.log").read_text()
    assert "shutting down (SIGTERM)" in log
