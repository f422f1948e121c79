"""``Context``: what a tool may declare to report progress, send logs and ask its client for input.

A tool that wants it names a parameter of type ``Context``; it is not part of the input
schema, devenv passes it in. Progress reaches the caller only when its request carried a
``progressToken``; logs only at or above the level the caller asked for. Otherwise both are
no-ops, so a tool can report freely and pay next to nothing when nobody listens.

Input (``await ctx.elicit(...)``, ``ctx.sample(...)``, ``ctx.list_roots()``) goes through the
call's ``InputChannel``; ask only for what ``ctx.supports(...)`` says the client declared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .errors import CapabilityMissing

__all__ = ["LOG_LEVELS", "Context", "InputChannel"]

#: RFC 5424 severities, least severe first, as MCP names them.
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
_RANK = {level: rank for rank, level in enumerate(LOG_LEVELS)}

Sink = Callable[[dict[str, Any]], None]


class InputChannel(Protocol):
    """How one call asks its client for input (elicitation, sampling, roots).

    Each era of the protocol has its own: at 2026-07-28 a multi-round-trip result the client
    answers by retrying the call; at 2025-06-18 / 2025-11-25 a server-to-client request on the
    call's own SSE stream. ``request`` returns the client's result for ``method`` (e.g.
    ``"elicitation/create"``) or raises; ``key`` is the tool's name for the request (the key of
    ``inputRequests`` at 2026-07-28), None to let the channel choose. ``supports`` says whether the
    client declared a capability (``"elicitation"``, ``"sampling"``, ``"roots"``).
    """

    async def request(self, method: str, params: dict[str, Any], key: str | None) -> dict[str, Any]: ...

    def supports(self, capability: str) -> bool: ...


#: Each input method, the client capability it needs.
CAPABILITY_OF = {"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}
_ELICIT_ACTIONS = ("accept", "decline", "cancel")


def check_input_result(method: str, result: Any) -> str | None:
    """What is wrong with a client's ``result`` for ``method`` (None when it has the right shape)."""
    if not isinstance(result, dict):
        return f"must be an object, got {type(result).__name__}"
    if method == "elicitation/create":
        if result.get("action") not in _ELICIT_ACTIONS:
            return f'must be an ElicitResult: "action" is one of {", ".join(_ELICIT_ACTIONS)}'
        if "content" in result and not isinstance(result["content"], dict):
            return 'must be an ElicitResult: "content" is an object'
    elif method == "sampling/createMessage":
        if result.get("role") not in ("user", "assistant") or not isinstance(result.get("content"), (dict, list)):
            return 'must be a CreateMessageResult: "role" and "content"'
    elif method == "roots/list":
        roots = result.get("roots")
        if not isinstance(roots, list) or not all(isinstance(r, dict) and isinstance(r.get("uri"), str) for r in roots):
            return 'must be a ListRootsResult: "roots", a list of objects with a "uri"'
    return None


def check_level(level: Any) -> str:
    if level not in _RANK:
        raise ValueError(f"unknown log level {level!r}; one of {', '.join(LOG_LEVELS)}")
    return level


class Context:
    """One call's channel back to its caller.

    ``sink`` receives each JSON-RPC notification (``notifications/progress``,
    ``notifications/message``); it must be safe to call from a worker thread, as sync tools
    run in one. Without a sink, or without a token / log level, nothing is sent.
    """

    __slots__ = ("_input", "_last_progress", "_min_rank", "_sink", "log_level", "progress_token")

    def __init__(
        self,
        *,
        progress_token: str | int | None = None,
        log_level: str | None = None,
        sink: Sink | None = None,
        input_channel: InputChannel | None = None,
    ) -> None:
        if progress_token is not None and (
            isinstance(progress_token, bool) or not isinstance(progress_token, (str, int))
        ):
            raise ValueError(f"a progressToken is a string or an integer, got {progress_token!r}")
        self.progress_token = progress_token
        self.log_level = None if log_level is None else check_level(log_level)
        self._min_rank = len(LOG_LEVELS) if log_level is None else _RANK[log_level]
        self._sink = sink
        self._input = input_channel
        self._last_progress: float | None = None

    @property
    def streams(self) -> bool:
        """Whether anything this context reports reaches a caller."""
        return self._sink is not None and (self.progress_token is not None or self.log_level is not None)

    def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Report ``progress`` (of ``total``, if known); each report must be larger than the last."""
        if isinstance(progress, bool) or not isinstance(progress, (int, float)):
            raise TypeError(f"progress must be a number, got {progress!r}")
        if total is not None and (isinstance(total, bool) or not isinstance(total, (int, float))):
            raise TypeError(f"total must be a number or None, got {total!r}")
        if self._last_progress is not None and progress <= self._last_progress:
            raise ValueError(f"progress must increase with each report: {progress} after {self._last_progress}")
        self._last_progress = progress
        if self._sink is None or self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = str(message)
        self._sink({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})

    def log(self, level: str, data: Any, logger: str | None = None) -> None:
        """Send a log message (any JSON value) at ``level``, if the caller asked for that level."""
        if _RANK.get(level, -1) < self._min_rank:
            check_level(level)  # a typo in the level fails even when nobody listens
            return
        if self._sink is None:
            return
        params: dict[str, Any] = {"level": level, "data": data}
        if logger is not None:
            params["logger"] = logger
        self._sink({"jsonrpc": "2.0", "method": "notifications/message", "params": params})

    def debug(self, data: Any, logger: str | None = None) -> None:
        self.log("debug", data, logger)

    def info(self, data: Any, logger: str | None = None) -> None:
        self.log("info", data, logger)

    def warning(self, data: Any, logger: str | None = None) -> None:
        self.log("warning", data, logger)

    def error(self, data: Any, logger: str | None = None) -> None:
        self.log("error", data, logger)

    # Input from the client. One seam, ``InputChannel.request``; each era brings its channel.

    def supports(self, capability: str) -> bool:
        """Whether the client declared ``capability`` (``"elicitation"``, ``"sampling"``, ``"roots"``)."""
        return self._input is not None and self._input.supports(capability)

    async def request_input(self, method: str, params: dict[str, Any], *, key: str | None = None) -> dict[str, Any]:
        """Ask the client for input with ``method`` and return its result, checked for shape.

        Raises ``CapabilityMissing`` when the client did not declare what ``method`` needs.
        """
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError(f"an input key is a non-empty string, got {key!r}")
        capability = CAPABILITY_OF.get(method)
        if capability is None:
            raise ValueError(f"{method!r} is not an input request; one of {', '.join(CAPABILITY_OF)}")
        if not self.supports(capability):
            why = "the client did not declare it" if self._input else "this call has no channel back to its client"
            raise CapabilityMissing(method, capability, why)
        result = await self._input.request(method, params, key)  # type: ignore[union-attr]
        wrong = check_input_result(method, result)
        if wrong is not None:
            raise ValueError(f"the client's answer to {method} {wrong}")
        return result

    async def elicit(self, message: str, schema: Any = None, *, key: str | None = None) -> dict[str, Any]:
        """Ask the user, through the client, to fill a form; the ElicitResult (``action``, ``content``).

        ``schema`` is a JSON Schema object of flat properties, or a pydantic model class.
        """
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, got {type(message).__name__}")
        if schema is None:
            schema = {"type": "object", "properties": {}}
        elif isinstance(schema, type) and hasattr(schema, "model_json_schema"):
            schema = schema.model_json_schema()
        elif not isinstance(schema, dict):
            raise TypeError(f"schema must be a JSON Schema dict or a pydantic model class, got {schema!r}")
        params = {"mode": "form", "message": message, "requestedSchema": schema}
        return await self.request_input("elicitation/create", params, key=key)

    async def sample(
        self,
        messages: str | list[dict[str, Any]],
        *,
        max_tokens: int,
        system_prompt: str | None = None,
        key: str | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Ask the client's model for a completion; the CreateMessageResult.

        ``messages`` is one user text, or SamplingMessage dicts; ``params`` go through as they are
        (``modelPreferences``, ``temperature``, ``stopSequences`` ...).
        """
        if isinstance(messages, str):
            messages = [{"role": "user", "content": {"type": "text", "text": messages}}]
        elif not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise TypeError("messages must be a str or a list of SamplingMessage dicts")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        request: dict[str, Any] = {"messages": messages, "maxTokens": max_tokens, **params}
        if system_prompt is not None:
            request["systemPrompt"] = system_prompt
        return await self.request_input("sampling/createMessage", request, key=key)

    async def list_roots(self, *, key: str | None = None) -> list[dict[str, Any]]:
        """The client's roots (``{"uri": "file:///...", "name": ...}``)."""
        return (await self.request_input("roots/list", {}, key=key))["roots"]

    async def start_task(self) -> None:
        """Go on as a task: for a ``defer_task`` tool called by a client that declared the tasks
        extension, the client gets its ``CreateTaskResult`` now, and input asked for from here on
        goes through the task. Input asked for before came with the call (multi-round-trip).
        Anywhere else a no-op: the tool just runs on in its request."""
        start = getattr(self._input, "start_task", None)
        if start is not None:
            await start()
