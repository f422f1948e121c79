"""Calls handlers in this process, through the same validation and JSON round-trip as the server."""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import InvalidArguments
from ..tools import Registry
from .base import Transport

__all__ = ["InProcessTransport"]


def _as_json(tool: str, arguments: Any) -> Any:
    # What a remote caller sends is JSON; a datetime or a model passed in-process must fail here too.
    try:
        return orjson.loads(orjson.dumps(arguments))
    except TypeError as exc:
        raise InvalidArguments(tool, [{"field": "", "message": str(exc), "type": "json_type"}]) from None


class InProcessTransport(Transport):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def call_tool(self, service: str, tool: str, arguments: dict[str, Any]) -> Any:
        return self.registry.get(service).get_tool(tool).run(_as_json(tool, arguments))

    async def acall_tool(self, service: str, tool: str, arguments: dict[str, Any]) -> Any:
        # Sync tools run inline, as a direct call would; the server is what moves them to threads.
        return await self.registry.get(service).get_tool(tool).arun(_as_json(tool, arguments), thread_sync=False)

    def list_tools(self, service: str) -> list[dict[str, Any]]:
        return [t.definition() for t in self.registry.get(service).tools.values()]

    async def alist_tools(self, service: str) -> list[dict[str, Any]]:
        return self.list_tools(service)

    # Resources, prompts and completion: the registry's Service answers the same JSON the wire
    # sends in its results (the wire adds only resultType and cache hints at 2026-07-28).

    def list_resources(self, service: str) -> list[dict[str, Any]]:
        return self.registry.get(service).list_resources()

    def list_resource_templates(self, service: str) -> list[dict[str, Any]]:
        return self.registry.get(service).list_resource_templates()

    def read_resource(self, service: str, uri: str) -> dict[str, Any]:
        return self.registry.get(service).read_resource(uri)

    async def aread_resource(self, service: str, uri: str) -> dict[str, Any]:
        return await self.registry.get(service).aread_resource(uri, thread_sync=False)

    def list_prompts(self, service: str) -> list[dict[str, Any]]:
        return self.registry.get(service).list_prompts()

    def get_prompt(self, service: str, name: str, arguments: dict[str, str] | None = None) -> dict[str, Any]:
        return self.registry.get(service).get_prompt(name, _as_json(name, arguments))

    async def aget_prompt(self, service: str, name: str, arguments: dict[str, str] | None = None) -> dict[str, Any]:
        return await self.registry.get(service).aget_prompt(name, _as_json(name, arguments), thread_sync=False)

    def complete(
        self, service: str, ref: dict[str, Any], argument: dict[str, Any], context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.registry.get(service).complete(ref, argument, context)
