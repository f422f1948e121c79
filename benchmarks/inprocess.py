"""In-process call overhead: what a tool call costs when nothing crosses a socket.

Every candidate is timed the same way: a calibrated number of back-to-back calls inside
one coroutine (the SDK clients are async and must stay inside the task that opened them),
repeated, reporting microseconds per call. Each candidate runs two tools (``tool.CALLS``):
the trivial ``echo(x=1)`` and ``total_years(job)`` with a nested pydantic argument. Every
candidate's first answer is checked before it is timed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import BenchmarkError
from .stats import spread
from .tool import CALLS, SERVICE, devenv_service, echo, fastmcp_server, sdk_server, total_years

RunN = Callable[[int], Awaitable[float]]  # runs n calls, returns the seconds they took


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


async def measure(run_n: RunN, budget: Budget) -> dict[str, Any]:
    """µs per call: the median of ``budget.repetitions`` calibrated runs, with min and max."""
    n = await _calibrate(run_n, budget.seconds_per_repetition)
    per_call_us = []
    for _ in range(budget.repetitions):
        gc.collect()  # start each repetition from the same heap; GC during the run still counts
        per_call_us.append(await run_n(n) / n * 1e6)
    return {"iterations": n, "repetitions": budget.repetitions, "us_per_call": per_call_us, **spread(per_call_us)}


def expect(label: str, got: Any, want: Any) -> None:
    if got != want:
        raise BenchmarkError(f"{label}: expected {want!r}, got {got!r}")


def loop(call: Callable[[], Any]) -> RunN:
    """Time ``n`` back-to-back calls of a synchronous ``call``."""

    async def run_n(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            call()
        return time.perf_counter() - start

    return run_n


def aloop(call: Callable[[], Awaitable[Any]]) -> RunN:
    """Time ``n`` back-to-back awaits of ``call()``."""

    async def run_n(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await call()
        return time.perf_counter() - start

    return run_n


def structured(result: Any) -> tuple[bool, Any]:
    """(is_error, structuredContent) of an SDK or FastMCP ``CallToolResult``."""
    return result.is_error, result.structured_content


# -- candidates: each checks one answer, then returns its timed loop -------------------------


async def _direct(call: str) -> RunN:
    tool, arguments, want = CALLS[call]
    if tool == "echo":
        expect("direct call", echo(**arguments), want)
        return loop(lambda: echo(x=1))
    from .tool import Job

    job = Job.model_validate(arguments["job"])  # a ready model: the direct call validates nothing
    expect("direct call", total_years(job), want)
    return loop(lambda: total_years(job))


async def _devenv(client: Any, call: str) -> RunN:
    tool, arguments, want = CALLS[call]
    uri = f"{SERVICE}/{tool}"
    expect("MCPClient.call", client.call(uri, arguments), want)
    bound = client.call
    return loop(lambda: bound(uri, arguments))


async def _devenv_async(client: Any, call: str) -> RunN:
    tool, arguments, want = CALLS[call]
    uri = f"{SERVICE}/{tool}"
    expect("MCPClient.acall", await client.acall(uri, arguments), want)
    bound = client.acall
    return aloop(lambda: bound(uri, arguments))


async def _sdk_like(client: Any, call: str, label: str) -> RunN:
    """The official SDK's and FastMCP's clients share ``call_tool(name, arguments)``."""
    tool, arguments, want = CALLS[call]
    expect(label, structured(await client.call_tool(tool, arguments)), (False, {"result": want}))
    bound = client.call_tool
    return aloop(lambda: bound(tool, arguments))


# -- the run ---------------------------------------------------------------------------------

# (key, what is timed, whether the comparison needs it; extras are skipped by --quick)
CANDIDATES = [
    ("direct", "direct Python call", True),
    ("devenv", "MCPClient(services=[svc]).call(...)", True),
    ("devenv_async", "await MCPClient(...).acall(...)", False),
    ("sdk", "await mcp.Client(MCPServer).call_tool(...)", True),
    ("sdk_legacy", 'await mcp.Client(MCPServer, mode="legacy").call_tool(...)', False),
    ("fastmcp", "await fastmcp.Client(FastMCP).call_tool(...)", True),
]
LABELS = {key: label for key, label, _ in CANDIDATES}


def fastmcp_unavailable() -> str | None:
    """Why FastMCP cannot be measured here, or None if it can."""
    try:
        import fastmcp  # noqa: F401
    except ImportError as exc:
        return f"FastMCP not installed ({exc}); `pip install -e '.[bench]'`"
    return None


async def _run(budget: Budget, keys: set[str]) -> dict[str, Any]:
    # Imported here so that `--only http` keeps the SDK out of the process that runs the clients.
    from mcp import Client

    from devenv import MCPClient

    results: dict[str, dict[str, Any]] = {call: {} for call in CALLS}

    async def record(key: str, call: str, run_n: RunN) -> None:
        results[call][key] = {"label": LABELS[key], **await measure(run_n, budget)}

    client = MCPClient(services=[devenv_service()])
    for call in CALLS:
        if "direct" in keys:
            await record("direct", call, await _direct(call))
        if "devenv" in keys:
            await record("devenv", call, await _devenv(client, call))
        if "devenv_async" in keys:
            await record("devenv_async", call, await _devenv_async(client, call))
    server = sdk_server()  # default settings, as a test would build it
    # "auto" is the SDK's default: for an in-process server it dispatches directly, without
    # JSON-RPC framing; "legacy" runs the initialize handshake and JSON-RPC over memory streams.
    for key, mode in (("sdk", "auto"), ("sdk_legacy", "legacy")):
        if key in keys:
            async with Client(server, mode=mode) as sdk_client:
                for call in CALLS:
                    await record(key, call, await _sdk_like(sdk_client, call, LABELS[key]))
    if "fastmcp" in keys:
        reason = fastmcp_unavailable()
        if reason:
            for call in CALLS:
                results[call]["fastmcp"] = {"label": LABELS["fastmcp"], "skipped": reason}
        else:
            import fastmcp

            async with fastmcp.Client(fastmcp_server()) as fast_client:
                for call in CALLS:
                    await record("fastmcp", call, await _sdk_like(fast_client, call, LABELS["fastmcp"]))
    return results


def run(budget: Budget, *, extras: bool = True) -> dict[str, Any]:
    keys = {key for key, _, needed in CANDIDATES if needed or extras}
    # MCPServer(log_level=...) puts a rich handler on the root logger at INFO: undone afterwards,
    # or every later httpx request of this process would be logged to the terminal.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return asyncio.run(_run(budget, keys))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
