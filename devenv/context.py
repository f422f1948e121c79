"""``Context``: what a tool may declare to report progress and send logs for the current call.

A tool that wants it names a parameter of type ``Context``; it is not part of the input
schema, devenv passes it in. Progress reaches the caller only when its request carried a
``progressToken``; logs only at or above the level the caller asked for. Otherwise both are
no-ops, so a tool can report freely and pay next to nothing when nobody listens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

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
    ``"elicitation/create"``) or raises.
    """

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]: ...


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

    async def request_input(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Ask the client for input with ``method`` and return its result."""
        if self._input is None:
            raise RuntimeError(f"{method}: this call has no channel back to its client")
        return await self._input.request(method, params)

    async def start_task(self) -> None:
        """Go on as a task: for a ``defer_task`` tool called by a client that declared the tasks
        extension, the client gets its ``CreateTaskResult`` now, and input asked for from here on
        goes through the task. Input asked for before came with the call (multi-round-trip).
        Anywhere else a no-op: the tool just runs on in its request."""
        start = getattr(self._input, "start_task", None)
        if start is not None:
            await start()
