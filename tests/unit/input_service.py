"""Tools that ask their client for input (elicitation, sampling, roots), written twice: once
as a devenv service (``ctx.elicit`` / ``ctx.sample`` / ``ctx.list_roots``), once on the official
SDK's MCPServer. The client tests call both and expect the same answers from each, in-process
and over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Elicit, ListRoots, MCPServer, Resolve, Sample
from mcp_types import ListRootsResult, SamplingMessage, TextContent
from pydantic import BaseModel

from devenv import Context, Service

QUESTION = "Who are you?"
NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def make_service() -> Service:
    service = Service("asker")

    @service.tool()
    async def greet(ctx: Context) -> str:
        reply = await ctx.elicit(QUESTION, NAME_SCHEMA)
        return f"hello {reply['content']['name']}" if reply["action"] == "accept" else f"no name ({reply['action']})"

    @service.tool()
    async def summarize(text: str, ctx: Context) -> str:
        return (await ctx.sample(f"Summarize: {text}", max_tokens=50))["content"]["text"]

    @service.tool()
    async def workspace(ctx: Context) -> str:
        return " ".join(root["uri"] for root in await ctx.list_roots())

    @service.tool()
    def declared(ctx: Context) -> list[str]:
        return [kind for kind in ("elicitation", "sampling", "roots") if ctx.supports(kind)]

    @service.tool()
    async def stubborn(ctx: Context) -> str:
        """Asks, and carries on whatever the answer was (even a failure of the caller's callback)."""
        try:
            await ctx.elicit(QUESTION, NAME_SCHEMA)
        except Exception:
            pass
        return "carried on"

    return service


class Name(BaseModel):
    name: str


def _ask_name() -> Elicit[Name]:
    return Elicit(QUESTION, Name)


def _ask_llm(text: str) -> Sample:
    message = SamplingMessage(role="user", content=TextContent(type="text", text=f"Summarize: {text}"))
    return Sample([message], max_tokens=50)


def _ask_roots() -> ListRoots:
    return ListRoots()


def make_sdk_server() -> MCPServer:
    server = MCPServer("asker")

    @server.tool()
    def greet(who: Annotated[Name, Resolve(_ask_name)]) -> str:
        return f"hello {who.name}"

    @server.tool()
    def summarize(text: str, sampled: Annotated[Any, Resolve(_ask_llm)]) -> str:
        return sampled.content.text

    @server.tool()
    def workspace(roots: Annotated[ListRootsResult, Resolve(_ask_roots)]) -> str:
        return " ".join(str(root.uri) for root in roots.roots)

    return server
