"""The one trivial tool every candidate serves, so only the machinery around it differs."""

from __future__ import annotations

from typing import Any

SERVICE = "bench"
TOOL = "echo"
ARGUMENTS = {"x": 1}
# What a correct tools/call returns as structuredContent (an int result is wrapped).
EXPECTED_STRUCTURED = {"result": 1}


def echo(x: int) -> int:
    return x


def devenv_service() -> Any:
    from devenv import Service

    service = Service(SERVICE)
    service.tool(echo)
    return service


def sdk_server(log_level: str = "INFO") -> Any:
    """``MCPServer`` with the same tool. INFO is the SDK's default; it logs every request via rich."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(SERVICE, log_level=log_level)
    server.tool()(echo)
    return server


async def async_echo(x: int) -> int:
    return x


def devenv_async_service() -> Any:
    """The same tool as a coroutine: devenv's server awaits it instead of hopping to a worker thread."""
    from devenv import Service

    service = Service(SERVICE)
    service.tool(async_echo, name=TOOL)
    return service
