"""MCPClient over HTTP: against devenv's server, the official SDK's servers, and failures."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Mount

from devenv import (
    InvalidArguments,
    MCPClient,
    ProtocolError,
    ServiceNotFound,
    ServiceUnavailable,
    ToolError,
    ToolNotFound,
    create_app,
)
from devenv.transports.http import HTTPTransport
from tests.conftest import serve_in_thread
from tests.unit.demo_service import make_service


@pytest.fixture
def http_client(monkeypatch):
    """``http_client(service, url, **options)``: a remote-mode client pointed at ``url``, closed after the test."""
    made: list[MCPClient] = []

    def make(service: str, url: str, era: str | None = None, **kwargs) -> MCPClient:
        monkeypatch.setenv(f"DEVENV_URL_{service.upper().replace('-', '_')}", url)
        if era is not None:
            kwargs["transport"] = HTTPTransport(era=era, **kwargs.pop("transport_options", {}))
        made.append(MCPClient(mode="http", **kwargs))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="module")
def demo_url():
    with serve_in_thread(create_app(make_service())) as url:
        yield url


@pytest.fixture
def client(http_client, demo_url):
    return http_client("demo", demo_url)


def test_k8s_mode_selects_http(monkeypatch):
    monkeypatch.setenv("K8S_MODE", "true")
    assert MCPClient().mode == "http"
    monkeypatch.setenv("K8S_MODE", "false")
    assert MCPClient().mode == "inprocess"


def test_results_match_what_in_process_returns(client):
    local = MCPClient(services=[make_service()])
    for uri, args in [
        ("demo/echo", {"text": "ab", "times": 2}),
        ("demo/make_box", {"label": "l", "corners": [{"x": 1, "y": 2}, {"x": 3, "y": "4"}]}),
        ("demo/slow_square", {"n": 12}),
    ]:
        assert client.call(uri, args) == local.call(uri, args)


async def test_acall_works_from_a_running_loop(client):
    results = await asyncio.gather(*(client.acall("demo/slow_square", {"n": i}) for i in range(20)))
    await client.aclose()
    assert results == [i * i for i in range(20)]


@pytest.mark.parametrize(
    "uri, args, error",
    [
        ("demo/echo", {"text": 3}, InvalidArguments),
        ("demo/echo", {"text": "a", "nope": 1}, InvalidArguments),
        ("demo/fail", {"message": "boom"}, ToolError),
        ("demo/nope", {}, ToolNotFound),
    ],
)
def test_errors_are_the_same_classes_as_in_process(client, uri, args, error):
    local = MCPClient(services=[make_service()])
    with pytest.raises(error) as remote_exc:
        client.call(uri, args)
    with pytest.raises(error) as local_exc:
        local.call(uri, args)
    assert str(remote_exc.value) == str(local_exc.value)


def test_invalid_arguments_name_the_fields(client):
    with pytest.raises(InvalidArguments) as exc:
        client.call("demo/echo", {"text": 3, "times": 10})
    assert exc.value.fields == ["text", "times"]


def test_tool_error_carries_type_and_message_but_no_server_traceback(client):
    with pytest.raises(ToolError) as exc:
        client.call("demo/crash")
    assert (exc.value.error_type, exc.value.message, exc.value.traceback) == ("RuntimeError", "internal bug", None)


def test_non_json_arguments_are_rejected_before_sending(client):
    with pytest.raises(InvalidArguments):
        client.call("demo/echo", {"text": object()})


def test_list_tools_over_http(client):
    names = [t["name"] for t in client.list_tools("demo")]
    assert names == list(make_service().tools)


def test_unreachable_service_names_service_and_url(http_client, closed_port_url):
    client = http_client("demo", closed_port_url, retries=1)
    with pytest.raises(ServiceUnavailable) as exc:
        client.call("demo/echo", {"text": "a"})
    assert exc.value.service == "demo"
    assert exc.value.url == f"{closed_port_url}/mcp"
    assert "demo" in str(exc.value) and closed_port_url in str(exc.value)


def test_unknown_service_with_port_template_is_service_not_found(monkeypatch):
    monkeypatch.setenv("DEVENV_URL_TEMPLATE", "http://127.0.0.1:{port}")
    with MCPClient(mode="http") as client, pytest.raises(ServiceNotFound):
        client.call("no-such-service/tool", {})


def test_default_url_is_the_kubernetes_service_name():
    transport = HTTPTransport(retries=0)
    with pytest.raises(ServiceUnavailable) as exc:
        transport.call_tool("jd-classifier-unresolvable", "x", {})
    transport.close()
    assert exc.value.url == "http://jd-classifier-unresolvable-service:8080/mcp"


class Flaky:
    """ASGI wrapper that answers 503 to the first ``failures`` tools/call requests."""

    def __init__(self, app, failures: int) -> None:
        self.app, self.failures, self.calls = app, failures, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/mcp":
            body = b""
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            if b"tools/call" in body:
                self.calls += 1
                if self.calls <= self.failures:
                    return await Response("busy", 503)(scope, receive, send)

            async def replay():
                return {"type": "http.request", "body": body, "more_body": False}

            return await self.app(scope, replay, send)
        return await self.app(scope, receive, send)


def test_idempotent_tools_are_retried_with_backoff(http_client):
    flaky = Flaky(create_app(make_service()), failures=2)
    with serve_in_thread(flaky) as url:
        client = http_client("demo", url, retries=3)
        client.transport._backoff = 0.01
        assert client.call("demo/echo", {"text": "x"}) == "x"  # read-only → idempotent
    assert flaky.calls == 3


def test_non_idempotent_tools_are_not_retried(http_client):
    flaky = Flaky(create_app(make_service()), failures=1)
    with serve_in_thread(flaky) as url:
        client = http_client("demo", url, retries=3)
        with pytest.raises(ServiceUnavailable) as exc:
            client.call("demo/make_box", {"label": "a", "corners": []})
    assert flaky.calls == 1
    assert "503" in exc.value.reason


def test_retries_give_up_after_the_limit(http_client):
    flaky = Flaky(create_app(make_service()), failures=10)
    with serve_in_thread(flaky) as url:
        client = http_client("demo", url, retries=2)
        client.transport._backoff = 0.01
        with pytest.raises(ServiceUnavailable):
            client.call("demo/echo", {"text": "x"})
    assert flaky.calls == 3


def test_a_non_mcp_endpoint_is_a_protocol_error(http_client):
    app = Starlette(routes=[Mount("/", app=Response("<html>hello</html>", media_type="text/html"))])
    with serve_in_thread(app) as url:
        with pytest.raises(ProtocolError) as exc:
            http_client("demo", url).call("demo/echo", {"text": "x"})
    assert "not JSON" in str(exc.value)


# -- servers built with the official SDK --------------------------------------------------------


class Profile(BaseModel):
    name: str
    len: int


def sdk_server():
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("sdk-demo")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def profile(name: str) -> Profile:
        """A structured result."""
        return Profile(name=name, len=len(name))

    @server.tool()
    def shout(text: str):
        """Unannotated: the SDK sends text content only."""
        return text.upper()

    @server.tool()
    def boom(reason: str) -> str:
        """Always fails."""
        raise ValueError(reason)

    return server


@pytest.mark.parametrize(
    "options, era, session",
    [
        ({}, "auto", False),
        ({"json_response": True, "stateless_http": True}, "auto", False),
        ({}, "legacy", True),
        ({"json_response": True, "stateless_http": True}, "legacy", False),
    ],
    ids=["sse-modern", "stateless-json-modern", "sse-with-session-legacy", "stateless-json-legacy"],
)
def test_calls_an_official_sdk_server(http_client, options, era, session):
    app = sdk_server().streamable_http_app(**options)
    with serve_in_thread(app) as url:
        client = http_client("sdk-demo", url, era=era)
        assert client.call("sdk-demo/add", {"a": 2, "b": 40}) == 42
        assert client.call("sdk-demo/profile", {"name": "ada"}) == {"name": "ada", "len": 3}
        assert client.call("sdk-demo/shout", {"text": "hi"}) == "HI"  # text-only results come back as text
        server = client.transport._servers["sdk-demo"]
        assert server.era == ("modern" if era == "auto" else "legacy")
        assert server.version == ("2026-07-28" if era == "auto" else "2025-11-25")
        assert (server.session_id is not None) == session
        with pytest.raises(ToolError) as failed:
            client.call("sdk-demo/boom", {"reason": "nope"})
        with pytest.raises(ToolNotFound):
            client.call("sdk-demo/missing", {})
    assert "boom" in str(failed.value)


def test_sse_responses_are_parsed(http_client):
    """The stateful SDK server answers tools/call with text/event-stream: check we really saw one."""
    seen: list[str] = []
    inner = sdk_server().streamable_http_app()

    async def spy(scope, receive, send):
        async def record(message):
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                seen.append(headers.get(b"content-type", b"").decode())
            await send(message)

        await inner(scope, receive, record)

    with serve_in_thread(spy) as url:
        assert http_client("sdk-demo", url, era="legacy").call("sdk-demo/add", {"a": 1, "b": 1}) == 2
    assert any(kind.startswith("text/event-stream") for kind in seen)


def test_a_lost_session_is_renewed(http_client):
    """A stateful server that restarts forgets our session (404): the client starts a new one."""
    from tests.conftest import free_port

    port = free_port()
    client = http_client("sdk-demo", f"http://127.0.0.1:{port}", era="legacy")
    with serve_in_thread(sdk_server().streamable_http_app(), port=port):
        assert client.call("sdk-demo/add", {"a": 1, "b": 2}) == 3
        first = client.transport._servers["sdk-demo"].session_id
    with serve_in_thread(sdk_server().streamable_http_app(), port=port):
        assert client.call("sdk-demo/add", {"a": 2, "b": 2}) == 4
        second = client.transport._servers["sdk-demo"].session_id
    assert first and second and first != second


def test_a_service_outside_the_catalogue_is_service_not_found(monkeypatch):
    monkeypatch.setenv("DEVENV_SERVICES", "demo,jd-classifier")
    with MCPClient(mode="http") as client, pytest.raises(ServiceNotFound) as exc:
        client.call("jd-classifer/find_category", {"query": "tax"})  # sic: a typo
    assert exc.value.known == ["demo", "jd-classifier"]
