"""Task state for the MCP tasks extension (``io.modelcontextprotocol/tasks``), kept in the
service's cache backend so that every replica answers ``tasks/get`` for a task another one runs.

One task is a handful of keys under ``devenv:task:<service>:<taskId>``, all expiring with the
task's ``ttlMs``:

- the key itself: the creation record (tool, createdAt, ttlMs), written before the client
  hears of the task, so a ``tasks/get`` right after the ``CreateTaskResult`` resolves;
- ``:state``: ``working`` or ``input_required`` with the outstanding ``inputRequests``,
  written by the replica running the task;
- ``:end``: the terminal status and its result or error, written once with ``Cache.add``
  (set-if-absent), so a cancel on one replica and the tool finishing on another settle to
  exactly one outcome;
- ``:answer:<key>``: the client's response to one input request (``tasks/update``);
- ``:alive``: a heartbeat the running replica renews; a task with neither an end nor a
  heartbeat lost its replica, and reads as ``failed``.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
import orjson

from .cache import Cache

__all__ = ["EXTENSION", "TERMINAL", "TaskStore", "declares_extension", "valid_task_id"]

EXTENSION = "io.modelcontextprotocol/tasks"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
_TASK_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")  # what new_task_id mints; anything else is unknown
_LOST_CODE = -32603
T = TypeVar("T")


def declares_extension(capabilities: Any) -> bool:
    """Whether a request's client capabilities name the tasks extension."""
    if not isinstance(capabilities, dict):
        return False
    extensions = capabilities.get("extensions")
    return isinstance(extensions, dict) and isinstance(extensions.get(EXTENSION), dict)


def valid_task_id(task_id: Any) -> bool:
    return isinstance(task_id, str) and _TASK_ID.match(task_id) is not None


def _now_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TaskStore:
    """Tasks of one service in ``cache``. Every method is async; a blocking backend (Redis) is
    called from a worker thread, one hop per method.

    ``ttl`` (seconds) is how long a task is kept from its creation, ``poll_interval`` the
    ``pollIntervalMs`` clients are told, ``heartbeat`` how often a running task says it is
    alive (it reads as lost after ``heartbeat * 5`` of silence).
    """

    def __init__(
        self,
        cache: Cache,
        service: str,
        *,
        ttl: float = 3600.0,
        poll_interval: float = 1.0,
        heartbeat: float = 2.0,
    ) -> None:
        if not ttl > 0 or not poll_interval > 0 or not heartbeat > 0:
            raise ValueError("ttl, poll_interval and heartbeat must be positive (seconds)")
        self.cache = cache
        self.prefix = f"devenv:task:{service}:"
        self.ttl = ttl
        self.poll_interval = poll_interval
        self.heartbeat = heartbeat

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        if self.cache.blocking:
            return await anyio.to_thread.run_sync(fn, *args)
        return fn(*args)

    # -- the keys --------------------------------------------------------------------------

    def _key(self, task_id: str, part: str = "") -> str:
        return self.prefix + task_id + (":" + part if part else "")

    def _record(self, task_id: str) -> dict[str, Any] | None:
        raw = self.cache.get(self._key(task_id)) if valid_task_id(task_id) else None
        return None if raw is None else orjson.loads(raw)

    def _left(self, record: dict[str, Any]) -> float:
        """Seconds until the task expires: every key written later expires with the record."""
        return max(0.001, record["expires"] - time.time())

    def _write(self, record: dict[str, Any], part: str, value: Any, *, once: bool = False) -> bool:
        key, data = self._key(record["taskId"], part), orjson.dumps(value)
        if once:
            return self.cache.add(key, data, self._left(record))
        self.cache.set(key, data, self._left(record))
        return True

    # -- creating and reading --------------------------------------------------------------

    async def create(self, tool: str) -> dict[str, Any]:
        """A new task in ``working``; returns its Task shape (what ``CreateTaskResult`` carries)."""
        return await self._io(self._create, tool)

    def _create(self, tool: str) -> dict[str, Any]:
        now = time.time()
        task_id = secrets.token_urlsafe(24)  # unguessable: a task id is the only key to its result
        record = {
            "taskId": task_id,
            "tool": tool,
            "created": now,
            "expires": now + self.ttl,
            "ttlMs": int(self.ttl * 1000),
            "pollIntervalMs": int(self.poll_interval * 1000),
        }
        self._write(record, "", record)
        self._write(record, "state", {"status": "working", "at": now, "inputRequests": {}})
        self.cache.set(self._key(task_id, "alive"), b"1", min(self.heartbeat * 5, self.ttl))
        return self._shape(record, {"status": "working", "at": now})

    async def get(self, task_id: str) -> dict[str, Any] | None:
        """The DetailedTask ``tasks/get`` answers, or None for an unknown (or expired) task."""
        return await self._io(self._get, task_id)

    def _get(self, task_id: str) -> dict[str, Any] | None:
        record = self._record(task_id)
        if record is None:
            return None
        end = self._end(record)
        if end is not None:
            return self._shape(record, end)
        raw = self.cache.get(self._key(task_id, "state"))
        state = orjson.loads(raw) if raw else {"status": "working", "at": record["created"], "inputRequests": {}}
        pending = {
            key: request
            for key, request in state.get("inputRequests", {}).items()
            if self.cache.get(self._key(task_id, "answer:" + key)) is None  # answered: the task resumes
        }
        if pending:
            return {**self._shape(record, {**state, "status": "input_required"}), "inputRequests": pending}
        return self._shape(record, {**state, "status": "working"})

    def _end(self, record: dict[str, Any]) -> dict[str, Any] | None:
        raw = self.cache.get(self._key(record["taskId"], "end"))
        if raw is not None:
            return orjson.loads(raw)
        if self.cache.get(self._key(record["taskId"], "alive")) is not None:
            return None
        # No end and no heartbeat: the replica running it is gone. Settle that, once.
        lost = {
            "status": "failed",
            "at": time.time(),
            "statusMessage": "the server process running this task stopped before it finished",
            "error": {"code": _LOST_CODE, "message": "task lost: the server process running it stopped"},
        }
        self._write(record, "end", lost, once=True)
        raw = self.cache.get(self._key(record["taskId"], "end"))
        return orjson.loads(raw) if raw else lost

    @staticmethod
    def _shape(record: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        task: dict[str, Any] = {
            "taskId": record["taskId"],
            "status": state["status"],
            "createdAt": _now_iso(record["created"]),
            "lastUpdatedAt": _now_iso(state.get("at", record["created"])),
            "ttlMs": record["ttlMs"],
            "pollIntervalMs": record["pollIntervalMs"],
        }
        if state.get("statusMessage"):
            task["statusMessage"] = state["statusMessage"]
        for field in ("result", "error"):
            if field in state:
                task[field] = state[field]
        return task

    # -- the running replica's writes ------------------------------------------------------

    async def set_state(self, task_id: str, input_requests: dict[str, Any]) -> None:
        """``working`` (no requests) or ``input_required`` with these outstanding requests."""
        await self._io(self._set_state, task_id, input_requests)

    def _set_state(self, task_id: str, input_requests: dict[str, Any]) -> None:
        record = self._record(task_id)
        if record is not None:
            status = "input_required" if input_requests else "working"
            self._write(record, "state", {"status": status, "at": time.time(), "inputRequests": input_requests})

    async def finish(
        self, task_id: str, status: str, *, result: Any = None, error: Any = None, message: str | None = None
    ) -> bool:
        """Settle the task as ``status`` (terminal); False when it had settled already (a cancel won)."""
        if status not in TERMINAL:
            raise ValueError(f"{status!r} is not a terminal status; one of {sorted(TERMINAL)}")
        end: dict[str, Any] = {"status": status, "at": time.time()}
        if message:
            end["statusMessage"] = message
        if status == "completed":
            end["result"] = result
        elif status == "failed":
            end["error"] = error
        return await self._io(self._finish, task_id, end)

    def _finish(self, task_id: str, end: dict[str, Any]) -> bool:
        record = self._record(task_id)
        return record is not None and self._write(record, "end", end, once=True)

    async def beat(self, task_id: str) -> bool:
        """Renew the heartbeat; True while the task has not ended (a cancel elsewhere ends it)."""
        return await self._io(self._beat, task_id)

    def _beat(self, task_id: str) -> bool:
        record = self._record(task_id)
        if record is None:
            return False
        self.cache.set(self._key(task_id, "alive"), b"1", min(self.heartbeat * 5, self._left(record)))
        return self.cache.get(self._key(task_id, "end")) is None

    async def answer(self, task_id: str, key: str) -> Any:
        """The client's response to input request ``key``, or None while there is none."""
        raw = await self._io(self.cache.get, self._key(task_id, "answer:" + key))
        return None if raw is None else orjson.loads(raw)

    # -- the client's writes (tasks/update, tasks/cancel), on any replica -----------------

    async def deliver(
        self, task_id: str, responses: dict[str, Any], check: Callable[[str, Any], str | None] | None = None
    ) -> list[str] | None:
        """Store the responses to requests still outstanding (others are ignored, as the spec
        says); the keys stored, or None for an unknown task. ``check(method, response)`` names
        what is wrong with a response (then ``ValueError``, nothing stored)."""
        return await self._io(self._deliver, task_id, responses, check)

    def _deliver(
        self, task_id: str, responses: dict[str, Any], check: Callable[[str, Any], str | None] | None
    ) -> list[str] | None:
        record = self._record(task_id)
        if record is None:
            return None
        raw = self.cache.get(self._key(task_id, "state"))
        outstanding = orjson.loads(raw).get("inputRequests", {}) if raw else {}
        # An answer is written once: a second response to the same request is ignored too.
        fresh = [k for k in responses if k in outstanding]
        for k in fresh if check is not None else ():
            if (wrong := check(outstanding[k]["method"], responses[k])) is not None:
                raise ValueError(f"inputResponses[{k!r}] {wrong}")
        return [k for k in fresh if self._write(record, "answer:" + k, responses[k], once=True)]

    async def cancel(self, task_id: str) -> bool | None:
        """End the task as ``cancelled``; False if it had ended already, None if unknown."""
        return await self._io(self._cancel, task_id)

    def _cancel(self, task_id: str) -> bool | None:
        record = self._record(task_id)
        if record is None:
            return None
        end = {"status": "cancelled", "at": time.time(), "statusMessage": "cancelled by the client"}
        return self._write(record, "end", end, once=True)
