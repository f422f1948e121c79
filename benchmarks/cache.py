"""The result cache: a tool call that hits it against one that misses, with memory and Redis.

The tool is the example stack's own ``content-classifier/classify`` (``cache_ttl=300``),
called in-process through ``MCPClient`` so that nothing but the cache differs:

- ``uncached``: the tool's ``cache_ttl`` switched off: validate, score, serialise;
- ``miss``: a new text every call (a counter appended), so every call scores and stores;
- ``hit``: the same text every call: validate, hash the arguments, read, parse.

Redis is a ``redis-server`` this benchmark starts on a free loopback port (as the test
suite's ``redis_url`` fixture does) and stops afterwards; without the binary the Redis rows
are skipped with the reason. Before timing, each hit is checked to come from the cache
(its key is present) and each miss to store its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from . import BenchmarkError
from .inprocess import Budget, expect, loop, measure

SERVICE = "content-classifier"
TOOL = "classify"
TEXT = (
    "Invoice 2024-117 from the accountant: income tax return for last year, VAT receipts, "
    "and the bank statement for the savings account. Please file with the other tax documents."
)
VARIANTS = [
    ("uncached", "cache off (cache_ttl=None)"),
    ("miss", "cache miss: score, then store"),
    ("hit", "cache hit"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1 (no persistence); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server not found on PATH (apt-get install redis-server)")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="devenv-bench-redis-") as workdir:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise BenchmarkError("redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


def _variants(client: Any, tool: Any, backend: Any, budget: Budget) -> dict[str, Any]:
    uri = f"{SERVICE}/{TOOL}"
    hit_args = {"text": TEXT}
    ttl = tool.cache_ttl
    out: dict[str, Any] = {}

    def timed(run_n: Any) -> dict[str, Any]:
        return asyncio.run(measure(run_n, budget))

    tool.cache_ttl = None
    try:
        want = client.call(uri, hit_args)
        out["uncached"] = timed(loop(lambda: client.call(uri, hit_args)))
    finally:
        tool.cache_ttl = ttl

    counter = itertools.count()

    def miss() -> Any:
        return client.call(uri, {"text": f"{TEXT} ref {next(counter)}"})

    probe = {"text": f"{TEXT} ref probe"}
    client.call(uri, probe)
    if backend.get(tool._cache_key(tool.validate(probe))) is None:
        raise BenchmarkError(f"{type(backend).__name__}: a miss did not store its result")
    out["miss"] = timed(loop(miss))

    expect(f"{type(backend).__name__} hit", client.call(uri, hit_args), want)
    if backend.get(tool._cache_key(tool.validate(hit_args))) is None:
        raise BenchmarkError(f"{type(backend).__name__}: the hit's key is not in the cache")
    out["hit"] = timed(loop(lambda: client.call(uri, hit_args)))
    for key, label in VARIANTS:
        out[key]["label"] = label
    return out


def run(budget: Budget) -> dict[str, Any]:
    from devenv import MCPClient, MemoryCache, RedisCache, default_registry

    service = default_registry().get(SERVICE)
    tool = service.get_tool(TOOL)
    if not tool.cache_ttl:
        raise BenchmarkError(f"{SERVICE}/{TOOL} no longer declares cache_ttl: pick another cached tool")
    client = MCPClient(services=[service])
    results: dict[str, Any] = {"tool": f"{SERVICE}/{TOOL}", "cache_ttl": tool.cache_ttl}
    service.cache = MemoryCache()
    results["memory"] = _variants(client, tool, service.cache, budget)
    try:
        with redis_server() as url:
            cache = RedisCache(url)
            service.cache = cache
            try:
                results["redis"] = {"url": url, **_variants(client, tool, cache, budget)}
            finally:
                cache.close()
                service.cache = MemoryCache()
    except FileNotFoundError as exc:
        results["redis"] = {"skipped": str(exc)}
    return results
