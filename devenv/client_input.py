"""The caller's answers to a server's requests for input: elicitation, sampling and roots.

MCPClient takes one callback per kind, per call or as the client's defaults. ``ClientInput``
holds one call's set: it declares exactly the capabilities it can answer (what the client
puts in ``_meta`` clientCapabilities) and turns each callback's return value into the result
the protocol expects, refusing one of the wrong shape with the callback's name. Both
transports use it: over HTTP it answers an InputRequiredResult's ``inputRequests``; in-process
``channel()`` is the tool Context's InputChannel, so a tool that asks gets the same answers.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from .errors import CapabilityMissing, ProtocolError

__all__ = ["ClientInput", "InputCallbackChannel", "NO_INPUT", "missing"]

ElicitCallback = Callable[[dict[str, Any]], Any]
SampleCallback = Callable[[dict[str, Any]], Any]
RootsCallback = Callable[[], Any]

#: method → (capability, the argument that answers it)
METHODS = {
    "elicitation/create": ("elicitation", "on_elicit"),
    "sampling/createMessage": ("sampling", "on_sample"),
    "roots/list": ("roots", "roots= or on_list_roots"),
}
_DECLARED = {"elicitation": {"form": {}}, "sampling": {}, "roots": {}}
_METHOD_OF = {capability: method for method, (capability, _) in METHODS.items()}


def missing(capability: str, why: str = "this call has no callback for it") -> CapabilityMissing:
    """The error for input the call cannot give, naming the callback that would."""
    method = _METHOD_OF.get(capability, capability)
    argument = METHODS[method][1] if method in METHODS else "a callback"
    return CapabilityMissing(method, capability, f"{why}: pass {argument}= to MCPClient or to the call")


class ClientInput:
    """One call's input callbacks. ``roots`` is a fixed list; ``on_list_roots()`` computes it."""

    __slots__ = ("capabilities", "metas", "on_elicit", "on_list_roots", "on_sample")

    def __init__(
        self,
        *,
        on_elicit: ElicitCallback | None = None,
        on_sample: SampleCallback | None = None,
        roots: list[Any] | None = None,
        on_list_roots: RootsCallback | None = None,
    ) -> None:
        for name, callback in (("on_elicit", on_elicit), ("on_sample", on_sample), ("on_list_roots", on_list_roots)):
            if callback is not None and not callable(callback):
                raise TypeError(f"{name} must be callable, got {type(callback).__name__}")
        if roots is not None:
            if on_list_roots is not None:
                raise ValueError("pass roots= (a fixed list) or on_list_roots= (a callback), not both")
            fixed = _roots_result(roots, "roots")  # checked now, when the mistake is made
            on_list_roots = lambda: fixed["roots"]  # noqa: E731
        self.on_elicit, self.on_sample, self.on_list_roots = on_elicit, on_sample, on_list_roots
        # Built once: the transports send it as is with every request.
        self.capabilities = {
            capability: _DECLARED[capability]
            for capability, callback in (("elicitation", on_elicit), ("sampling", on_sample), ("roots", on_list_roots))
            if callback is not None
        }
        self.metas: dict[str, dict[str, Any]] = {}  # the HTTP transport's _meta per protocol version

    def over(self, defaults: ClientInput) -> ClientInput:
        """These callbacks, with ``defaults`` filling the kinds this call did not set."""
        merged = ClientInput.__new__(ClientInput)
        merged.on_elicit = self.on_elicit or defaults.on_elicit
        merged.on_sample = self.on_sample or defaults.on_sample
        merged.on_list_roots = self.on_list_roots or defaults.on_list_roots
        merged.capabilities = {**defaults.capabilities, **self.capabilities}
        merged.metas = {}
        return merged

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    def answer(self, method: Any, params: dict[str, Any], who: str = "this call") -> Any:
        """The result for ``method``, or an awaitable of it when the callback is async."""
        if method not in METHODS:
            raise ProtocolError(
                f"{who}: the server asked for {method!r}, which MCPClient does not answer"
                f" (it answers {', '.join(METHODS)})"
            )
        capability, _ = METHODS[method]
        if not self.supports(capability):
            raise missing(capability, f"{who} asked for it, and this call has no callback for it")
        if method == "elicitation/create":
            reply, shape = self.on_elicit(params), _elicit_result  # type: ignore[misc]
        elif method == "sampling/createMessage":
            reply, shape = self.on_sample(params), _sample_result  # type: ignore[misc]
        else:
            reply, shape = self.on_list_roots(), _roots_result  # type: ignore[misc]
        if inspect.isawaitable(reply):
            return _Later(reply, shape)
        return shape(reply)

    def channel(self, *, sync: bool) -> InputCallbackChannel:
        return InputCallbackChannel(self, sync=sync)


NO_INPUT = ClientInput()


class InputCallbackChannel:
    """The InputChannel of an in-process call: the tool's request goes to the caller's callback.

    What passes is JSON round-tripped, as over the wire. A callback's failure (it raised,
    returned the wrong shape, or is missing) is kept in ``failure``: the transport raises it
    to the caller after the tool, as HTTP would, whatever the tool made of it.
    """

    __slots__ = ("_answers", "_sync", "failure")

    def __init__(self, answers: ClientInput, *, sync: bool) -> None:
        self._answers, self._sync = answers, sync
        self.failure: BaseException | None = None

    def supports(self, capability: str) -> bool:
        return self._answers.supports(capability)

    async def request(self, method: str, params: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        try:
            reply = self._answers.answer(method, orjson.loads(orjson.dumps(params)))
            if inspect.isawaitable(reply):
                if self._sync:
                    reply.close()  # type: ignore[union-attr]  # never awaited: say why instead
                    raise TypeError(f"an async callback for {method} needs the async call: use acall / await")
                reply = await reply
            return orjson.loads(orjson.dumps(reply))
        except BaseException as exc:
            if self.failure is None:
                self.failure = exc
            raise


class _Later:
    """An async callback's reply, shaped once awaited; ``close()`` drops it unawaited (a sync call)."""

    __slots__ = ("_reply", "_shape")

    def __init__(self, reply: Awaitable[Any], shape: Callable[[Any], dict[str, Any]]) -> None:
        self._reply, self._shape = reply, shape

    def __await__(self) -> Any:
        return self._finish().__await__()

    async def _finish(self) -> dict[str, Any]:
        return self._shape(await self._reply)

    def close(self) -> None:
        close = getattr(self._reply, "close", None)
        if close is not None:
            close()


def _elicit_result(reply: Any) -> dict[str, Any]:
    """``on_elicit`` may return an ElicitResult, the content alone (accept), or None (decline)."""
    if reply is None:
        return {"action": "decline"}
    if isinstance(reply, dict) and reply.get("action") in ("accept", "decline", "cancel"):
        return reply
    if isinstance(reply, dict) and "action" not in reply:
        return {"action": "accept", "content": reply}
    raise TypeError(
        "on_elicit must return a dict (the answers), an ElicitResult ({'action': 'accept'|'decline'|'cancel', ...})"
        f" or None, got {_show(reply)}"
    )


def _sample_result(reply: Any) -> dict[str, Any]:
    """``on_sample`` returns a CreateMessageResult, or a str (the assistant's text)."""
    if isinstance(reply, str):
        return {"role": "assistant", "content": {"type": "text", "text": reply}, "model": "unknown"}
    if (
        isinstance(reply, dict)
        and isinstance(reply.get("content"), (dict, list))
        and isinstance(reply.get("model"), str)
        and reply.get("role", "assistant") == "assistant"
    ):
        return {"role": "assistant", **reply}
    raise TypeError(
        "on_sample must return a CreateMessageResult ({'role': 'assistant', 'content': {...}, 'model': str})"
        f" or a str, got {_show(reply)}"
    )


def _roots_result(reply: Any, name: str = "on_list_roots") -> dict[str, Any]:
    """Roots are ``{"uri": "file://...", "name"?: str}`` dicts, or their URIs alone."""
    if not isinstance(reply, (list, tuple)):
        raise TypeError(f"{name} must be a list of roots (file:// URIs or {{'uri': ...}} dicts), got {_show(reply)}")
    roots = []
    for root in reply:
        if isinstance(root, str):
            root = {"uri": root}
        if not isinstance(root, dict) or not isinstance(root.get("uri"), str):
            raise TypeError(f"{name}: each root is a file:// URI or a {{'uri': ...}} dict, got {_show(root)}")
        if not root["uri"].startswith("file://"):
            raise ValueError(f"{name}: a root's uri must start with file://, got {root['uri']!r}")
        roots.append(root)
    return {"roots": roots}


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:80]}"
