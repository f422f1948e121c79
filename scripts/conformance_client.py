"""A client program for the official conformance suite's client scenarios, built on MCPClient.

The suite starts it as ``python scripts/conformance_client.py URL`` with the scenario in
``MCP_CONFORMANCE_SCENARIO`` and, for some, the calls to make in ``MCP_CONFORMANCE_CONTEXT``
(``{"toolCalls": [{"name": ..., "arguments": {...}}]}``). It does what a tools client does:
list the server's tools, call them (with the given arguments, else ones made from each
tool's input schema), answer elicitation, and exercise resources and prompts when offered.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from devenv import MCPClient
from devenv.errors import DevenvError
from devenv.transports.http import HTTPTransport

SERVICE = "conformance-target"


def sample(schema: dict[str, Any]) -> Any:
    """A value that fits a (simple) JSON Schema: enough for the suite's test tools."""
    kind = schema.get("type")
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        return {name: sample(sub) for name, sub in (schema.get("properties") or {}).items() if isinstance(sub, dict)}
    return {"integer": 1, "number": 1, "boolean": True, "array": [], "null": None}.get(kind, "test")


def elicit(params: dict[str, Any]) -> dict[str, Any]:
    """Answer every elicitation by accepting, with values that fit the requested schema."""
    return sample(params.get("requestedSchema") or {"type": "object"})


async def run(url: str, scenario: str, context: dict[str, Any]) -> None:
    transport = HTTPTransport(resolve=lambda service: url, retries=0, timeout=20)
    client = MCPClient(transport=transport, on_elicit=elicit)
    try:
        tools = {tool["name"]: tool for tool in await client.alist_tools(SERVICE)}
        calls = context.get("toolCalls") or [
            {"name": name, "arguments": sample(tool.get("inputSchema") or {})} for name, tool in tools.items()
        ]
        for call in calls:
            if call["name"] not in tools:
                print(f"skipping {call['name']}: not in tools/list (left out or unknown)", file=sys.stderr)
                continue
            try:
                result = await client.acall(f"{SERVICE}/{call['name']}", call.get("arguments") or {})
                print(f"{call['name']} -> {result!r}")
            except DevenvError as exc:
                print(f"{call['name']} failed: {exc}", file=sys.stderr)
        capabilities = transport._servers[SERVICE].discovered.get("capabilities") or {}
        if "resources" in capabilities or scenario == "http-standard-headers":
            await _try(
                client.alist_resources(SERVICE),
                "resources/list",
                lambda r: r and client.aread_resource(SERVICE, r[0]["uri"]),
            )
        if "prompts" in capabilities or scenario == "http-standard-headers":
            await _try(
                client.alist_prompts(SERVICE), "prompts/list", lambda p: p and client.aget_prompt(SERVICE, p[0]["name"])
            )
    finally:
        await client.aclose()


async def _try(listing: Any, what: str, then: Any) -> None:
    try:
        items = await listing
        follow = then(items)
        if follow:
            print(f"{what}: {await follow!r}")
    except DevenvError as exc:
        print(f"{what} failed: {exc}", file=sys.stderr)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].startswith(("http://", "https://")):
        print("usage: conformance_client.py SERVER_URL  (the suite passes the URL)", file=sys.stderr)
        return 2
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    asyncio.run(run(argv[1], scenario, context))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
