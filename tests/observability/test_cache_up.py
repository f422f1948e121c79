"""devenv_cache_up: a ping at scrape time, so the Redis alert fires with no tool traffic at all.

Against a real redis-server that the test stops, and a real Prometheus evaluating the real rules.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from devenv import MemoryCache, RedisCache, create_app
from devenv.stack.observe import start_prometheus, stop_prometheus
from devenv.testing import free_port, serve_in_thread
from tests.observability.test_metrics import value
from tests.unit.demo_service import make_service


class _Redis:
    """A redis-server of this test's own, so that it can be stopped (the session one is shared)."""

    def __init__(self, binary: str, workdir) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} not found on PATH; .ci/run installs it (apt-get install {package})")
        pytest.skip(f"{name} not found on PATH (apt-get install {package})")
    return found


@pytest.fixture
def redis(tmp_path) -> Iterator[_Redis]:
    server = _Redis(_binary("redis-server", "redis-server"), tmp_path)
    yield server
    server.stop()


def _scrape(url: str) -> str:
    r = httpx.get(f"{url}/metrics", timeout=10)
    assert r.status_code == 200
    return r.text


def test_a_stopped_redis_reads_0_at_the_next_scrape_without_any_tool_call(redis):
    service = make_service()
    service.cache = RedisCache(redis.url, timeout=0.5)
    with serve_in_thread(create_app(service)) as url:
        assert value(_scrape(url), "devenv_cache_up", devenv_service="demo", backend="redis") == 1
        redis.stop()
        text = _scrape(url)
    assert value(text, "devenv_cache_up", devenv_service="demo", backend="redis") == 0
    # nothing was called: the counters the old alert read have not moved
    assert value(text, "devenv_cache_errors_total", devenv_service="demo", op="get") == 0
    assert value(text, "mcp_requests_total", devenv_service="demo", tool="echo", transport="mcp", status="ok") == 0


def test_a_memory_cache_is_always_up_and_a_broken_cache_of_ones_own_reads_0():
    class Broken(MemoryCache):
        def ping(self) -> None:
            raise ConnectionError("no")

    service = make_service()
    service.cache = MemoryCache()
    text = create_app(service).state.runtime.metrics.render().decode()
    assert value(text, "devenv_cache_up", devenv_service="demo", backend="memory") == 1
    service.cache = Broken()
    text = create_app(service).state.runtime.metrics.render().decode()
    assert value(text, "devenv_cache_up", devenv_service="demo", backend="other") == 0  # /metrics still renders


def test_prometheus_raises_the_redis_alert_for_an_idle_service(redis, tmp_path):
    binary = _binary("prometheus", "prometheus")
    service = make_service()
    service.cache = RedisCache(redis.url, timeout=0.5)
    healthy = make_service()
    healthy.name = "healthy"
    healthy.cache = MemoryCache()
    with serve_in_thread(create_app(service)) as url, serve_in_thread(create_app(healthy)) as other:
        redis.stop()  # before Prometheus ever scrapes: no tool is called at any point
        prometheus = start_prometheus({"demo": url, "healthy": other}, tmp_path / "state", interval="1s", binary=binary)
        try:
            alerts = _pending(prometheus.url, "DevenvRedisUnreachable")
        finally:
            stop_prometheus(tmp_path / "state")
    assert [a["labels"]["devenv_service"] for a in alerts] == ["demo"]
    assert alerts[0]["state"] == "pending"  # `for: 1m` makes it fire a minute later
    assert alerts[0]["annotations"]["summary"] == "demo cannot reach Redis: tools run without the cache"


def _pending(url: str, name: str, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            alerts = httpx.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        except httpx.HTTPError:
            alerts = []
        wanted = [a for a in alerts if a["labels"]["alertname"] == name]
        if wanted or time.monotonic() > deadline:
            return wanted
        time.sleep(0.5)
