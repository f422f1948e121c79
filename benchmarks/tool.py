"""The tools every candidate serves, so only the machinery around them differs.

``echo(x: int) -> int`` is the trivial tool: what a call costs when the tool costs nothing.
``total_years(job: Job) -> int`` takes a nested pydantic argument (a model holding a model
and a list of models): what argument validation adds.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

SERVICE = "bench"
TOOL = "echo"
ARGUMENTS = {"x": 1}
# What a correct tools/call returns as structuredContent (an int result is wrapped).
EXPECTED_STRUCTURED = {"result": 1}


def echo(x: int) -> int:
    return x


class Address(BaseModel):
    city: str
    country: str


class Company(BaseModel):
    name: str
    address: Address


class Skill(BaseModel):
    name: str
    years: int


class Job(BaseModel):
    title: str
    company: Company
    skills: list[Skill]


def total_years(job: Job) -> int:
    """Years of experience the job asks for, summed over its skills."""
    return sum(skill.years for skill in job.skills)


NESTED_TOOL = "total_years"
NESTED_ARGUMENTS = {
    "job": {
        "title": "Data engineer",
        "company": {"name": "Acme", "address": {"city": "Berlin", "country": "DE"}},
        "skills": [{"name": "python", "years": 5}, {"name": "sql", "years": 3}, {"name": "kubernetes", "years": 2}],
    }
}
NESTED_RESULT = 10

# key → (tool name, arguments, plain result): the in-process and client benchmarks run both.
CALLS = {
    "trivial": (TOOL, ARGUMENTS, 1),
    "nested": (NESTED_TOOL, NESTED_ARGUMENTS, NESTED_RESULT),
}


def devenv_service() -> Any:
    from devenv import Service

    service = Service(SERVICE)
    service.tool(echo)
    service.tool(total_years)
    return service


def sdk_server(log_level: str = "INFO") -> Any:
    """``MCPServer`` with the same tools. INFO is the SDK's default; it logs every request via rich."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(SERVICE, log_level=log_level)
    server.tool()(echo)
    server.tool()(total_years)
    return server


def fastmcp_server() -> Any:
    """FastMCP's server with the same tools (``ImportError`` when FastMCP is not installed)."""
    from fastmcp import FastMCP

    server = FastMCP(SERVICE)
    server.tool(echo)
    server.tool(total_years)
    return server


async def async_echo(x: int) -> int:
    return x


def devenv_async_service() -> Any:
    """The same tool as a coroutine: devenv's server awaits it instead of hopping to a worker thread."""
    from devenv import Service

    service = Service(SERVICE)
    service.tool(async_echo, name=TOOL)
    return service
