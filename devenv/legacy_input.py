"""Input from a legacy (MCP 2025-*) client: a server-to-client request on the call's SSE stream.

A tool's ``await ctx.elicit(...)`` / ``ctx.sample(...)`` / ``ctx.list_roots()`` becomes a JSON-RPC
request (``elicitation/create``, ``sampling/createMessage``, ``roots/list``) written on the
stream that will carry the call's answer; the client answers with a separate POST in the same
session, which ``deliver`` hands to the waiting tool. A client that never answers fails the
tool after ``DEVENV_INPUT_TIMEOUT`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .context import CAPABILITY_OF
from .errors import CapabilityMissing
from .sessions import LegacySession

__all__ = ["InputRefused", "InputTimedOut", "LegacyInputChannel", "deliver"]

Send = Callable[[dict[str, Any]], None]


class InputTimedOut(TimeoutError):
    """The client never answered a request for input."""


class InputRefused(RuntimeError):
    """The client answered a request for input with a JSON-RPC error."""


class LegacyInputChannel:
    """``InputChannel`` for one tools/call of a legacy session; ``send`` writes on that call's stream."""

    def __init__(self, session: LegacySession, send: Send, timeout: float) -> None:
        self.session = session
        self._send = send
        self.timeout = timeout

    def supports(self, capability: str) -> bool:
        return capability in self.session.client_capabilities

    async def request(self, method: str, params: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """Send ``method`` to the client and return its result. ``key`` means nothing on this wire:
        each request is answered before the tool goes on."""
        capability = CAPABILITY_OF.get(method)
        if capability is not None and not self.supports(capability):  # Context checks too; this is the wire's guard
            raise CapabilityMissing(method, capability, "the client did not declare it at initialize")
        request_id = self.session.next_request_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.session.pending[request_id] = future
        try:
            self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            try:
                reply = await asyncio.wait_for(future, self.timeout)
            except TimeoutError:
                raise InputTimedOut(
                    f"the client did not answer {method} within {self.timeout:g} s (DEVENV_INPUT_TIMEOUT)"
                ) from None
        finally:
            self.session.pending.pop(request_id, None)
        if "error" in reply:
            error = reply["error"] if isinstance(reply["error"], dict) else {}
            raise InputRefused(
                f"the client refused {method}: {error.get('message', 'no message')} (JSON-RPC {error.get('code')})"
            )
        result = reply.get("result")
        if not isinstance(result, dict):
            raise InputRefused(f"the client's answer to {method} is not an object: {result!r}")
        return result


def deliver(session: LegacySession, message: dict[str, Any]) -> str | None:
    """Hand a client's JSON-RPC response to the tool waiting for it; what is wrong, if nobody waits."""
    request_id = message.get("id")
    future = session.pending.get(request_id) if isinstance(request_id, str) else None
    if future is None:
        return f"no request with id {request_id!r} is waiting for an answer in this session"
    if "result" in message and "error" in message:
        return 'a JSON-RPC response has "result" or "error", not both'
    if not future.done():
        future.set_result(message)
    return None
