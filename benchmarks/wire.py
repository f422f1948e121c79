"""Tool calls over real sockets: each server alone in its own uvicorn process.

Per target: start uvicorn (one worker, default settings, access log off) on a free
port, check that a call answers 200 with the right result, warm up, time sequential
requests over one keep-alive connection, then measure throughput at each number of
concurrent connections (wrk, or a Python fallback), and stop the server before the
next one starts: on a 2-core machine two servers would compete for the same cores.

A target is an app and the request it is called with: an MCP ``tools/call`` on
``POST /mcp`` or plain JSON on devenv's ``POST /tools/echo``; each request kind knows
what a correct answer looks like.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import BenchmarkError
from .stats import distribution, spread
from .tool import ARGUMENTS, EXPECTED_STRUCTURED, TOOL

ROOT = Path(__file__).resolve().parent.parent  # where `benchmarks.servers.*` imports from
LUA = Path(__file__).with_name("tools_call.lua")
PATH = "/mcp"
# Exactly what the SDK's stateless JSON server needs, checked against it: no initialize
# first (stateless), an Accept that lists application/json (else 406), and a handshake-era
# MCP-Protocol-Version (a 2026 one is routed to its "modern" path, which wants params._meta).
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-11-25",
}
BODY = json.dumps(
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": TOOL, "arguments": ARGUMENTS}},
    separators=(",", ":"),
).encode()


def _mcp_problem(message: Any) -> str | None:
    """Why this JSON is not a successful tools/call of echo(x=1), or None if it is."""
    try:
        result = message["result"]
    except (KeyError, TypeError):
        return "not a JSON-RPC result"
    if message.get("id") != 1 or not isinstance(result, dict) or result.get("isError") is not False:
        return "wrong id or isError"
    if result.get("structuredContent") != EXPECTED_STRUCTURED:
        return f"structuredContent {result.get('structuredContent')!r}, expected {EXPECTED_STRUCTURED!r}"
    return None


def _rest_problem(value: Any) -> str | None:
    """``POST /tools/echo`` answers the bare result."""
    return None if value == 1 and type(value) is int else f"answer {value!r}, expected 1"


@dataclass(frozen=True)
class Call:
    """One request, sent the same way by every client here, and the test of its answer."""

    key: str
    path: str
    body: bytes
    headers: dict[str, str]
    problem: Callable[[Any], str | None] = field(repr=False)  # why the parsed JSON is wrong, or None


MCP_CALL = Call("mcp", PATH, BODY, HEADERS, _mcp_problem)
# The same call at MCP 2026-07-28: no session either, but every request carries its version and
# capabilities in params._meta and mirrors method and tool name into headers (both servers check them).
MODERN_VERSION = "2026-07-28"
MODERN_CALL = Call(
    "mcp_2026",
    PATH,
    json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {
                "name": TOOL,
                "arguments": ARGUMENTS,
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        },
        separators=(",", ":"),
    ).encode(),
    {**HEADERS, "MCP-Protocol-Version": MODERN_VERSION, "Mcp-Method": "tools/call", "Mcp-Name": TOOL},
    lambda message: _mcp_problem(message) or _modern_problem(message),
)


def _modern_problem(message: Any) -> str | None:
    result_type = message["result"].get("resultType")
    return None if result_type == "complete" else f"resultType {result_type!r}, expected 'complete'"


REST_CALL = Call(
    "rest", f"/tools/{TOOL}", json.dumps(ARGUMENTS).encode(), {"Content-Type": "application/json"}, _rest_problem
)


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    app: str  # uvicorn's "module:attribute"
    call: Call = MCP_CALL
    extra: bool = False  # not needed for the headline comparison: skipped by --quick
    needs: str | None = None  # an optional package the app imports: skipped, with the reason, without it


TARGETS = [
    Target("devenv", "devenv POST /mcp", "benchmarks.servers.devenv_mcp:app"),
    Target("devenv_rest", "devenv POST /tools/echo", "benchmarks.servers.devenv_mcp:app", REST_CALL),
    Target("sdk", "SDK MCPServer, stateless JSON", "benchmarks.servers.sdk_mcp:app"),
    Target("devenv_2026", "devenv POST /mcp at 2026-07-28", "benchmarks.servers.devenv_mcp:app", MODERN_CALL),
    Target("sdk_2026", "SDK MCPServer at 2026-07-28", "benchmarks.servers.sdk_mcp:app", MODERN_CALL),
    Target("floor", "bare FastAPI, constant JSON", "benchmarks.servers.fastapi_floor:app"),
    Target("sdk_quiet", "SDK MCPServer, log_level=WARNING", "benchmarks.servers.sdk_mcp_quiet:app", extra=True),
    Target("fastmcp", "FastMCP, stateless JSON", "benchmarks.servers.fastmcp_http:app", extra=True, needs="fastmcp"),
    Target("devenv_served", "devenv as `devenv serve` runs it", "benchmarks.servers.devenv_served:app", extra=True),
    Target("devenv_async_tool", "devenv, `async def` tool", "benchmarks.servers.devenv_async_tool:app", extra=True),
]
HEADLINE = ("devenv", "devenv_rest", "sdk", "devenv_2026", "sdk_2026", "floor")


@dataclass(frozen=True)
class Plan:
    warmup_seconds: float
    sequential_requests: int
    sequential_warmup: int
    seconds: float  # per throughput run
    runs: int
    connections: tuple[int, ...]  # throughput at each of these concurrency levels
    threads: int
    generator: str  # "wrk" or "python"
    pin: bool  # server on CPU 0, clients on CPU 1


# -- one server process ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(log: IO[bytes], limit: int = 3000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-limit:]


def _wait_listening(proc: subprocess.Popen, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchmarkError(f"server exited with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchmarkError(f"server not listening on 127.0.0.1:{port} after {timeout:.0f}s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _can_pin(plan: Plan) -> bool:
    # Linux only (sched_setaffinity); with one core there is nothing to separate.
    return plan.pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2


def server_cpu(plan: Plan) -> int | None:
    return 0 if _can_pin(plan) else None


@contextmanager
def serve(target: Target, *, cpu: int | None) -> Iterator[tuple[int, int]]:
    """Run ``target`` under uvicorn; yields (port, pid). Logs go to a temp file, shown on failure."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        target.app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
    ]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            if cpu is not None:
                os.sched_setaffinity(proc.pid, {cpu})  # before uvicorn starts threads, which inherit it
            _wait_listening(proc, port)
            yield port, proc.pid
        except BenchmarkError as exc:
            raise BenchmarkError(f"{target.label}: {exc}\n--- server log ---\n{_tail(log)}") from None
        finally:
            _stop(proc)


def event_loop_and_parser(pid: int) -> dict[str, bool]:
    """What uvicorn's "auto" picked, read from the shared objects the server has loaded."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return {}
    return {"uvloop": "/uvloop/" in maps, "httptools": "/httptools/" in maps}


# -- correctness -----------------------------------------------------------------------------


def _problem(call: Call, status: int, content_type: str | None, body: bytes) -> str | None:
    """Why this answer is not the right one for ``call``, or None if it is."""
    if status != 200:
        return f"HTTP {status}"
    if not (content_type or "").startswith("application/json"):
        return f"Content-Type {content_type!r}"
    try:
        value = json.loads(body)
    except ValueError:
        return "not JSON"
    return call.problem(value)


@dataclass(frozen=True)
class Answer:
    """The verified answer: every later one must have the same body (and so the same size)."""

    body: bytes
    size: int  # the whole HTTP response: status line, headers, body


def _post(conn: http.client.HTTPConnection, call: Call) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request("POST", call.path, call.body, call.headers)
    response = conn.getresponse()
    return response, response.read()


def verify(port: int, call: Call = MCP_CALL) -> Answer:
    """One call, checked field by field."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        response, body = _post(conn, call)
    finally:
        conn.close()
    problem = _problem(call, response.status, response.getheader("content-type"), body)
    if problem:
        raise BenchmarkError(f"POST {call.path} on :{port} failed ({problem}): {body[:300]!r}")
    head = f"HTTP/1.1 {response.status} {response.reason}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in response.getheaders()) + "\r\n"
    return Answer(body, len(head.encode("latin-1")) + len(body))


def idle(port: int, answer: Answer, call: Call = MCP_CALL, timeout: float = 10.0) -> None:
    """Wait until the server answers right again after a load run.

    When wrk stops, the calls of its last round may still be running (a sync tool waits for a
    worker thread); devenv counts them against its concurrency limit (DEVENV_MAX_CONCURRENCY,
    64) and answers 503 Overloaded meanwhile. The next phase starts on an idle server.
    """
    deadline = time.monotonic() + timeout
    time.sleep(0.1)
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            response, body = _post(conn, call)
        finally:
            conn.close()
        if body == answer.body:
            return
        if time.monotonic() > deadline:
            problem = _problem(call, response.status, response.getheader("content-type"), body)
            raise BenchmarkError(
                f"POST {call.path} on :{port} still failing {timeout:g} s after a load run ({problem})"
            )
        time.sleep(0.05)


def sequential(port: int, answer: Answer, requests: int, warmup: int, call: Call = MCP_CALL) -> dict[str, float]:
    """Latency in microseconds of back-to-back requests over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    samples = []
    try:
        for i in range(warmup + requests):
            start = time.perf_counter_ns()
            response, body = _post(conn, call)
            elapsed = time.perf_counter_ns() - start
            if body != answer.body:
                problem = _problem(call, response.status, response.getheader("content-type"), body)
                raise BenchmarkError(f"request {i} on :{port} failed ({problem or 'different body'}): {body[:300]!r}")
            if i >= warmup:
                samples.append(elapsed / 1000)
    finally:
        conn.close()
    return distribution(samples)


# -- throughput: wrk, or a Python fallback ---------------------------------------------------


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _wrk(port: int, seconds: float, connections: int, plan: Plan, call: Call, answer: Answer) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{min(plan.threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}{call.path}",
        "--",
        call.body.decode(),
        *(f"{name}: {value}" for name, value in call.headers.items()),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchmarkError(f"wrk failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    figures = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(figures["errors"].values())
    # wrk only counts non-2xx answers as errors; a 200 carrying a JSON-RPC error or an isError
    # result has another size, so compare the bytes read per answer with the verified one's.
    if figures["requests"] and abs(figures["bytes"] / figures["requests"] - answer.size) > 0.01 * answer.size:
        raise BenchmarkError(
            f"answers under load average {figures['bytes'] / figures['requests']:.1f} bytes, "
            f"the verified answer has {answer.size}: some were not the right result"
        )
    return {
        "requests": figures["requests"],
        "seconds": figures["duration_us"] / 1e6,
        "errors": errors,
        "error_detail": figures["errors"],
        "bytes_per_answer": figures["bytes"] / max(1, figures["requests"]),
        "latency_us": figures["latency_us"],
    }


def _raw_request(port: int, call: Call) -> bytes:
    head = [f"POST {call.path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(call.body)}"]
    head += [f"{name}: {value}" for name, value in call.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + call.body


async def _hammer(port: int, seconds: float, connections: int, call: Call, answer: Answer) -> dict[str, Any]:
    """Closed-loop load from one Python process: each connection sends, reads the answer, repeats."""
    request = _raw_request(port, call)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while (start := time.perf_counter()) < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(ln.split(b":", 1)[1])
                        for ln in head.split(b"\r\n")
                        if ln.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if length is None:
                    raise BenchmarkError(f"answer without Content-Length: {head!r}")
                body = await reader.readexactly(length)
                errors += head[9:12] != b"200" or body != answer.body
                latencies.append((time.perf_counter() - start) * 1e6)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    return {"requests": len(latencies), "seconds": elapsed, "errors": errors, "latency_us": distribution(latencies)}


def _python_load(port: int, seconds: float, connections: int, plan: Plan, call: Call, answer: Answer) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_hammer(port, seconds, connections, call, answer))
    return uvloop.run(_hammer(port, seconds, connections, call, answer))


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, all its threads included (None without /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    port: int, pid: int, seconds: float, connections: int, plan: Plan, answer: Answer, call: Call = MCP_CALL
) -> dict[str, Any]:
    """One throughput run; any error answer makes the whole benchmark fail.

    The server's own CPU time per request is reported too: unlike req/s it barely moves
    when other work on the machine steals the server's core, and a utilisation well below
    1.0 says the server was not the bottleneck (the load generator or a neighbour was).
    """
    cpu_before = _cpu_seconds(pid)
    generator = _wrk if plan.generator == "wrk" else _python_load
    result = generator(port, seconds, connections, plan, call, answer)
    cpu_after = _cpu_seconds(pid)
    idle(port, answer, call)
    if result["errors"]:
        raise BenchmarkError(
            f"{result['errors']} of {result['requests']} answers under load on :{port} were not the "
            f"verified one: {result.get('error_detail', 'wrong status or body')}"
        )
    result["rps"] = result["requests"] / result["seconds"]
    if cpu_before is not None and cpu_after is not None:
        result["server_cpu_us_per_request"] = (cpu_after - cpu_before) / result["requests"] * 1e6
        result["server_cpu_utilisation"] = (cpu_after - cpu_before) / result["seconds"]
    return result


# -- one target, start to finish -------------------------------------------------------------


def _level(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One concurrency level: its runs and the median run's figures with their spread."""
    rps = [run["rps"] for run in runs]
    cpu = [run["server_cpu_us_per_request"] for run in runs if "server_cpu_us_per_request" in run]
    return {
        "runs": runs,
        "rps": rps,
        **spread(rps),
        "p50_us": spread([run["latency_us"]["p50"] for run in runs]),
        "p99_us": spread([run["latency_us"]["p99"] for run in runs]),
        "server_cpu_us_per_request": spread(cpu) if cpu else None,
        "server_cpu_utilisation": spread([run["server_cpu_utilisation"] for run in runs]) if cpu else None,
    }


def unavailable(target: Target) -> str | None:
    """Why ``target`` cannot run here (an optional package is missing), or None."""
    if target.needs is None:
        return None
    import importlib.util

    if importlib.util.find_spec(target.needs) is None:
        return f"{target.needs} is not installed (`pip install -e '.[bench]'`)"
    return None


def measure(target: Target, plan: Plan) -> dict[str, Any]:
    call = target.call
    with serve(target, cpu=server_cpu(plan)) as (port, pid):
        answer = verify(port, call)
        if plan.warmup_seconds:  # lazy imports, caches, specialised bytecode; else the sequential warm-up does
            load(port, pid, plan.warmup_seconds, max(plan.connections), plan, answer, call)
        loop = event_loop_and_parser(pid)
        latency = sequential(port, answer, plan.sequential_requests, plan.sequential_warmup, call)
        # Interleaved (1, 16, 64, 1, 16, 64, ...): a burst of noise from a neighbour spreads over
        # the levels instead of landing on one of them.
        runs: dict[int, list[dict[str, Any]]] = {c: [] for c in plan.connections}
        for _ in range(plan.runs):
            for connections in plan.connections:
                runs[connections].append(load(port, pid, plan.seconds, connections, plan, answer, call))
    return {
        "label": target.label,
        "app": target.app,
        "request": {"path": call.path, "body": call.body.decode(), "headers": call.headers},
        "uvicorn_picked": loop,
        "response": answer.body.decode(),
        "sequential_us": latency,
        "throughput": {str(c): _level(r) for c, r in runs.items()},
    }


@contextmanager
def clients_pinned(plan: Plan) -> Iterator[None]:
    """This process, and the load generators it starts, on CPU 1: off the server's core."""
    if not _can_pin(plan):
        yield
        return
    original = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})
    try:
        yield
    finally:
        os.sched_setaffinity(0, original)


def run(plan: Plan, targets: list[Target]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with clients_pinned(plan):
        for target in targets:
            print(f"  {target.label:<36}", end="", flush=True)
            reason = unavailable(target)
            if reason:
                results[target.key] = {"label": target.label, "skipped": reason}
                print(f" skipped: {reason}")
                continue
            try:
                results[target.key] = result = measure(target, plan)
            except BenchmarkError as exc:  # recorded; the other targets still run
                results[target.key] = {"label": target.label, "failed": str(exc)}
                print(f" FAILED: {exc}", file=sys.stderr)
                continue
            latency = result["sequential_us"]
            rates = "  ".join(f"@{c} {level['median']:6.0f}" for c, level in result["throughput"].items())
            print(f" p50 {latency['p50']:5.0f} µs  p99 {latency['p99']:6.0f} µs  req/s {rates}")
    return results
