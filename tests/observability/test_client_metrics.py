"""mcp_client_operation_duration_seconds: MCPClient's calls as the caller saw them, per the MCP convention."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devenv import MCPClient, MemoryCache, ServiceUnavailable, ToolError, create_app, default_registry, tracing
from devenv.testing import free_port, serve_in_thread
from tests.observability.test_metrics import samples
from tests.unit.demo_service import make_service

NAME = "mcp_client_operation_duration_seconds_count"


def client_counts(text: str) -> dict[tuple[str, str, str, str], float]:
    """(caller, peer, tool, error_type) -> calls measured, from a /metrics text."""
    out = {}
    for (name, labels), value in samples(text).items():
        if name == NAME:
            d = dict(labels)
            assert d["mcp_method_name"] == "tools/call" and d["gen_ai_operation_name"] == "execute_tool"
            out[d["devenv_service"], d["peer_service"], d["gen_ai_tool_name"], d["error_type"]] = value
    return out


@pytest.fixture
def traced():
    tracing.configure(InMemorySpanExporter())
    yield
    tracing.disable()


def _scrape_in_process() -> dict:
    return client_counts(create_app(make_service()).state.runtime.metrics.render().decode())


def test_with_tracing_on_each_call_is_measured_with_its_outcome(traced, closed_port_url, monkeypatch):
    monkeypatch.delenv("DEVENV_SERVICE", raising=False)  # `devenv serve` run in-process by other tests sets it
    before = _scrape_in_process()
    client = MCPClient(services=[make_service()], mode="inprocess")
    assert "measured(" in repr(client.transport)
    client.call("demo/echo", {"text": "a"})
    with pytest.raises(ToolError):
        client.call("demo/fail", {"message": "no"})
    monkeypatch.setenv("DEVENV_URL_DEMO", closed_port_url)
    with MCPClient(mode="http", retries=0) as remote, pytest.raises(ServiceUnavailable):
        remote.call("demo/echo", {"text": "a"})
    after = _scrape_in_process()

    def added(key: tuple[str, str, str, str]) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert added(("devenv-client", "demo", "echo", "")) == 1
    assert added(("devenv-client", "demo", "fail", "tool_error")) == 1  # isError: the convention's value
    assert added(("devenv-client", "demo", "echo", "ServiceUnavailable")) == 1
    text = create_app(make_service()).state.runtime.metrics.render().decode()
    assert "# TYPE mcp_client_operation_duration_seconds histogram" in text


def test_off_the_client_keeps_its_own_transport_and_nothing_is_measured():
    code = (
        "from devenv import MCPClient, client_metrics\n"
        "from tests.unit.demo_service import make_service\n"
        "client = MCPClient(services=[make_service()], mode='inprocess')\n"
        "assert type(client.transport).__name__ == 'InProcessTransport', client.transport\n"
        "assert client.call('demo/echo', {'text': 'a'}) == 'a'\n"
        "import sys\n"
        "assert client_metrics._histogram is None and 'prometheus_client' not in sys.modules\n"
        "print('unmeasured')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DEVENV_"))}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "unmeasured"


def test_a_served_agent_shows_its_downstream_calls_on_its_own_metrics(tmp_path, monkeypatch):
    """`devenv serve inbox-agent` (tracing off) calling four services over HTTP: its /metrics has each call."""
    for name in ("vault", "unsorted"):
        (tmp_path / name).mkdir()
    (tmp_path / "unsorted" / "tax.txt").write_text("HMRC tax return for the tax year: VAT deduction.", "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DEVENV_", "REDIS_"))}
    roots = {"VAULT_ROOT": str(tmp_path / "vault"), "UNSORTED_ROOT": str(tmp_path / "unsorted")}
    for key, value in roots.items():  # the downstream services run in this process, the agent in its own
        monkeypatch.setenv(key, value)
    env.update(roots, K8S_MODE="true")
    env["DEVENV_ENV_FILE"] = os.devnull
    registry = default_registry()
    downstream = ("jd-classifier", "content-classifier", "file-system", "notifications")
    servers = []
    for name in downstream:
        registry.get(name).cache = MemoryCache()
        servers.append(serve_in_thread(create_app(registry.get(name))))
    urls = [s.__enter__() for s in servers]
    port = free_port()
    agent = None
    try:
        for name, url in zip(downstream, urls, strict=True):
            env["DEVENV_URL_" + name.upper().replace("-", "_")] = url
        log = (tmp_path / "agent.log").open("wb")
        agent = subprocess.Popen(
            [sys.executable, "-m", "devenv.cli", "serve", "inbox-agent", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        agent_url = f"http://127.0.0.1:{port}"
        _wait_healthy(agent, agent_url)
        assert client_counts(httpx.get(f"{agent_url}/metrics").text) == {}  # nothing called yet
        reply = httpx.post(f"{agent_url}/tools/process_inbox", json={}, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.json()["moved"]
        counts = client_counts(httpx.get(f"{agent_url}/metrics").text)
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(30)
        for server in servers:
            server.__exit__(None, None, None)
    assert {peer for (caller, peer, _, _) in counts} == set(downstream), counts
    assert {caller for (caller, _, _, _) in counts} == {"inbox-agent"}
    assert {peer for (_, peer, _, error) in counts if error == ""} == set(downstream), counts
    # the agent lists a vault folder that does not exist yet: a tool error it handles, measured as one
    assert counts.get(("inbox-agent", "file-system", "list_files", "tool_error")) == 1, counts


def _wait_healthy(proc: subprocess.Popen, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "devenv serve inbox-agent exited"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"devenv serve inbox-agent did not answer /health in {timeout} s")
