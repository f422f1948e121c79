"""Traces per the MCP semantic conventions: in-process and over HTTP, across services, off by default."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from devenv import (
    Context,
    MCPClient,
    MemoryCache,
    Registry,
    Service,
    ToolError,
    create_app,
    default_registry,
    tracing,
)
from devenv.testing import serve_in_thread
from tests.unit.demo_service import make_service


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.configure(exporter)
    yield exporter
    tracing.disable()


def by_kind(exporter: InMemorySpanExporter, kind: SpanKind) -> list:
    return [s for s in exporter.get_finished_spans() if s.kind == kind]


def test_an_in_process_call_makes_a_client_and_a_server_span(spans):
    service = make_service()
    client = MCPClient(services=[service], mode="inprocess")
    assert client.call("demo/echo", {"text": "hi"}) == "hi"

    (client_span,) = by_kind(spans, SpanKind.CLIENT)
    (server_span,) = by_kind(spans, SpanKind.SERVER)
    for span in (client_span, server_span):
        assert span.name == "tools/call echo"
        assert span.attributes["mcp.method.name"] == "tools/call"
        assert span.attributes["gen_ai.tool.name"] == "echo"
        assert span.attributes["gen_ai.operation.name"] == "execute_tool"
        assert "error.type" not in span.attributes
        assert "gen_ai.tool.call.arguments" not in span.attributes  # not recorded unless opted in
    assert server_span.parent.span_id == client_span.context.span_id
    assert server_span.context.trace_id == client_span.context.trace_id
    assert server_span.resource.attributes["service.name"] == "demo"
    assert server_span.attributes["devenv.transport"] == "inprocess"


def test_a_tool_error_marks_both_spans(spans):
    client = MCPClient(services=[make_service()], mode="inprocess")
    with pytest.raises(ToolError):
        client.call("demo/fail", {"message": "nope"})
    for span in spans.get_finished_spans():
        assert span.attributes["error.type"] == "tool_error"
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "ValueError"


def test_over_http_the_server_span_is_a_child_of_the_client_span_through_meta(spans, monkeypatch):
    monkeypatch.delenv("DEVENV_SERVICE", raising=False)  # `devenv serve` run in-process by other tests sets it
    with serve_in_thread(create_app(make_service())) as url:
        monkeypatch.setenv("DEVENV_URL_DEMO", url)
        with MCPClient(mode="http") as client:
            assert client.call("demo/echo", {"text": "x", "times": 2}) == "xx"
    (client_span,) = by_kind(spans, SpanKind.CLIENT)
    (server_span,) = by_kind(spans, SpanKind.SERVER)
    assert server_span.parent.span_id == client_span.context.span_id
    assert server_span.parent.is_remote  # it came over the wire, not from this thread
    assert server_span.resource.attributes["service.name"] == "demo"
    assert client_span.resource.attributes["service.name"] == "devenv-client"
    assert server_span.attributes["jsonrpc.request.id"]
    assert server_span.attributes["mcp.protocol.version"]
    assert server_span.attributes["network.transport"] == "tcp"
    assert server_span.attributes["devenv.transport"] == "mcp"


TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


def _call(url: str, meta: dict | None = None, headers: dict | None = None) -> dict:
    params: dict = {"name": "echo", "arguments": {"text": "a"}}
    if meta is not None:
        params["_meta"] = meta
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    return httpx.post(f"{url}/mcp", json=body, headers=headers or {}).json()


def test_traceparent_is_read_from_meta_then_from_the_http_header(spans):
    theirs = f"00-{TRACE_ID}-{PARENT}-01"
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    with serve_in_thread(create_app(make_service())) as url:
        _call(url, meta={"traceparent": theirs}, headers={"traceparent": other})  # _meta wins
        _call(url, headers={"traceparent": theirs})  # a legacy peer: the header only
        _call(url, meta={"traceparent": "garbage"})  # unreadable: a new trace, and the call still works
        r = httpx.post(f"{url}/tools/echo", json={"text": "b"}, headers={"traceparent": theirs})
    assert r.status_code == 200
    first, second, third, rest = by_kind(spans, SpanKind.SERVER)
    for span in (first, second, rest):
        assert format(span.context.trace_id, "032x") == TRACE_ID
        assert format(span.parent.span_id, "016x") == PARENT
    assert third.parent is None and format(third.context.trace_id, "032x") != TRACE_ID
    assert rest.attributes["devenv.transport"] == "rest" and "jsonrpc.request.id" not in rest.attributes
    assert first.attributes["jsonrpc.request.id"] == "7"


def test_unknown_tools_and_refusals_make_no_span(spans):
    with serve_in_thread(create_app(make_service())) as url:
        httpx.post(
            f"{url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "nope", "arguments": {}}},
        )
        httpx.post(f"{url}/tools/nope", json={})
    assert spans.get_finished_spans() == ()


def test_arguments_and_results_are_recorded_only_when_opted_in_and_never_secrets(monkeypatch):
    monkeypatch.setenv("DEVENV_AUTH_TOKEN", "tok-" + "7" * 30)  # a secret the process knows
    exporter = InMemorySpanExporter()
    tracing.configure(exporter, record_payloads=True)
    try:
        client = MCPClient(services=[make_service()], mode="inprocess")
        client.call("demo/echo", {"text": "tok-" + "7" * 30 + " and more"})
    finally:
        tracing.disable()
    (server_span,) = by_kind(exporter, SpanKind.SERVER)
    recorded = server_span.attributes["gen_ai.tool.call.arguments"]
    assert "and more" in recorded and "7" * 30 not in recorded


def test_otel_service_name_overrides_the_devenv_name(spans, monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing")
    MCPClient(services=[make_service()], mode="inprocess").call("demo/echo", {"text": "a"})
    assert {s.resource.attributes["service.name"] for s in spans.get_finished_spans()} == {"billing"}


# -- agent -> service -> service ------------------------------------------------------------


def _fresh_caches() -> None:
    for service in default_registry().all():
        service.cache = MemoryCache()


def _inbox(tmp_path, monkeypatch):
    for name in ("vault", "unsorted"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("VAULT_ROOT", str(tmp_path / "vault"))
    monkeypatch.setenv("UNSORTED_ROOT", str(tmp_path / "unsorted"))
    (tmp_path / "unsorted" / "tax.txt").write_text("HMRC tax return for the tax year: VAT deduction.", "utf-8")


def _assert_one_trace_with_a_child_per_downstream_call(exporter: InMemorySpanExporter) -> None:
    finished = exporter.get_finished_spans()
    assert len({s.context.trace_id for s in finished}) == 1, [s.name for s in finished]
    (agent,) = [s for s in finished if s.kind == SpanKind.SERVER and s.name == "tools/call process_inbox"]
    assert agent.resource.attributes["service.name"] == "inbox-agent"
    downstream = [
        s
        for s in finished
        if s.kind == SpanKind.CLIENT and s.parent is not None and s.parent.span_id == agent.context.span_id
    ]
    called = {s.attributes["devenv.service"] for s in downstream}
    assert {"content-classifier", "jd-classifier", "file-system", "notifications"} <= called
    for client_span in downstream:
        assert client_span.resource.attributes["service.name"] == "inbox-agent"
        (server_span,) = [
            s for s in finished if s.parent is not None and s.parent.span_id == client_span.context.span_id
        ]
        assert server_span.kind == SpanKind.SERVER
        assert server_span.resource.attributes["service.name"] == client_span.attributes["devenv.service"]


def test_process_inbox_in_process_is_one_trace(spans, tmp_path, monkeypatch):
    _inbox(tmp_path, monkeypatch)
    _fresh_caches()
    import services.inbox_agent.service as agent

    monkeypatch.setattr(agent, "_client", None)  # its client is made now, with tracing on
    report = MCPClient(mode="inprocess").call("inbox-agent/process_inbox")
    assert report["moved"]
    _assert_one_trace_with_a_child_per_downstream_call(spans)


def test_process_inbox_over_http_is_one_trace(spans, tmp_path, monkeypatch):
    _inbox(tmp_path, monkeypatch)
    _fresh_caches()
    import services.inbox_agent.service as agent

    registry = default_registry()
    names = ("inbox-agent", "jd-classifier", "content-classifier", "file-system", "notifications")
    servers = [serve_in_thread(create_app(registry.get(name))) for name in names]
    urls = [s.__enter__() for s in servers]
    try:
        for name, url in zip(names, urls, strict=True):
            monkeypatch.setenv("DEVENV_URL_" + name.upper().replace("-", "_"), url)
        monkeypatch.setenv("K8S_MODE", "true")
        monkeypatch.setattr(agent, "_client", None)
        with MCPClient(mode="http") as client:
            report = client.call("inbox-agent/process_inbox")
        agent.client().close()
    finally:
        for server in servers:
            server.__exit__(None, None, None)
    assert report["moved"]
    _assert_one_trace_with_a_child_per_downstream_call(spans)
    # every hop between services went over HTTP with the context in _meta
    remote = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER and s.parent is not None]
    assert remote and all(s.parent.is_remote for s in remote)


# -- off, and bad input ---------------------------------------------------------------------


def test_off_by_default_nothing_is_imported_and_the_hooks_hand_back_what_they_got():
    code = textwrap.dedent(
        """
        import sys
        from devenv import MCPClient, create_app
        from devenv.server import _Runtime
        from tests.unit.demo_service import make_service
        app = create_app(make_service())
        runtime = app.state.runtime
        assert runtime.call.__func__ is _Runtime.call, runtime.call
        client = MCPClient(services=[make_service()], mode="inprocess")
        assert type(client.transport).__name__ == "InProcessTransport"
        assert client.call("demo/echo", {"text": "a"}) == "a"
        from devenv import tracing
        assert tracing._otel is None and not tracing._providers
        # FastAPI imports the OpenTelemetry API itself when it is installed; the SDK is devenv's to load.
        loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter")))
        assert not loaded, loaded
        print("untraced")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DEVENV_TRACING"))}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "untraced"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}, "is not an http(s) URL"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1"}, "is not a URL"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:port"}, "is not a URL"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT='ftp://x'"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
    ],
)
def test_a_malformed_endpoint_is_one_warning_and_tracing_stays_off(env, says, caplog):
    caplog.set_level(logging.WARNING, "devenv.tracing")
    try:
        tracing._decide(env)
        assert not tracing.enabled()
        app = create_app(make_service())
        with serve_in_thread(app) as url:
            for _ in range(3):
                assert httpx.post(f"{url}/tools/echo", json={"text": "a"}).json() == "a"
    finally:
        tracing.disable()
    warnings = [r.getMessage() for r in caplog.records if r.name == "devenv.tracing"]
    assert len(warnings) == 1 and says in warnings[0], warnings


def test_off_switches_win(monkeypatch):
    for env in (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"},
        {},
    ):
        try:
            tracing._decide(env)
            assert not tracing.enabled(), env
        finally:
            tracing.disable()
    try:
        tracing._decide({"DEVENV_TRACING": "true"})  # the explicit opt-in, to the default collector
        assert tracing.enabled()
    finally:
        tracing.disable()


def test_the_registry_is_untouched(spans):
    """Tracing wraps the client's transport, never the services: Registry lookups stay the same."""
    registry = Registry(None, [make_service()])
    client = MCPClient(registry=registry, mode="inprocess")
    assert client.transport.registry is registry  # attribute access passes through the wrapper
    assert "traced(" in repr(client.transport)


def _context_service() -> Service:
    service = Service("streamer")

    @service.tool
    async def count(ctx: Context, upto: int) -> int:
        for n in range(1, upto + 1):
            ctx.report_progress(n, upto)
        return upto

    return service


@pytest.mark.parametrize("streamed", [True, False], ids=["progress-over-sse", "plain-json"])
def test_a_tool_that_takes_a_context_joins_the_callers_trace_from_meta(spans, streamed):
    """The Context path (SSE when a progressToken asks for it) reads _meta.traceparent as the plain path does."""
    theirs = f"00-{TRACE_ID}-{PARENT}-01"
    meta = {"traceparent": theirs, **({"progressToken": "p1"} if streamed else {})}
    body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "count", "arguments": {"upto": 2}}}
    body["params"]["_meta"] = meta
    with serve_in_thread(create_app(_context_service())) as url:
        r = httpx.post(f"{url}/mcp", json=body, headers={"accept": "application/json, text/event-stream"})
    assert r.status_code == 200
    assert ("text/event-stream" in r.headers["content-type"]) is streamed  # the path under test was taken
    assert ('"progress"' in r.text) is streamed and '"result"' in r.text
    (server_span,) = by_kind(spans, SpanKind.SERVER)
    assert server_span.name == "tools/call count"
    assert format(server_span.context.trace_id, "032x") == TRACE_ID
    assert format(server_span.parent.span_id, "016x") == PARENT and server_span.parent.is_remote
    assert server_span.attributes["jsonrpc.request.id"] == "9"
