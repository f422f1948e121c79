"""Calls handlers in this process, through the same validation and JSON round-trip as the server."""

from __future__ import annotations

from typing import Any

import orjson

from ..client_input import InputCallbackChannel, missing
from ..context import Context
from ..errors import CapabilityMissing, InvalidArguments
from ..tools import Registry
from .base import Transport

__all__ = ["InProcessTransport"]


def _as_json(tool: str, arguments: Any) -> Any:
    # What a remote caller sends is JSON; a datetime or a model passed in-process must fail here too.
    try:
        return orjson.loads(orjson.dumps(arguments))
    except TypeError as exc:
        raise InvalidArguments(tool, [{"field": "", "message": str(exc), "type": "json_type"}]) from None


def _call_context(options: Any, *, sync: bool) -> tuple[Context, InputCallbackChannel | None]:
    """The Context of a tool that declares one: MCPClient's progress callback and input answers."""
    on_progress = getattr(options, "on_progress", None)
    answers = getattr(options, "answers", None)
    channel = None if answers is None else answers.channel(sync=sync)
    sink = None
    if on_progress is not None:

        def sink(message: dict[str, Any]) -> None:
            if message.get("method") == "notifications/progress":
                params = message["params"]
                on_progress(params.get("progress"), params.get("total"), params.get("message"))

    token = "in-process" if on_progress is not None else None
    return Context(progress_token=token, sink=sink, input_channel=channel), channel


def _caller_failure(channel: InputCallbackChannel | None) -> None:
    # A callback that failed fails the call, as over HTTP, whatever the tool did with the error.
    if channel is not None and channel.failure is not None:
        raise channel.failure


class InProcessTransport(Transport):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def call_tool(
        self, service: str, tool: str, arguments: dict[str, Any], options: Any = None, *, context: Context | None = None
    ) -> Any:
        """``context`` (a ``Context`` with a sink) receives the tool's progress and log messages;
        without one, MCPClient's ``options`` give the tool's Context its progress callback and
        the answers to its input requests."""
        found = self.registry.get(service).get_tool(tool)
        channel = None
        if context is None and found.context_param is not None:
            context, channel = _call_context(options, sync=True)
        try:
            return found.run(_as_json(tool, arguments), context=context)
        except CapabilityMissing as exc:
            raise missing(exc.capability) from None  # as over HTTP: name the callback to pass
        finally:
            _caller_failure(channel)

    async def acall_tool(
        self, service: str, tool: str, arguments: dict[str, Any], options: Any = None, *, context: Context | None = None
    ) -> Any:
        # Sync tools run inline, as a direct call would; the server is what moves them to threads.
        found = self.registry.get(service).get_tool(tool)
        channel = None
        if context is None and found.context_param is not None:
            context, channel = _call_context(options, sync=False)
        try:
            return await found.arun(_as_json(tool, arguments), thread_sync=False, context=context)
        except CapabilityMissing as exc:
            raise missing(exc.capability) from None
        finally:
            _caller_failure(channel)

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

    # MCPClient's generic entry points (the HTTP transport's shape), mapped onto the above.

    def list_all(self, service: str, method: str, key: str) -> list[dict[str, Any]]:
        listing = {"resources/list": self.list_resources, "prompts/list": self.list_prompts}
        return listing[method](service)

    async def alist_all(self, service: str, method: str, key: str) -> list[dict[str, Any]]:
        return self.list_all(service, method, key)

    def request(self, service: str, method: str, params: dict[str, Any], options: Any = None) -> dict[str, Any]:
        if method == "resources/read":
            return self.read_resource(service, params["uri"])
        # A prompt may ask for input too: it gets the call's answers, as a tool does.
        prompt = self.registry.get(service).get_prompt_spec(params["name"])
        arguments = _as_json(params["name"], params.get("arguments"))
        context, channel = _call_context(options, sync=True) if prompt.context_param else (None, None)
        try:
            return prompt.render(arguments, context=context)
        except CapabilityMissing as exc:
            raise missing(exc.capability) from None
        finally:
            _caller_failure(channel)

    async def arequest(self, service: str, method: str, params: dict[str, Any], options: Any = None) -> dict[str, Any]:
        if method == "resources/read":
            return await self.aread_resource(service, params["uri"])
        prompt = self.registry.get(service).get_prompt_spec(params["name"])
        arguments = _as_json(params["name"], params.get("arguments"))
        context, channel = _call_context(options, sync=False) if prompt.context_param else (None, None)
        try:
            return await prompt.arender(arguments, thread_sync=False, context=context)
        except CapabilityMissing as exc:
            raise missing(exc.capability) from None
        finally:
            _caller_failure(channel)
