"""``POST /mcp`` over real sockets: each server alone in its own uvicorn process.

Per target: start uvicorn (one worker, default settings, access log off) on a free
port, check that a tools/call answers 200 with the right result, warm up, time
sequential requests over one keep-alive connection, then measure throughput at N
concurrent connections (wrk, or a Python fallback), and stop the server before the
next one starts: on a 2-core machine two servers would compete for the same cores.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    app: str  # uvicorn's "module:attribute"
    extra: bool = False  # not needed for the headline comparison: skipped by --quick


TARGETS = [
    Target("devenv", "devenv create_app(service)", "benchmarks.servers.devenv_mcp:app"),
    Target("sdk", "SDK MCPServer, defaults", "benchmarks.servers.sdk_mcp:app"),
    Target("floor", "bare FastAPI, constant JSON", "benchmarks.servers.fastapi_floor:app"),
    Target("sdk_quiet", "SDK MCPServer, log_level=WARNING", "benchmarks.servers.sdk_mcp_quiet:app", extra=True),
    Target("devenv_served", "devenv as `devenv serve` runs it", "benchmarks.servers.devenv_served:app", extra=True),
    Target("devenv_async_tool", "devenv, `async def` tool", "benchmarks.servers.devenv_async_tool:app", extra=True),
]


@dataclass(frozen=True)
class Plan:
    warmup_seconds: float
    sequential_requests: int
    sequential_warmup: int
    seconds: float  # per throughput run
    runs: int
    connections: int
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


def _problem(status: int, content_type: str | None, body: bytes) -> str | None:
    """Why this answer is not a successful tools/call of echo(x=1), or None if it is."""
    if status != 200:
        return f"HTTP {status}"
    if not (content_type or "").startswith("application/json"):
        return f"Content-Type {content_type!r}"
    try:
        message = json.loads(body)
        result = message["result"]
    except (ValueError, KeyError, TypeError):
        return "not a JSON-RPC result"
    if message.get("id") != 1 or result.get("isError") is not False:
        return "wrong id or isError"
    if result.get("structuredContent") != EXPECTED_STRUCTURED:
        return f"structuredContent {result.get('structuredContent')!r}, expected {EXPECTED_STRUCTURED!r}"
    return None


@dataclass(frozen=True)
class Answer:
    """The verified answer: every later one must have the same body (and so the same size)."""

    body: bytes
    size: int  # the whole HTTP response: status line, headers, body


def _post(conn: http.client.HTTPConnection) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request("POST", PATH, BODY, HEADERS)
    response = conn.getresponse()
    return response, response.read()


def verify(port: int) -> Answer:
    """One tools/call, checked field by field."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        response, body = _post(conn)
    finally:
        conn.close()
    problem = _problem(response.status, response.getheader("content-type"), body)
    if problem:
        raise BenchmarkError(f"tools/call on :{port} failed ({problem}): {body[:300]!r}")
    head = f"HTTP/1.1 {response.status} {response.reason}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in response.getheaders()) + "\r\n"
    return Answer(body, len(head.encode("latin-1")) + len(body))


def sequential(port: int, answer: Answer, requests: int, warmup: int) -> dict[str, float]:
    """Latency in microseconds of back-to-back requests over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    samples = []
    try:
        for i in range(warmup + requests):
            start = time.perf_counter_ns()
            response, body = _post(conn)
            elapsed = time.perf_counter_ns() - start
            if body != answer.body:
                problem = _problem(response.status, response.getheader("content-type"), body) or "different body"
                raise BenchmarkError(f"request {i} on :{port} failed ({problem}): {body[:300]!r}")
            if i >= warmup:
                samples.append(elapsed / 1000)
    finally:
        conn.close()
    return distribution(samples)


# -- throughput: wrk, or a Python fallback ---------------------------------------------------


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _wrk(port: int, seconds: float, plan: Plan, answer: Answer) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{plan.threads}",
        f"-c{plan.connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}{PATH}",
        "--",
        BODY.decode(),
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


def _raw_request(port: int) -> bytes:
    head = [f"POST {PATH} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(BODY)}"]
    head += [f"{name}: {value}" for name, value in HEADERS.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + BODY


async def _hammer(port: int, seconds: float, connections: int, answer: Answer) -> dict[str, Any]:
    """Closed-loop load from one Python process: each connection sends, reads the answer, repeats."""
    request = _raw_request(port)
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


def _python_load(port: int, seconds: float, plan: Plan, answer: Answer) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_hammer(port, seconds, plan.connections, answer))
    return uvloop.run(_hammer(port, seconds, plan.connections, answer))


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, all its threads included (None without /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(port: int, pid: int, seconds: float, plan: Plan, answer: Answer) -> dict[str, Any]:
    """One throughput run; any error answer makes the whole benchmark fail.

    The server's own CPU time per request is reported too: unlike req/s it barely moves
    when other work on the machine steals the server's core, and a utilisation well below
    1.0 says the server was not the bottleneck (the load generator or a neighbour was).
    """
    cpu_before = _cpu_seconds(pid)
    result = (_wrk if plan.generator == "wrk" else _python_load)(port, seconds, plan, answer)
    cpu_after = _cpu_seconds(pid)
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


def measure(target: Target, plan: Plan) -> dict[str, Any]:
    with serve(target, cpu=server_cpu(plan)) as (port, pid):
        answer = verify(port)
        load(port, pid, plan.warmup_seconds, plan, answer)  # warm-up: lazy imports, caches, specialised bytecode
        loop = event_loop_and_parser(pid)
        latency = sequential(port, answer, plan.sequential_requests, plan.sequential_warmup)
        runs = [load(port, pid, plan.seconds, plan, answer) for _ in range(plan.runs)]
    rps = [run["rps"] for run in runs]
    cpu = [run["server_cpu_us_per_request"] for run in runs if "server_cpu_us_per_request" in run]
    return {
        "label": target.label,
        "app": target.app,
        "uvicorn_picked": loop,
        "response": answer.body.decode(),
        "sequential_us": latency,
        "throughput": {"runs": runs, "rps": rps, **spread(rps)},
        "server_cpu_us_per_request": spread(cpu) if cpu else None,
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
    results = {}
    with clients_pinned(plan):
        for target in targets:
            print(f"  {target.label:<36}", end="", flush=True)
            results[target.key] = result = measure(target, plan)
            latency, throughput = result["sequential_us"], result["throughput"]
            print(f" p50 {latency['p50']:6.0f} µs   p99 {latency['p99']:6.0f} µs   {throughput['median']:7.0f} req/s")
    return results
