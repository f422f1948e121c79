"""Tracing's cost per tool call: the same calls with ``devenv.tracing`` off, then on.

Off is the default (no OTLP endpoint set): the hooks hand back the untraced call, so the
figure is the baseline itself. On, every call makes its spans through the OpenTelemetry
SDK's batch processor into an exporter that drops them (the export happens off the call
path, in the processor's thread). Two paths: ``MCPClient.call`` in-process (a CLIENT and a
SERVER span) and the server's ``_Runtime.call`` (one SERVER span, what a served call adds).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .inprocess import Budget, aloop, expect, loop, measure
from .tool import ARGUMENTS, SERVICE, TOOL, devenv_service


class _Drop:
    """A span exporter that takes every batch and keeps nothing."""

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


async def _client() -> Any:
    from devenv import MCPClient

    client = MCPClient(services=[devenv_service()], mode="inprocess")
    uri = f"{SERVICE}/{TOOL}"
    expect("MCPClient.call", client.call(uri, ARGUMENTS), 1)
    bound = client.call
    return loop(lambda: bound(uri, ARGUMENTS))


async def _server() -> Any:
    from devenv import create_app

    service = devenv_service()
    runtime = create_app(service).state.runtime
    tool = service.tools[TOOL]
    expect("_Runtime.call", await runtime.call(tool, ARGUMENTS, "mcp"), 1)
    call = runtime.call
    return aloop(lambda: call(tool, ARGUMENTS, "mcp"))


async def _measure_all(budget: Budget) -> dict[str, Any]:
    from devenv import tracing

    results: dict[str, Any] = {}
    for state in ("off", "on"):
        if state == "on":
            tracing.configure(_Drop(), batch=True)
        try:
            for key, label, make in (
                ("client", "MCPClient.call in-process", _client),
                ("server", "_Runtime.call", _server),
            ):
                results[f"{key}_{state}"] = {
                    "label": f"{label}, tracing {state}",
                    **await measure(await make(), budget),
                }
        finally:
            tracing.disable()
    for key in ("client", "server"):
        results[f"{key}_on"]["added_us"] = results[f"{key}_on"]["median"] - results[f"{key}_off"]["median"]
    return results


def run(budget: Budget) -> dict[str, Any]:
    from devenv import tracing

    tracing.disable()
    if tracing.enabled():
        raise RuntimeError("unset OTEL_EXPORTER_OTLP_ENDPOINT / DEVENV_TRACING: 'off' must really be off")
    return asyncio.run(_measure_all(budget))
