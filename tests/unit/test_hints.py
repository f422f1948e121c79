"""A call to a stack that is not there fails at once, saying what to do (devenv.hints)."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from devenv import ServiceUnavailable
from devenv.hints import first_contact_failure
from devenv.transports.http import HTTPTransport


def _transport(url: str, timeout: float = 60) -> tuple[HTTPTransport, list[float]]:
    """A transport that would retry for ``timeout`` s, recording each backoff it sleeps."""
    transport = HTTPTransport(resolve=lambda s: url, retries=10**6, backoff=0.05, max_backoff=0.2, timeout=timeout)
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(seconds)  # really wait: a retry loop must not spin

    def record_sync(seconds: float) -> None:
        delays.append(seconds)
        time.sleep(seconds)

    transport._sleep = record
    transport._sync_sleep = record_sync  # the sync call path sleeps here
    return transport, delays


def test_a_refused_first_connection_to_a_local_stack_fails_at_once_with_the_commands_to_run(
    closed_port_url, monkeypatch
):
    monkeypatch.setenv("DEVENV_URL_DEMO", closed_port_url)
    transport, delays = _transport(closed_port_url)
    with pytest.raises(ServiceUnavailable) as caught:
        transport.call_tool("demo", "echo", {"text": "x"})
    transport.close()
    message = str(caught.value)
    assert delays == []  # not one retry: waiting cannot start a stack
    port = closed_port_url.rsplit(":", 1)[1]
    assert f"nothing listens at 127.0.0.1:{port}" in message
    assert f"DEVENV_URL_DEMO={closed_port_url}" in message
    for command in ("devenv up", "devenv status", "eval $(devenv env)"):
        assert command in message


def test_a_name_that_does_not_resolve_says_what_k8s_mode_means():
    url = "http://no-such-service.invalid:8080"  # .invalid never resolves (RFC 2606)
    transport, delays = _transport(url)
    with pytest.raises(ServiceUnavailable) as caught:
        transport.call_tool("demo", "echo", {"text": "x"})
    transport.close()
    message = str(caught.value)
    assert delays == []
    assert "'no-such-service.invalid' does not resolve" in message
    assert "K8S_MODE=true means the services run in a Kubernetes cluster" in message
    assert "devenv up -d" in message and "eval $(devenv env)" in message and "DEVENV_URL_DEMO" in message


def test_errors_that_a_retry_may_fix_get_no_hint():
    assert first_contact_failure("demo", "http://127.0.0.1:1", httpx.ReadTimeout("slow")) is None


def test_a_refused_connection_elsewhere_points_at_the_cluster_and_the_url_settings():
    error = httpx.ConnectError("All connection attempts failed")
    error.__cause__ = OSError(111, "Connection refused")
    reason = first_contact_failure("demo", "http://10.0.0.7:8080", error, environ={})
    assert reason.startswith("nothing listens at 10.0.0.7:8080 (connection refused)")
    assert "kubectl get pods" in reason and "DEVENV_URL_DEMO" in reason


def test_after_the_first_contact_a_refused_connection_is_retried():
    """A service that answered once and then refuses is restarting: the call waits for it."""
    from devenv import Service, create_app
    from devenv.testing import serve_in_thread

    service = Service("demo")

    @service.tool(read_only=True)
    def echo(text: str) -> str:
        return text

    with serve_in_thread(create_app(service)) as url:
        transport, delays = _transport(url, timeout=3)
        assert transport.call_tool("demo", "echo", {"text": "up"}) == "up"
    with pytest.raises(ServiceUnavailable):
        transport.call_tool("demo", "echo", {"text": "gone"})
    transport.close()
    assert len(delays) > 1  # it kept trying until its timeout


def test_the_dns_test_name_really_does_not_resolve():
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("no-such-service.invalid", 8080)
