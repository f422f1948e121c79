"""/metrics that alert correctly: every series at 0 from start-up, bounded labels, outcome on latency."""

from __future__ import annotations

import asyncio
import threading

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devenv import create_app
from devenv.metrics import OUTCOMES, REJECTION_REASONS, TRANSPORTS, ServiceMetrics
from devenv.testing import serve_in_thread
from tests.unit.demo_service import make_service


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def test_every_label_set_exists_at_zero_before_the_first_call():
    service = make_service()
    text = create_app(service).state.runtime.metrics.render().decode()
    for tool in service.tools:
        for transport in TRANSPORTS:
            for status in OUTCOMES:
                labels = dict(devenv_service="demo", tool=tool, transport=transport, status=status)
                assert value(text, "mcp_requests_total", **labels) == 0, labels
        for status in OUTCOMES:
            count = value(text, "mcp_request_duration_seconds_count", devenv_service="demo", tool=tool, status=status)
            assert count == 0, (tool, status)
        assert (
            value(
                text,
                "mcp_server_operation_duration_seconds_count",
                devenv_service="demo",
                mcp_method_name="tools/call",
                gen_ai_tool_name=tool,
                error_type="tool_error",
            )
            == 0
        )
    for reason in REJECTION_REASONS:
        assert value(text, "devenv_rejected_requests_total", devenv_service="demo", reason=reason) == 0
    for transport in TRANSPORTS:
        assert value(text, "devenv_unknown_tool_requests_total", devenv_service="demo", transport=transport) == 0
    for op in ("get", "set"):
        assert value(text, "devenv_cache_errors_total", devenv_service="demo", op=op) == 0
    for result in ("hit", "miss"):
        assert value(text, "devenv_cache_lookups_total", devenv_service="demo", result=result) == 0
    assert value(text, "devenv_in_flight_requests", devenv_service="demo") == 0
    assert value(text, "process_resident_memory_bytes") > 0
    assert value(text, "process_start_time_seconds") > 0


def test_no_label_is_called_service():
    """A ServiceMonitor adds a `service` target label; ours would become exported_service."""
    text = create_app(make_service()).state.runtime.metrics.render().decode()
    assert all("service" not in dict(labels) for _, labels in samples(text))


def test_unknown_tools_are_counted_without_their_names():
    with serve_in_thread(create_app(make_service())) as url:
        for name in ("no_such_tool", "x" * 200, "drop table"):
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {}}}
            assert "Unknown tool" in httpx.post(f"{url}/mcp", json=body).json()["error"]["message"]
        assert httpx.post(f"{url}/tools/made_up", json={}).status_code == 404
        text = httpx.get(f"{url}/metrics").text
    assert value(text, "devenv_unknown_tool_requests_total", devenv_service="demo", transport="mcp") == 3
    assert value(text, "devenv_unknown_tool_requests_total", devenv_service="demo", transport="rest") == 1
    for name in ("no_such_tool", "x" * 200, "drop table", "made_up"):
        assert f'"{name}"' not in text


def test_latency_is_labelled_by_outcome_in_both_histograms():
    with serve_in_thread(create_app(make_service())) as url:
        httpx.post(f"{url}/tools/echo", json={"text": "a"})
        httpx.post(f"{url}/tools/fail", json={"message": "m"})
        httpx.post(f"{url}/tools/echo", json={"text": "a", "times": 9})
        text = httpx.get(f"{url}/metrics").text

    def ours(tool: str, status: str) -> float | None:
        return value(text, "mcp_request_duration_seconds_count", devenv_service="demo", tool=tool, status=status)

    def convention(tool: str, error_type: str) -> float | None:
        return value(
            text,
            "mcp_server_operation_duration_seconds_count",
            devenv_service="demo",
            mcp_method_name="tools/call",
            gen_ai_tool_name=tool,
            error_type=error_type,
        )

    assert (ours("echo", "ok"), ours("fail", "tool_error"), ours("echo", "invalid_arguments")) == (1, 1, 1)
    # ok: error_type="" in the text, which Prometheus stores as no error_type label, as the convention says
    assert convention("echo", "") == 1
    assert convention("fail", "tool_error") == 1 and convention("echo", "tool_error") == 1


def test_cache_lookups_count_hits_and_misses():
    service = make_service()
    with serve_in_thread(create_app(service)) as url:
        for n in (3, 3, 3, 4):
            httpx.post(f"{url}/tools/slow_square", json={"n": n})
        text = httpx.get(f"{url}/metrics").text
    assert value(text, "devenv_cache_lookups_total", devenv_service="demo", result="hit") == 2
    assert value(text, "devenv_cache_lookups_total", devenv_service="demo", result="miss") == 2


def test_in_flight_is_read_at_scrape_time():
    service = make_service()
    started, release = threading.Event(), threading.Event()

    @service.tool
    async def hold() -> int:
        """Wait until released."""
        started.set()
        await asyncio.to_thread(release.wait, 10)
        return 1

    with serve_in_thread(create_app(service)) as url:
        worker = threading.Thread(target=lambda: httpx.post(f"{url}/tools/hold", json={}, timeout=15))
        worker.start()
        assert started.wait(10)
        during = httpx.get(f"{url}/metrics").text
        release.set()
        worker.join(15)
        after = httpx.get(f"{url}/metrics").text
    assert value(during, "devenv_in_flight_requests", devenv_service="demo") == 1
    assert value(after, "devenv_in_flight_requests", devenv_service="demo") == 0


def test_a_tool_unknown_to_the_registry_still_gets_series_on_first_use():
    metrics = ServiceMetrics("demo", tools=["known"])
    metrics.observe("added_later", "mcp", "ok", 0.01)
    text = metrics.render().decode()
    labels = dict(devenv_service="demo", tool="added_later", transport="mcp", status="ok")
    assert value(text, "mcp_requests_total", **labels) == 1
