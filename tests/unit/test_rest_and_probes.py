"""POST /tools/{name}, /health, /ready, /metrics and the per-call log line, on a real server."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest

from devenv import MemoryCache, RedisCache, Service, create_app
from devenv.config import Settings
from devenv.logs import JsonFormatter, configure_logging
from tests.conftest import free_port, serve_in_thread
from tests.unit.demo_service import make_service


@pytest.fixture(scope="module")
def base_url():
    with serve_in_thread(create_app(make_service(), Settings(max_body_bytes=64 * 1024))) as url:
        yield url


def test_rest_call_returns_the_plain_result(base_url):
    r = httpx.post(f"{base_url}/tools/echo", json={"text": "hi", "times": 3})
    assert r.status_code == 200
    assert r.json() == "hihihi"
    box = httpx.post(f"{base_url}/tools/make_box", json={"label": "b", "corners": [{"x": 0, "y": 1}]}).json()
    assert box == {"label": "b", "corners": [{"x": 0, "y": 1}]}


def test_rest_tool_without_required_arguments_accepts_an_empty_body(base_url):
    r = httpx.post(f"{base_url}/tools/crash")
    assert r.status_code == 500
    assert r.json()["error"]["error_type"] == "RuntimeError"


def test_rest_invalid_arguments_are_422_naming_fields(base_url):
    r = httpx.post(f"{base_url}/tools/echo", json={"text": ["x"], "times": 0, "bogus": True})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["type"] == "InvalidArguments"
    assert sorted(e["field"] for e in error["errors"]) == ["bogus", "text", "times"]


def test_rest_malformed_json_is_422(base_url):
    r = httpx.post(f"{base_url}/tools/echo", content=b'{"text": ', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["type"] == "InvalidArguments"


def test_rest_unknown_tool_is_404_listing_the_tools(base_url):
    r = httpx.post(f"{base_url}/tools/nope", json={})
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "ToolNotFound"
    assert "echo" in r.json()["error"]["known"]


def test_rest_tool_rejecting_its_input_is_400(base_url):
    r = httpx.post(f"{base_url}/tools/fail", json={"message": "bad path"})
    assert r.status_code == 400
    assert r.json()["error"]["detail"] == "bad path"


def test_rest_oversized_body_is_413(base_url):
    r = httpx.post(f"{base_url}/tools/echo", json={"text": "x" * 70_000})
    assert r.status_code == 413
    assert r.json()["error"]["limit"] == 65536


def test_openapi_has_one_operation_per_tool_with_its_schemas(base_url):
    spec = httpx.get(f"{base_url}/openapi.json").json()
    tool_paths = sorted(p for p in spec["paths"] if p.startswith("/tools/"))
    assert tool_paths == [f"/tools/{n}" for n in sorted(make_service().tools)]
    echo = spec["paths"]["/tools/echo"]["post"]
    assert echo["operationId"] == "echo"
    body_ref = echo["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = spec["components"]["schemas"][body_ref.rsplit("/", 1)[-1]]
    assert body["properties"]["text"]["type"] == "string"
    assert echo["responses"]["200"]["content"]["application/json"]["schema"] == {"type": "string"}
    box = spec["paths"]["/tools/make_box"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert box["properties"]["corners"]["items"]["properties"]["x"] == {"title": "X", "type": "integer"}


def test_health_is_always_ok(base_url):
    assert httpx.get(f"{base_url}/health").json() == {"status": "ok", "service": "demo", "version": "0.1.0"}


def test_ready_reflects_the_cache_dependency(redis_url):
    service = Service("needs-cache", requires=("cache",))
    with serve_in_thread(create_app(service)) as url:
        service.cache = MemoryCache()
        assert httpx.get(f"{url}/ready").json() == {"status": "ready", "checks": {"cache": "ok"}}
        service.cache = RedisCache(redis_url)
        assert httpx.get(f"{url}/ready").status_code == 200
        service.cache = RedisCache(f"redis://:hunter2secret@127.0.0.1:{free_port()}/0", timeout=0.2)
        r = httpx.get(f"{url}/ready")
    assert r.status_code == 503
    assert r.json()["status"] == "not ready"
    assert "redis" in r.json()["checks"]["cache"]
    assert "hunter2secret" not in r.text


def test_custom_readiness_checks_gate_ready():
    service = Service("gated")
    state = {"up": False}

    @service.readiness_check
    def llm() -> bool:
        return state["up"]

    with serve_in_thread(create_app(service)) as url:
        first = httpx.get(f"{url}/ready")
        state["up"] = True
        second = httpx.get(f"{url}/ready")
    assert (first.status_code, first.json()["checks"]["llm"]) == (503, "check returned False")
    assert (second.status_code, second.json()["checks"]["llm"]) == (200, "ok")


def test_metrics_count_calls_by_tool_and_outcome():
    with serve_in_thread(create_app(make_service())) as url:
        httpx.post(f"{url}/tools/echo", json={"text": "a"})
        httpx.post(f"{url}/tools/echo", json={"text": 1})
        httpx.post(
            f"{url}/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "fail", "arguments": {"message": "x"}},
            },
        )
        text = httpx.get(f"{url}/metrics").text
    assert 'mcp_requests_total{devenv_service="demo",status="ok",tool="echo",transport="rest"} 1.0' in text
    invalid = 'mcp_requests_total{devenv_service="demo",status="invalid_arguments",tool="echo",transport="rest"}'
    assert f"{invalid} 1.0" in text
    assert 'mcp_requests_total{devenv_service="demo",status="tool_error",tool="fail",transport="mcp"} 1.0' in text
    assert 'mcp_request_duration_seconds_count{devenv_service="demo",status="ok",tool="echo"} 1.0' in text


def test_one_json_log_line_per_call_with_secrets_redacted(caplog, monkeypatch):
    monkeypatch.setenv("PARTNER_API_KEY", "sk-live-0123456789")
    caplog.set_level(logging.INFO, logger="devenv.calls")
    with serve_in_thread(create_app(make_service())) as url:
        httpx.post(f"{url}/tools/fail", json={"message": "rejected key sk-live-0123456789"})
    records = [r for r in caplog.records if r.name == "devenv.calls"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    entry = json.loads(line)
    assert (entry["service"], entry["tool"], entry["transport"], entry["status"]) == (
        "demo",
        "fail",
        "rest",
        "tool_error",
    )
    assert entry["duration_ms"] >= 0
    assert "sk-live-0123456789" not in line
    assert "***" in entry["error"]


def test_call_log_line_as_deployed_goes_to_the_json_handler_redacted(monkeypatch):
    """Under configure_logging (as `devenv serve` runs) the line is written without a LogRecord."""
    monkeypatch.setenv("PARTNER_API_KEY", "sk-live-0123456789")
    loggers = [logging.getLogger(name) for name in ("devenv", "uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    stream = io.StringIO()
    try:
        configure_logging("INFO")
        (handler,) = logging.getLogger("devenv").handlers
        monkeypatch.setattr(handler, "stream", stream)
        monkeypatch.setattr(logging.LogRecord, "__init__", _no_records_for("devenv.calls"))
        with serve_in_thread(create_app(make_service())) as url:
            httpx.post(f"{url}/tools/fail", json={"message": "rejected key sk-live-0123456789"})
            httpx.post(f"{url}/tools/echo", json={"text": "hi"})
    finally:
        for lg, handlers, level, propagate, disabled in saved:
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate
            lg.disabled = disabled
    calls = [entry for entry in map(json.loads, stream.getvalue().splitlines()) if entry["logger"] == "devenv.calls"]
    assert [(c["tool"], c["transport"], c["status"], c["msg"], c["level"]) for c in calls] == [
        ("fail", "rest", "tool_error", "tool call", "info"),
        ("echo", "rest", "ok", "tool call", "info"),
    ]
    assert "sk-live-0123456789" not in stream.getvalue()
    assert "***" in calls[0]["error"] and "error" not in calls[1]


def _no_records_for(name: str):
    """LogRecord.__init__ that refuses records of logger ``name``: proves the line skipped them."""
    original = logging.LogRecord.__init__

    def init(self, logger_name, *args, **kwargs):
        assert logger_name != name, f"a LogRecord was made for {name}"
        original(self, logger_name, *args, **kwargs)

    return init
