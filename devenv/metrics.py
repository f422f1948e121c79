"""Prometheus metrics per service: calls, errors and latency per tool."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["ServiceMetrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """A registry of its own per app, so several services can live in one test process."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mcp_requests",
            "Tool calls by outcome (ok, invalid_arguments, tool_error).",
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
        self.service = service

    def observe(self, tool: str, transport: str, status: str, seconds: float) -> None:
        self.requests.labels(self.service, tool, transport, status).inc()
        self.latency.labels(self.service, tool).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
