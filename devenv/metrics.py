"""Prometheus metrics per service: calls, errors and latency per tool; rejections; cache outages."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric

__all__ = ["ServiceMetrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _CacheErrors:
    """Reads the service's own count of skipped cache operations at scrape time."""

    def __init__(self, service: str, counts: Callable[[], Mapping[str, int]]) -> None:
        self.service = service
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "devenv_cache_errors",
            "Cache operations skipped because the cache backend (Redis) failed; calls went on without it.",
            labels=["service", "op"],
        )
        for op, count in sorted(self.counts().items()):
            family.add_metric([self.service, op], count)
        yield family


class ServiceMetrics:
    """A registry of its own per app, so several services can live in one test process."""

    def __init__(self, service: str, cache_errors: Callable[[], Mapping[str, int]] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mcp_requests",
            "Tool calls by outcome (ok, invalid_arguments, tool_error, timeout).",
            ["service", "tool", "transport", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mcp_request_duration_seconds",
            "Tool call latency, arguments in to result out.",
            ["service", "tool"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.rejected = Counter(
            "devenv_rejected_requests",
            "Requests refused before any tool ran, by reason (unauthorized, host, origin, rate_limited, overloaded).",
            ["service", "reason"],
            registry=self.registry,
        )
        if cache_errors is not None:
            self.registry.register(_CacheErrors(service, cache_errors))
        self.service = service

    def observe(self, tool: str, transport: str, status: str, seconds: float) -> None:
        self.requests.labels(self.service, tool, transport, status).inc()
        self.latency.labels(self.service, tool).observe(seconds)

    def reject(self, reason: str) -> None:
        self.rejected.labels(self.service, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
