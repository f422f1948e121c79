"""In-process call overhead: what a tool call costs when nothing crosses a socket.

Every candidate is timed the same way: a calibrated number of back-to-back calls inside
one coroutine (the SDK client is async and must stay inside the task that opened it),
repeated, reporting microseconds per call.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import BenchmarkError
from .stats import spread
from .tool import ARGUMENTS, EXPECTED_STRUCTURED, SERVICE, TOOL, devenv_service, echo, sdk_server

RunN = Callable[[int], Awaitable[float]]  # runs n calls, returns the seconds they took

URI = f"{SERVICE}/{TOOL}"


@dataclass(frozen=True)
class Budget:
    repetitions: int
    seconds_per_repetition: float


async def _calibrate(run_n: RunN, seconds: float) -> int:
    """Grow n until a run is long enough to time, then scale it to ``seconds`` (doubles as warm-up)."""
    n = 1
    while True:
        elapsed = await run_n(n)
        if elapsed >= 0.05 or n >= 10**8:
            return max(1, int(n * seconds / max(elapsed, 1e-9)))
        n *= 10 if elapsed < 0.005 else 2


async def _measure(run_n: RunN, budget: Budget) -> dict[str, Any]:
    n = await _calibrate(run_n, budget.seconds_per_repetition)
    per_call_us = []
    for _ in range(budget.repetitions):
        gc.collect()  # start each repetition from the same heap; GC during the run still counts
        per_call_us.append(await run_n(n) / n * 1e6)
    return {"iterations": n, "repetitions": budget.repetitions, "us_per_call": per_call_us, **spread(per_call_us)}


def _expect(label: str, got: Any, want: Any) -> None:
    if got != want:
        raise BenchmarkError(f"{label}: expected {want!r}, got {got!r}")


# -- candidates: each checks one answer, then returns its timed loop -------------------------


async def _direct() -> RunN:
    _expect("direct call", echo(**ARGUMENTS), 1)

    async def run_n(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            echo(x=1)
        return time.perf_counter() - start

    return run_n


async def _devenv_sync(client: Any) -> RunN:
    _expect("MCPClient.call", client.call(URI, ARGUMENTS), 1)

    async def run_n(n: int) -> float:
        call = client.call
        start = time.perf_counter()
        for _ in range(n):
            call(URI, ARGUMENTS)
        return time.perf_counter() - start

    return run_n


async def _devenv_async(client: Any) -> RunN:
    _expect("MCPClient.acall", await client.acall(URI, ARGUMENTS), 1)

    async def run_n(n: int) -> float:
        acall = client.acall
        start = time.perf_counter()
        for _ in range(n):
            await acall(URI, ARGUMENTS)
        return time.perf_counter() - start

    return run_n


async def _sdk(client: Any) -> RunN:
    result = await client.call_tool(TOOL, ARGUMENTS)
    _expect("mcp.Client.call_tool", (result.is_error, result.structured_content), (False, EXPECTED_STRUCTURED))

    async def run_n(n: int) -> float:
        call_tool = client.call_tool
        start = time.perf_counter()
        for _ in range(n):
            await call_tool(TOOL, ARGUMENTS)
        return time.perf_counter() - start

    return run_n


# -- the run ---------------------------------------------------------------------------------

# (key, what is timed, whether the comparison needs it; extras are skipped by --quick)
CANDIDATES = [
    ("direct", "direct Python call echo(x=1)", True),
    ("devenv", 'MCPClient(services=[svc]).call("bench/echo", ...)', True),
    ("devenv_async", "await MCPClient(...).acall(...)", False),
    ("sdk", "await mcp.Client(MCPServer).call_tool(...)", True),
    ("sdk_legacy", 'await mcp.Client(MCPServer, mode="legacy").call_tool(...)', False),
]


async def _run(budget: Budget, keys: set[str]) -> dict[str, Any]:
    # Imported here so that `--only http` keeps the SDK out of the process that runs the clients.
    from mcp import Client

    from devenv import MCPClient

    results: dict[str, Any] = {}

    async def record(key: str, run_n: RunN) -> None:
        label = next(label for k, label, _ in CANDIDATES if k == key)
        results[key] = {"label": label, **await _measure(run_n, budget)}

    if "direct" in keys:
        await record("direct", await _direct())
    client = MCPClient(services=[devenv_service()])
    if "devenv" in keys:
        await record("devenv", await _devenv_sync(client))
    if "devenv_async" in keys:
        await record("devenv_async", await _devenv_async(client))
    server = sdk_server()  # default settings, as a test would build it
    # "auto" is the SDK's default: for an in-process server it dispatches directly, without
    # JSON-RPC framing; "legacy" runs the initialize handshake and JSON-RPC over memory streams.
    for key, mode in (("sdk", "auto"), ("sdk_legacy", "legacy")):
        if key in keys:
            async with Client(server, mode=mode) as sdk_client:
                await record(key, await _sdk(sdk_client))
    return results


def run(budget: Budget, *, extras: bool = True) -> dict[str, Any]:
    keys = {key for key, _, needed in CANDIDATES if needed or extras}
    return asyncio.run(_run(budget, keys))
