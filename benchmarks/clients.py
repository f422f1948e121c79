"""Clients over HTTP: devenv's ``MCPClient`` against the official SDK's ``Client``, same server.

One devenv server (``create_app``, one uvicorn worker, pinned to CPU 0 like the wire
benchmark) serves both tools; each client, in this process on CPU 1, makes calls back to
back over its own kept-alive connection, timed as the in-process benchmark times its
candidates (calibrated runs, median of repetitions). The floor is a bare ``http.client``
keep-alive POST of the same JSON-RPC body: what any Python client pays for the round trip;
a bare ``httpx.AsyncClient`` POST shows what the HTTP library MCPClient used to ride costs by
itself (MCPClient now has its own lean HTTP/1.1, devenv/transports/h1.py).
Every client's first answer is checked before it is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
from collections.abc import Iterator
from typing import Any

from . import wire
from .inprocess import Budget, RunN, aloop, expect, fastmcp_unavailable, loop, measure, structured
from .tool import CALLS, SERVICE

# (key, what is timed, whether the comparison needs it; extras are skipped by --quick)
CANDIDATES = [
    ("http_client", "http.client keep-alive POST /mcp (floor)", True),
    ("httpx", "await httpx.AsyncClient.post(/mcp) (bare httpx, for comparison)", True),
    ("devenv", 'MCPClient(mode="http").call(...)', False),
    ("devenv_async", 'await MCPClient(mode="http").acall(...)', True),
    ("sdk", "await mcp.Client(url).call_tool(...)", True),
    ("fastmcp", "await fastmcp.Client(url).call_tool(...)", False),
]
LABELS = {key: label for key, label, _ in CANDIDATES}
SERVER = wire.Target("devenv", "devenv POST /mcp", "benchmarks.servers.devenv_mcp:app")


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """As user code points MCPClient at a server: DEVENV_URL_<NAME> (restored afterwards)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _raw(port: int, call: str) -> RunN:
    """The floor: one http.client connection posting the JSON-RPC body; the answer is parsed."""
    body, want = _body(call)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post() -> Any:
        conn.request("POST", "/mcp", body, wire.HEADERS)
        return json.loads(conn.getresponse().read())["result"]["structuredContent"]

    expect("http.client POST /mcp", post(), want)
    return loop(post)


def _body(call: str) -> tuple[bytes, Any]:
    tool, arguments, want = CALLS[call]
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    return json.dumps(message).encode(), {"result": want}


async def _httpx(client: Any, url: str, call: str) -> RunN:
    body, want = _body(call)

    async def post() -> Any:
        response = await client.post(url, content=body, headers=wire.HEADERS)
        return response.json()["result"]["structuredContent"]

    expect("httpx.AsyncClient.post", await post(), want)
    return aloop(post)


async def _run(port: int, budget: Budget, keys: set[str]) -> dict[str, Any]:
    from mcp import Client

    from devenv import MCPClient

    url = f"http://127.0.0.1:{port}"
    results: dict[str, dict[str, Any]] = {call: {} for call in CALLS}

    async def record(key: str, call: str, run_n: RunN) -> None:
        results[call][key] = {"label": LABELS[key], **await measure(run_n, budget)}

    if "http_client" in keys:
        for call in CALLS:
            await record("http_client", call, _raw(port, call))
    if "httpx" in keys:
        import httpx

        async with httpx.AsyncClient() as bare:
            for call in CALLS:
                await record("httpx", call, await _httpx(bare, f"{url}/mcp", call))
    with _environ(**{"DEVENV_URL_" + SERVICE.upper(): url}):
        client = MCPClient(mode="http")
        try:
            for call in CALLS:
                tool, arguments, want = CALLS[call]
                uri = f"{SERVICE}/{tool}"
                if "devenv" in keys:
                    # Sync call from inside a running loop: MCPClient runs it on its own portal thread.
                    expect("MCPClient.call", client.call(uri, arguments), want)
                    await record("devenv", call, loop(lambda u=uri, a=arguments: client.call(u, a)))
                if "devenv_async" in keys:
                    expect("MCPClient.acall", await client.acall(uri, arguments), want)
                    await record("devenv_async", call, aloop(lambda u=uri, a=arguments: client.acall(u, a)))
        finally:
            await client.aclose()
    if "sdk" in keys:
        async with Client(f"{url}/mcp") as sdk_client:
            for call in CALLS:
                tool, arguments, want = CALLS[call]
                expect("mcp.Client", structured(await sdk_client.call_tool(tool, arguments)), (False, {"result": want}))
                await record("sdk", call, aloop(lambda t=tool, a=arguments: sdk_client.call_tool(t, a)))
    if "fastmcp" in keys:
        reason = fastmcp_unavailable()
        if reason:
            for call in CALLS:
                results[call]["fastmcp"] = {"label": LABELS["fastmcp"], "skipped": reason}
        else:
            import fastmcp

            async with fastmcp.Client(f"{url}/mcp") as fast_client:
                for call in CALLS:
                    tool, arguments, want = CALLS[call]
                    got = structured(await fast_client.call_tool(tool, arguments))
                    expect("fastmcp.Client", got, (False, {"result": want}))
                    await record("fastmcp", call, aloop(lambda t=tool, a=arguments: fast_client.call_tool(t, a)))
    return results


def run(budget: Budget, plan: wire.Plan, *, extras: bool = True) -> dict[str, Any]:
    keys = {key for key, _, needed in CANDIDATES if needed or extras}
    with wire.clients_pinned(plan), wire.serve(SERVER, cpu=wire.server_cpu(plan)) as (port, _pid):
        wire.verify(port)
        return asyncio.run(_run(port, budget, keys))
