"""Sessions for legacy (MCP 2025-06-18 / 2025-11-25) clients, kept in this process's memory.

2026-07-28 needs none; a 2025 client needs one for what only works across requests: answering a
server-to-client request (elicitation, sampling, roots) with a separate POST, and hearing about
the resources it subscribed to on its GET stream. ``initialize`` opens one (``Mcp-Session-Id``);
the store is bounded (``DEVENV_MAX_SESSIONS``) and forgets a session left unused for
``DEVENV_SESSION_IDLE_TIMEOUT`` seconds. The state lives in one process, so several replicas
need session affinity in front of them.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["LegacySession", "SessionStore"]

# Updates kept for a session whose GET stream is not open (yet); the oldest go first.
_BACKLOG = 100


class LegacySession:
    """One client's state: what it declared at ``initialize``, its pending input requests, its
    resource subscriptions, and the stream its notifications go to."""

    def __init__(
        self,
        session_id: str,
        protocol_version: str,
        client_capabilities: dict[str, Any],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = session_id
        self.protocol_version = protocol_version
        self.client_capabilities = client_capabilities
        self._clock = clock
        self.last_used = clock()
        #: Input requests sent to the client, by JSON-RPC id, awaiting its answer.
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.subscriptions: set[str] = set()
        self._next_request = 0
        self._stream: tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any] | None]] | None = None
        self._backlog: deque[dict[str, Any]] = deque(maxlen=_BACKLOG)

    def next_request_id(self) -> str:
        self._next_request += 1
        return f"devenv-{self._next_request}"

    @property
    def busy(self) -> bool:
        """A request waits on the client, or its GET stream is open: not idle, however long ago it spoke."""
        return bool(self.pending) or self._stream is not None

    # -- the GET stream ---------------------------------------------------------------------

    def open_stream(self) -> asyncio.Queue[dict[str, Any] | None] | None:
        """The queue a new GET stream reads, pre-filled with what came while none was open; None when
        one is open already (a message goes to one stream only)."""
        if self._stream is not None:
            return None
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        while self._backlog:
            queue.put_nowait(self._backlog.popleft())
        self._stream = (asyncio.get_running_loop(), queue)
        return queue

    def close_stream(self, queue: asyncio.Queue[Any]) -> None:
        if self._stream is not None and self._stream[1] is queue:
            self._stream = None
            self.last_used = self._clock()

    def notify(self, message: dict[str, Any]) -> None:
        """Send ``message`` on the GET stream (kept for it while none is open). Any thread may call it."""
        stream = self._stream
        if stream is None:
            self._backlog.append(message)
            return
        loop, queue = stream
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            queue.put_nowait(message)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, message)

    def end(self) -> None:
        """Close the GET stream and fail what waits on the client: the session is over."""
        if self._stream is not None:
            loop, queue = self._stream
            loop.call_soon_threadsafe(queue.put_nowait, None)
            self._stream = None
        for future in self.pending.values():
            if not future.done():
                future.get_loop().call_soon_threadsafe(_fail_if_waiting, future)
        self.pending.clear()


def _fail_if_waiting(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(ConnectionResetError("the client ended its session before answering"))


class SessionStore:
    """The sessions of one server process, at most ``max_sessions``, each forgotten after
    ``idle_timeout`` seconds unused (unless it is busy)."""

    def __init__(self, max_sessions: int, idle_timeout: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._sessions: dict[str, LegacySession] = {}
        self._lock = threading.Lock()  # resource_updated may come from a sync tool's worker thread

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, protocol_version: str, client_capabilities: dict[str, Any]) -> LegacySession | None:
        """A new session, or None when ``max_sessions`` are open and none of them is idle."""
        with self._lock:
            self._sweep()
            if len(self._sessions) >= self.max_sessions:
                return None
            session = LegacySession(secrets.token_urlsafe(24), protocol_version, client_capabilities, self._clock)
            self._sessions[session.id] = session
            return session

    def get(self, session_id: str) -> LegacySession | None:
        """The live session of that id (its idle clock restarts), or None: unknown, ended or expired."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            now = self._clock()
            if self._expired(session, now):
                del self._sessions[session_id]
                session.end()
                return None
            session.last_used = now
            return session

    def close(self, session_id: str) -> bool:
        """End a session (DELETE); False when there was none of that id."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.end()
        return True

    def resource_updated(self, uri: str) -> int:
        """Tell every session subscribed to ``uri`` that it changed; how many were told."""
        with self._lock:
            subscribed = [s for s in self._sessions.values() if uri in s.subscriptions]
        message = {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}}
        for session in subscribed:
            session.notify(message)
        return len(subscribed)

    def _expired(self, session: LegacySession, now: float) -> bool:
        return not session.busy and now - session.last_used > self.idle_timeout

    def _sweep(self) -> None:
        now = self._clock()
        for session_id in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            self._sessions.pop(session_id).end()
