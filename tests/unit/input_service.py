"""Tools that ask their client for input (elicitation, sampling, roots), written twice: once
as a devenv service, once on the official SDK's MCPServer. The client tests call both and
expect the same answers from each, in-process and over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Elicit, ListRoots, MCPServer, Resolve, Sample
from mcp_types import ListRootsResult, SamplingMessage, TextContent
from pydantic import BaseModel

from devenv import Context, Service

QUESTION = "Who are you?"
NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
ASK_NAME = {"mode": "form", "message": QUESTION, "requestedSchema": NAME_SCHEMA}


def ask(ctx: Context, method: str, params: dict[str, Any]) -> Any:
    return ctx.request_input(method, params)


def make_service() -> Service:
    service = Service("asker")

    @service.tool()
    async def greet(ctx: Context) -> str:
        reply = await ask(ctx, "elicitation/create", ASK_NAME)
        return f"hello {reply['content']['name']}" if reply["action"] == "accept" else f"no name ({reply['action']})"

    @service.tool()
    async def summarize(text: str, ctx: Context) -> str:
        message = {"role": "user", "content": {"type": "text", "text": f"Summarize: {text}"}}
        result = await ask(ctx, "sampling/createMessage", {"messages": [message], "maxTokens": 50})
        return result["content"]["text"]

    @service.tool()
    async def workspace(ctx: Context) -> str:
        result = await ask(ctx, "roots/list", {})
        return " ".join(root["uri"] for root in result["roots"])

    @service.tool()
    async def stubborn(ctx: Context) -> str:
        """Asks, and carries on whatever the answer was (even a failure of the caller's callback)."""
        try:
            await ask(ctx, "elicitation/create", ASK_NAME)
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
