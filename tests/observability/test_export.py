"""OTLP export from the environment: to a real OTLP/HTTP receiver on loopback, and to none at all."""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from devenv import create_app, tracing
from devenv.testing import free_port, serve_in_thread
from tests.unit.demo_service import make_service


class _Receiver(ThreadingHTTPServer):
    """What a collector's OTLP/HTTP receiver does with traces: decode the protobuf request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, ExportTraceServiceRequest]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
        body = self.rfile.read(int(self.headers["content-length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.requests.append((self.path, request))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    tracing.disable()
    assert tracing.enabled()  # decided now, from the variables just set


def test_spans_reach_an_otlp_http_receiver_with_the_service_name(receiver, monkeypatch):
    endpoint = f"http://127.0.0.1:{receiver.server_port}"
    _from_env(monkeypatch, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    try:
        with serve_in_thread(create_app(make_service())) as url:
            assert httpx.post(f"{url}/tools/echo", json={"text": "a"}).json() == "a"
    finally:
        tracing.disable()  # flushes the batch
    assert receiver.requests, "no export reached the receiver"
    path, request = receiver.requests[0]
    assert path == "/v1/traces"
    (resource_spans,) = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "demo"
    (span,) = [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert span.name == "tools/call echo"
    attributes = {a.key: a.value.string_value for a in span.attributes}
    assert attributes["gen_ai.tool.name"] == "echo"


def test_an_unreachable_collector_never_fails_a_call_and_warns_once(monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    _from_env(
        monkeypatch,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
        OTEL_BSP_SCHEDULE_DELAY="50",  # export every 50 ms, so several batches fail within the test
    )
    try:
        with serve_in_thread(create_app(make_service())) as url:
            for _ in range(5):
                assert httpx.post(f"{url}/tools/echo", json={"text": "a"}).json() == "a"
                time.sleep(0.3)
            deadline = time.monotonic() + 10
            while not any(r.name == "devenv.tracing" for r in caplog.records) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert httpx.post(f"{url}/tools/echo", json={"text": "b"}).json() == "b"
    finally:
        tracing.disable()
    ours = [r.getMessage() for r in caplog.records if r.name == "devenv.tracing"]
    assert len(ours) == 1, ours
    assert "not exported to the OTLP collector" in ours[0] and "tool calls go on" in ours[0]
    others = [r for r in caplog.records if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING]
    assert not others, [r.getMessage() for r in others]
