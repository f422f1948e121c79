"""DNS-rebinding protection (Host and Origin) and loopback-only binding by default.

Policy: Origin is always checked on /mcp and /tools/* (loopback origins and
DEVENV_ALLOWED_ORIGINS pass). Host is checked when DEVENV_ALLOWED_HOSTS lists names, or
when the server is bound to loopback (DEVENV_BIND_HOST); otherwise, as in a cluster where
Host is a Service name or a Pod IP, it is not.
"""

from __future__ import annotations

import inspect
import socket

import httpx
import pytest

from devenv import create_app
from devenv.config import Settings
from devenv.security import HostPolicy, is_loopback, origin_allowed
from tests.conftest import serve_in_thread
from tests.unit.demo_service import make_service

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


# -- the policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("[::1]", True),
        ("app.localhost", True),
        ("127.0.0.1.evil.example", False),
        ("localhost.evil.example", False),
        ("evil.example.com", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("", False),
    ],
)
def test_loopback_names(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("allowed", "bind", "host", "ok"),
    [
        # No allow-list, bound to all interfaces (a Pod): Host is not checked.
        ((), "0.0.0.0", "jd-classifier-service:8080", True),
        ((), "0.0.0.0", "10.244.1.7:8080", True),
        ((), None, "evil.example.com", True),
        # Bound to loopback: only loopback names.
        ((), "127.0.0.1", "localhost:8101", True),
        ((), "127.0.0.1", "127.0.0.1:8101", True),
        ((), "127.0.0.1", "[::1]:8101", True),
        ((), "localhost", "evil.example.com", False),
        ((), "127.0.0.1", "evil.example.com:8101", False),
        ((), "127.0.0.1", "127.0.0.1.evil.example:8101", False),
        ((), "127.0.0.1", None, False),
        ((), "127.0.0.1", "", False),
        # An allow-list: its names (any port, or the one given), suffixes, loopback always.
        (("jd-classifier-service",), "0.0.0.0", "jd-classifier-service:8080", True),
        (("jd-classifier-service",), "0.0.0.0", "JD-Classifier-Service", True),
        (("jd-classifier-service",), "0.0.0.0", "localhost:8080", True),
        (("jd-classifier-service",), "0.0.0.0", "evil.example.com", False),
        (("jd-classifier-service",), "0.0.0.0", "10.244.1.7:8080", False),
        (("api.example.com:443",), "0.0.0.0", "api.example.com:443", True),
        (("api.example.com:443",), "0.0.0.0", "api.example.com:8443", False),
        ((".svc.cluster.local",), "0.0.0.0", "jd.devenv.svc.cluster.local:8080", True),
        (("*.svc.cluster.local",), "0.0.0.0", "svc.cluster.local", True),
        (("*.svc.cluster.local",), "0.0.0.0", "evilsvc.cluster.local", False),
        (("[fd00::5]:8080",), "0.0.0.0", "[fd00::5]:8080", True),
        (("*",), "127.0.0.1", "anything.example", True),
    ],
)
def test_host_policy(allowed, bind, host, ok):
    assert HostPolicy(allowed, bind).allows(host) is ok


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        (None, True),
        ("http://localhost:6274", True),
        ("http://127.0.0.1:8101", True),
        ("http://[::1]:3000", True),
        ("https://agents.example.com", True),  # listed below
        ("http://evil.example.com", False),
        ("http://127.0.0.1.evil.example", False),
        ("null", False),
        ("http://[bad", False),
    ],
)
def test_origin_policy(origin, ok):
    assert origin_allowed(origin, frozenset({"https://agents.example.com"})) is ok


# -- on a server ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loopback_url():
    with serve_in_thread(create_app(make_service(), Settings(bind_host="127.0.0.1"))) as url:
        yield url


@pytest.mark.parametrize("path", ["/mcp", "/tools/echo"])
def test_a_foreign_host_is_refused_on_a_loopback_server(loopback_url, path):
    body = PING if path == "/mcp" else {"text": "x"}
    r = httpx.post(f"{loopback_url}{path}", json=body, headers={"host": "evil.example.com"})
    assert r.status_code == 421
    assert "Host not allowed" in r.text
    if path == "/mcp":
        assert r.json()["error"]["code"] == -32600


def test_loopback_hosts_pass_and_probes_are_not_checked(loopback_url):
    port = loopback_url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert httpx.post(f"{loopback_url}/mcp", json=PING, headers={"host": host}).status_code == 200
    assert httpx.get(f"{loopback_url}/health", headers={"host": "evil.example.com"}).status_code == 200


def test_in_cluster_hosts_pass_when_bound_to_all_interfaces():
    app = create_app(make_service(), Settings(bind_host="0.0.0.0"))
    with serve_in_thread(app) as url:
        for host in ("jd-classifier-service:8080", "10.244.1.7:8080", "jd-classifier-service.devenv.svc"):
            assert httpx.post(f"{url}/mcp", json=PING, headers={"host": host}).status_code == 200


def test_an_allow_list_is_enforced():
    app = create_app(make_service(), Settings(bind_host="0.0.0.0", allowed_hosts=("jd-classifier-service",)))
    with serve_in_thread(app) as url:
        ok = httpx.post(f"{url}/tools/echo", json={"text": "x"}, headers={"host": "jd-classifier-service:8080"})
        bad = httpx.post(f"{url}/tools/echo", json={"text": "x"}, headers={"host": "10.244.1.7:8080"})
        assert (ok.status_code, bad.status_code) == (200, 421)


def test_a_foreign_origin_is_refused_on_rest_too(loopback_url):
    """A rebinding page can POST JSON to /tools/write_file same-origin; Origin gives it away."""
    r = httpx.post(f"{loopback_url}/tools/echo", json={"text": "x"}, headers={"origin": "http://evil.example.com"})
    assert r.status_code == 403
    assert r.json()["error"]["type"] == "Forbidden"
    ok = httpx.post(f"{loopback_url}/tools/echo", json={"text": "x"}, headers={"origin": "http://localhost:3000"})
    assert ok.status_code == 200


def test_dns_rebinding_scenario_against_devenv_serve(serve):
    """The conformance suite's dns-rebinding-protection scenario, plus a Host-only attack.

    DEVENV_BIND_HOST is what `devenv serve --host` should export (see the Security notes);
    set here explicitly so this test does not depend on the CLI.
    """
    served = serve(DEVENV_BIND_HOST="127.0.0.1")
    url = f"{served.url}/mcp"
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    evil = httpx.post(url, json=init, headers={"host": "evil.example.com", "origin": "http://evil.example.com"})
    assert 400 <= evil.status_code < 500
    host_only = httpx.post(url, json=init, headers={"host": "evil.example.com"})
    assert host_only.status_code == 421  # no Origin (curl, a script): the Host alone gives it away
    good = httpx.post(url, json=init, headers={"host": f"localhost:{served.port}", "origin": "http://localhost"})
    assert good.status_code == 200
    assert good.json()["result"]["serverInfo"]["name"] == "hardy"


# -- binding ----------------------------------------------------------------------------------------


def test_local_processes_bind_to_loopback_by_default():
    from devenv.cli import serve as serve_command
    from devenv.stack import LocalStack
    from devenv.testing import serve_in_thread as helper

    assert inspect.signature(serve_command).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(LocalStack.__init__).parameters["host"].default == "127.0.0.1"
    assert '"127.0.0.1"' in inspect.getsource(helper)


def _non_loopback_address() -> str | None:
    """An address of this machine other than loopback, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_devenv_serve_does_not_listen_on_other_interfaces(serve):
    served = serve()
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    with pytest.raises(OSError):
        socket.create_connection((address, served.port), timeout=2).close()
    with socket.create_connection(("127.0.0.1", served.port), timeout=2):
        pass
