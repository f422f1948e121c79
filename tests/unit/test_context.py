"""Context: progress and log messages a tool sends, only when its caller asked for them."""

from __future__ import annotations

import threading

import pytest

from devenv import Service
from devenv.context import Context


def collect():
    sent: list[dict] = []
    return sent, sent.append


def test_progress_reaches_the_sink_with_the_token():
    sent, sink = collect()
    ctx = Context(progress_token="tok", sink=sink)
    ctx.report_progress(1, 4, "one")
    ctx.report_progress(2.5)
    assert sent == [
        {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": "tok", "progress": 1, "total": 4, "message": "one"},
        },
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "tok", "progress": 2.5}},
    ]


def test_without_a_token_progress_goes_nowhere_but_is_still_checked():
    sent, sink = collect()
    ctx = Context(log_level="debug", sink=sink)
    ctx.report_progress(5)
    assert sent == []
    with pytest.raises(ValueError, match="progress must increase with each report: 5 after 5"):
        ctx.report_progress(5)
    with pytest.raises(TypeError, match="progress must be a number"):
        ctx.report_progress("half")  # type: ignore[arg-type]


def test_logs_at_or_above_the_requested_level_only():
    sent, sink = collect()
    ctx = Context(log_level="warning", sink=sink)
    ctx.info("quiet")
    ctx.warning("loud", logger="svc")
    ctx.log("critical", {"disk": "full"})
    assert [m["params"] for m in sent] == [
        {"level": "warning", "data": "loud", "logger": "svc"},
        {"level": "critical", "data": {"disk": "full"}},
    ]
    assert all(m["method"] == "notifications/message" for m in sent)


def test_a_misspelt_level_fails_even_when_nobody_listens():
    with pytest.raises(ValueError, match="unknown log level 'warn'"):
        Context().log("warn", "x")
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        Context(log_level="loud")


def test_a_bad_progress_token_is_refused():
    with pytest.raises(ValueError, match="a progressToken is a string or an integer"):
        Context(progress_token=1.5)  # type: ignore[arg-type]


def test_streams_says_whether_anyone_listens():
    assert not Context().streams
    assert not Context(progress_token="t").streams  # no sink
    assert Context(progress_token="t", sink=print).streams


def test_a_tool_gets_the_context_it_declares_and_a_silent_one_otherwise():
    svc = Service("ctx-demo")
    seen = []

    @svc.tool
    def work(n: int, ctx: Context) -> int:
        seen.append(threading.current_thread().name)
        for i in range(n):
            ctx.report_progress(i + 1, n)
        return n

    tool = svc.tools["work"]
    assert "ctx" not in tool.input_schema["properties"]  # not an argument the caller sends
    sent, sink = collect()
    assert tool.run({"n": 2}, context=Context(progress_token=7, sink=sink)) == 2
    assert [m["params"]["progress"] for m in sent] == [1, 2]
    assert tool.run({"n": 2}) == 2  # no context given: a silent one, the tool runs the same
    assert "logging" in svc.capabilities()


async def test_an_async_tool_reports_through_arun():
    svc = Service("ctx-demo")

    @svc.tool
    async def work(ctx: Context | None = None) -> str:
        ctx.info("hello")  # type: ignore[union-attr]
        return "done"

    sent, sink = collect()
    assert await svc.tools["work"].arun({}, context=Context(log_level="info", sink=sink)) == "done"
    assert sent[0]["params"] == {"level": "info", "data": "hello"}
