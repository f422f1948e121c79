"""devenv.logs (JSON lines with secrets masked) and devenv.metrics (Prometheus text per service)."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devenv.logs import JsonFormatter, JsonHandler, configure_logging, sole_json_handler
from devenv.metrics import ServiceMetrics

# -- logs -----------------------------------------------------------------------------------


class Captured:
    """A logger of its own whose records go through JsonFormatter into a string.

    The formatter reads secrets from the environment when it is made, as at a service's
    start-up, so it is made on first use: after the test has set its variables.
    """

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self._logger: logging.Logger | None = None

    @property
    def logger(self) -> logging.Logger:
        if self._logger is None:
            self._logger = logging.getLogger(f"devenv.test.{uuid.uuid4().hex}")
            handler = logging.StreamHandler(self.stream)
            handler.setFormatter(JsonFormatter())
            self._logger.handlers[:] = [handler]
            self._logger.setLevel(logging.DEBUG)
            self._logger.propagate = False
        return self._logger

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured()
    yield capture
    if capture._logger is not None:
        capture._logger.handlers.clear()


def test_one_json_object_per_line(captured):
    captured.logger.info("first %s", "call")
    captured.logger.warning("second\nwith a newline")
    captured.logger.debug("third")
    lines = captured.lines()
    assert len(captured.text.splitlines()) == 3
    assert [(e["level"], e["msg"]) for e in lines] == [
        ("info", "first call"),
        ("warning", "second\nwith a newline"),
        ("debug", "third"),
    ]
    for entry in lines:
        assert entry["logger"] == captured.logger.name
        assert entry["ts"].endswith("Z") and "T" in entry["ts"] and len(entry["ts"]) == len("2024-01-01T00:00:00.000Z")


def test_extra_fields_are_included_and_logging_internals_are_not(captured):
    captured.logger.info("tool call", extra={"service": "demo", "tool": "echo", "duration_ms": 1.5, "ok": True})
    (entry,) = captured.lines()
    assert {k: entry[k] for k in ("service", "tool", "duration_ms", "ok")} == {
        "service": "demo",
        "tool": "echo",
        "duration_ms": 1.5,
        "ok": True,
    }
    for internal in ("args", "levelno", "pathname", "lineno", "thread", "process", "msecs", "exc_info"):
        assert internal not in entry


def test_extra_values_json_cannot_carry_become_strings(captured):
    class Odd:
        def __str__(self) -> str:
            return "odd-object"

    captured.logger.info("x", extra={"thing": Odd()})
    assert captured.lines()[0]["thing"] == "odd-object"


def test_exceptions_are_included(captured):
    try:
        raise ValueError("kaput")
    except ValueError:
        captured.logger.exception("failed")
    (entry,) = captured.lines()
    assert entry["level"] == "error"
    assert "Traceback" in entry["exc"] and "ValueError: kaput" in entry["exc"]


def test_secret_env_values_are_masked(monkeypatch, captured):
    monkeypatch.setenv("DEVENV_TEST_API_TOKEN", "tok-9f8e7d6c5b4a")
    captured.logger.info("calling with tok-9f8e7d6c5b4a", extra={"header": "Bearer tok-9f8e7d6c5b4a"})
    assert "tok-9f8e7d6c5b4a" not in captured.text
    (entry,) = captured.lines()
    assert entry["msg"] == "calling with ***"
    assert entry["header"] == "Bearer ***"


def test_url_passwords_are_masked(captured):
    captured.logger.warning(
        "cache down at %s", "redis://:s3cretpass@cache:6379/0", extra={"dsn": "postgres://app:pa55w0rd@db/app"}
    )
    assert "s3cretpass" not in captured.text and "pa55w0rd" not in captured.text
    (entry,) = captured.lines()
    assert entry["msg"] == "cache down at redis://:***@cache:6379/0"
    assert entry["dsn"] == "postgres://app:***@db/app"


def test_secrets_in_exceptions_are_masked(monkeypatch, captured):
    monkeypatch.setenv("DEVENV_TEST_DB_PASSWORD", "hunter2-hunter2")
    try:
        raise ConnectionError("login failed for hunter2-hunter2")
    except ConnectionError:
        captured.logger.exception("db")
    assert "hunter2-hunter2" not in captured.text
    assert "login failed for ***" in captured.lines()[0]["exc"]


@pytest.mark.parametrize("secret", ['pa"ss-word-1', "back\\slash-42", "pässwort-123", "tab\there-99"])
def test_secrets_with_json_escaped_characters_are_masked(monkeypatch, captured, secret):
    monkeypatch.setenv("DEVENV_TEST_SECRET", secret)
    captured.logger.info("using %s", secret)
    assert secret not in captured.lines()[0]["msg"]


def test_configure_logging_installs_json_lines_on_devenv_loggers(monkeypatch):
    loggers = [logging.getLogger(name) for name in ("devenv", "uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    try:
        configure_logging("WARNING")
        devenv_logger = logging.getLogger("devenv")
        assert devenv_logger.level == logging.WARNING
        assert devenv_logger.propagate is False
        (handler,) = devenv_logger.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert logging.getLogger("uvicorn").handlers == [handler]
        assert logging.getLogger("uvicorn.access").disabled is True
        stream = io.StringIO()
        monkeypatch.setattr(handler, "stream", stream)
        logging.getLogger("devenv.tools").info("dropped: below WARNING")
        logging.getLogger("devenv.tools").warning("kept")
        assert [json.loads(line)["msg"] for line in stream.getvalue().splitlines()] == ["kept"]
    finally:
        for lg, handlers, level, propagate, disabled in saved:
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate
            lg.disabled = disabled


@pytest.mark.parametrize(
    "varying",
    [
        {"duration_ms": 0.125},
        {"duration_ms": 3, "error": 'bad "quote" \\ and ünïcode\nnewline'},
        {"duration_ms": float("nan"), "error": None, "attempts": [1, 2]},
    ],
)
def test_call_log_fast_line_is_the_formatters_line(varying):
    """write_fields skips the LogRecord; what it writes must be what JsonFormatter writes."""
    fixed = (("service", "demo"), ("tool", "echo ✓"), ("transport", "rest"), ("status", "ok"))
    stream = io.StringIO()
    JsonHandler(stream).write_fields("devenv.calls", "info", "tool call", fixed, varying)
    record = logging.makeLogRecord({"name": "devenv.calls", "levelno": logging.INFO, "levelname": "INFO"})
    record.msg = "tool call"
    record.__dict__.update(fixed, **varying)
    expected = JsonFormatter().format(record)
    fast = stream.getvalue()
    assert fast.endswith("\n") and fast.count("\n") == 1
    # Same text after the timestamp (same keys, order, spacing and escapes); a timestamp of the same form.
    assert fast.rstrip("\n").split(", ", 1)[1] == expected.split(", ", 1)[1]
    assert re.fullmatch(r'\{"ts": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"', fast.split(", ", 1)[0])


def test_sole_json_handler_only_when_nothing_else_would_see_the_record():
    parent = logging.getLogger(f"devenv.test.{uuid.uuid4().hex}")
    child = parent.getChild("calls")
    json_handler = JsonHandler(io.StringIO())
    parent.handlers[:] = [json_handler]
    parent.propagate = False
    try:
        assert sole_json_handler(child, logging.INFO) is json_handler
        json_handler.setLevel(logging.WARNING)
        assert sole_json_handler(child, logging.INFO) is None  # no handler at all: nothing to write
        json_handler.setLevel(logging.NOTSET)
        child.addFilter(lambda record: True)
        assert sole_json_handler(child, logging.INFO) is None  # a filter sees records
        child.filters.clear()
        json_handler.addFilter(lambda record: True)
        assert sole_json_handler(child, logging.INFO) is None
        json_handler.filters.clear()
        plain = logging.StreamHandler(io.StringIO())
        child.addHandler(plain)  # as pytest's caplog does: it must get real records
        assert sole_json_handler(child, logging.INFO) is None
        child.removeHandler(plain)
        parent.handlers[:] = [plain]
        assert sole_json_handler(child, logging.INFO) is None  # another formatter: the usual path
    finally:
        parent.handlers.clear()


# -- metrics --------------------------------------------------------------------------------


def samples(metrics: ServiceMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the rendered text, parsed back: (name, sorted labels) → value."""
    text = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def test_observe_counts_requests_by_labels():
    metrics = ServiceMetrics("demo")
    metrics.observe("echo", "mcp", "ok", 0.002)
    metrics.observe("echo", "mcp", "ok", 0.003)
    metrics.observe("echo", "rest", "invalid_arguments", 0.001)
    metrics.observe("fail", "mcp", "tool_error", 0.2)
    got = samples(metrics)
    key = "mcp_requests_total"
    assert got[(key, labels(devenv_service="demo", tool="echo", transport="mcp", status="ok"))] == 2
    assert got[(key, labels(devenv_service="demo", tool="echo", transport="rest", status="invalid_arguments"))] == 1
    assert got[(key, labels(devenv_service="demo", tool="fail", transport="mcp", status="tool_error"))] == 1
    assert sum(v for (name, _), v in got.items() if name == key) == 4


def test_observe_feeds_the_latency_histogram_per_tool():
    metrics = ServiceMetrics("demo")
    metrics.observe("echo", "mcp", "ok", 0.002)
    metrics.observe("echo", "rest", "ok", 0.3)
    metrics.observe("other", "mcp", "ok", 7.0)
    got = samples(metrics)

    def bucket(tool: str, le: str) -> float:
        return got[
            ("mcp_request_duration_seconds_bucket", labels(devenv_service="demo", tool=tool, status="ok", le=le))
        ]

    echo = labels(devenv_service="demo", tool="echo", status="ok")
    assert got[("mcp_request_duration_seconds_count", echo)] == 2  # transports share one histogram per tool
    assert got[("mcp_request_duration_seconds_sum", echo)] == pytest.approx(0.302)
    assert (bucket("echo", "0.001"), bucket("echo", "0.0025"), bucket("echo", "0.5"), bucket("echo", "+Inf")) == (
        0,
        1,
        2,
        2,
    )
    assert (bucket("other", "5.0"), bucket("other", "10.0")) == (0, 1)


def test_render_is_prometheus_text():
    metrics = ServiceMetrics("jd-classifier")
    metrics.observe("find_category", "mcp", "ok", 0.01)
    text = metrics.render().decode()
    assert isinstance(metrics.render(), bytes)
    assert "# HELP mcp_requests_total " in text
    assert "# TYPE mcp_requests_total counter" in text
    assert "# TYPE mcp_request_duration_seconds histogram" in text
    assert 'devenv_service="jd-classifier"' in text and 'tool="find_category"' in text
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["mcp_requests"] == "counter"
    assert families["mcp_request_duration_seconds"] == "histogram"


def test_each_service_has_its_own_registry():
    first, second = ServiceMetrics("one"), ServiceMetrics("two")
    first.observe("t", "mcp", "ok", 0.1)
    assert first.registry is not second.registry
    assert not any(name == "mcp_requests_total" for name, _ in samples(second))
    assert (
        second.registry.get_sample_value(
            "mcp_requests_total", {"devenv_service": "one", "tool": "t", "transport": "mcp", "status": "ok"}
        )
        is None
    )
    assert (
        first.registry.get_sample_value(
            "mcp_requests_total", {"devenv_service": "one", "tool": "t", "transport": "mcp", "status": "ok"}
        )
        == 1
    )
