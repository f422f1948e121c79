"""Prometheus metrics per service: calls, errors and latency per tool; rejections; cache; in flight.

Every series a service can produce exists at 0 from start-up (tools come from the registry,
reasons and outcomes are fixed lists), so ``increase(...)`` sees the first error. The
service is the ``devenv_service`` label, never ``service``: a Prometheus Operator
ServiceMonitor adds a ``service`` target label and would rename ours ``exported_service``.
Label values are bounded: a tool name a client sent that the service does not have is
counted in ``devenv_unknown_tool_requests_total`` with no name at all.

Stable names (devenv's own; dashboards and alerts use these): ``mcp_requests_total``,
``mcp_request_duration_seconds`` (now by ``status`` too), ``devenv_rejected_requests_total``,
``devenv_unknown_tool_requests_total``, ``devenv_cache_errors_total``,
``devenv_cache_lookups_total``, ``devenv_in_flight_requests``. Also
``mcp_server_operation_duration_seconds``: OpenTelemetry's ``mcp.server.operation.duration``
as Prometheus spells it (labels ``mcp_method_name``, ``gen_ai_tool_name``, ``error_type``);
the convention is at "development" stability, so this one follows it if it changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["OUTCOMES", "REJECTION_REASONS", "TRANSPORTS", "ServiceMetrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TRANSPORTS = ("mcp", "rest")
OUTCOMES = ("ok", "invalid_arguments", "tool_error", "timeout", "input_required")
REJECTION_REASONS = ("unauthorized", "host", "origin", "rate_limited", "overloaded")
_CACHE_OPS = ("get", "set")
_CACHE_RESULTS = ("hit", "miss")
_LABEL = "devenv_service"


class _Scraped:
    """Values the service keeps itself (cache counts, calls in flight), read at scrape time."""

    def __init__(
        self,
        service: str,
        cache_errors: Callable[[], Mapping[str, int]] | None,
        cache_lookups: Callable[[], Mapping[str, int]] | None,
        in_flight: Callable[[], int] | None,
    ) -> None:
        self.service = service
        self.cache_errors = cache_errors
        self.cache_lookups = cache_lookups
        self.in_flight = in_flight

    def collect(self) -> Iterator[Metric]:
        if self.cache_errors is not None:
            family = CounterMetricFamily(
                "devenv_cache_errors",
                "Cache operations skipped because the cache backend (Redis) failed; calls went on without it.",
                labels=[_LABEL, "op"],
            )
            counts = self.cache_errors()
            for op in sorted(set(_CACHE_OPS) | set(counts)):
                family.add_metric([self.service, op], counts.get(op, 0))
            yield family
        if self.cache_lookups is not None:
            family = CounterMetricFamily(
                "devenv_cache_lookups",
                "Result-cache lookups of tools with a cache_ttl, by result (hit, miss).",
                labels=[_LABEL, "result"],
            )
            counts = self.cache_lookups()
            for result in _CACHE_RESULTS:
                family.add_metric([self.service, result], counts.get(result, 0))
            yield family
        if self.in_flight is not None:
            gauge = GaugeMetricFamily("devenv_in_flight_requests", "Tool calls running now.", labels=[_LABEL])
            gauge.add_metric([self.service], self.in_flight())
            yield gauge


class ServiceMetrics:
    """A registry of its own per app, so several services can live in one test process.

    ``tools``: the service's tool names, whose series are made at 0 up front. A tool not in
    it still gets series on first use (a test may observe any name).
    """

    def __init__(
        self,
        service: str,
        cache_errors: Callable[[], Mapping[str, int]] | None = None,
        *,
        tools: Iterable[str] = (),
        cache_lookups: Callable[[], Mapping[str, int]] | None = None,
        in_flight: Callable[[], int] | None = None,
        process: bool = False,
    ) -> None:
        self.registry = CollectorRegistry()
        self.service = service
        self.requests = Counter(
            "mcp_requests",
            "Tool calls by outcome (ok, invalid_arguments, tool_error, timeout, input_required).",
            [_LABEL, "tool", "transport", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mcp_request_duration_seconds",
            "Tool call latency, arguments in to result out, by outcome.",
            [_LABEL, "tool", "status"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.operation = Histogram(
            "mcp_server_operation_duration_seconds",
            "OpenTelemetry mcp.server.operation.duration for tools/call; error_type=tool_error when isError.",
            [_LABEL, "mcp_method_name", "gen_ai_tool_name", "error_type"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.rejected = Counter(
            "devenv_rejected_requests",
            "Requests refused before any tool ran, by reason (" + ", ".join(REJECTION_REASONS) + ").",
            [_LABEL, "reason"],
            registry=self.registry,
        )
        self.unknown_tools = Counter(
            "devenv_unknown_tool_requests",
            "Calls naming a tool the service does not have (the name is not a label: clients choose it).",
            [_LABEL, "transport"],
            registry=self.registry,
        )
        self.registry.register(_Scraped(service, cache_errors, cache_lookups, in_flight))
        if process:  # memory, CPU, start time (restarts) of the serving process; Linux only
            ProcessCollector(registry=self.registry)
        # One set of children per (tool, transport, status), made now: the 0s, and a cheap observe.
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram, Histogram]] = {}
        for tool in tools:
            for transport in TRANSPORTS:
                for status in OUTCOMES:
                    self._child(tool, transport, status)
        for reason in REJECTION_REASONS:
            self.rejected.labels(service, reason)
        for transport in TRANSPORTS:
            self.unknown_tools.labels(service, transport)

    def _child(self, tool: str, transport: str, status: str) -> tuple[Counter, Histogram, Histogram]:
        error_type = "" if status in ("ok", "input_required") else "tool_error"  # what isError means to the convention
        child = (
            self.requests.labels(self.service, tool, transport, status),
            self.latency.labels(self.service, tool, status),
            self.operation.labels(self.service, "tools/call", tool, error_type),
        )
        self._children[tool, transport, status] = child
        return child

    def observe(self, tool: str, transport: str, status: str, seconds: float) -> None:
        child = self._children.get((tool, transport, status)) or self._child(tool, transport, status)
        child[0].inc()
        child[1].observe(seconds)
        child[2].observe(seconds)

    def reject(self, reason: str) -> None:
        self.rejected.labels(self.service, reason).inc()

    def unknown_tool(self, transport: str) -> None:
        self.unknown_tools.labels(self.service, transport).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
