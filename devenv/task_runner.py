"""Running tool calls as tasks (the MCP tasks extension) in this process, and the
``tasks/get``, ``tasks/update`` and ``tasks/cancel`` methods, answered from any replica.

A task-capable tool (``@service.tool(task_support="optional" | "required")``) called at
2026-07-28 by a client whose request declares ``io.modelcontextprotocol/tasks`` runs in the
background: the client gets a ``CreateTaskResult`` at once and polls. The state lives in a
``TaskStore`` (the service's cache: Redis in a cluster), so the replica a poll lands on need
not be the one running the task. Input the tool asks for while it runs (``ctx`` elicitation,
sampling, roots) is surfaced as the task's ``inputRequests`` and answered by ``tasks/update``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from . import protocol
from .context import Context, check_input_result
from .errors import CapabilityMissing, DevenvError, InvalidArguments, RequestFailed, ServiceUnavailable, ToolError
from .tasks import EXTENSION, TaskStore, declares_extension
from .tools import Service, Tool

__all__ = ["TASK_METHODS", "DeferredStart", "TaskInput", "TaskRunner", "missing_extension"]

logger = logging.getLogger("devenv.tasks")

TASK_METHODS = frozenset({"tasks/get", "tasks/update", "tasks/cancel"})
_REQUIRED = {"requiredCapabilities": {"extensions": {EXTENSION: {}}}}
_KEY = re.compile(r"[^A-Za-z0-9_.-]+")
_ANSWER_POLL = 0.2  # seconds between looks for an answer tasks/update left on another replica

Call = Callable[[Tool, Any, Context], Awaitable[Any]]


def missing_extension(service: Service, method: str, params: dict[str, Any], capabilities: Any) -> str | None:
    """Why a 2026-07-28 request needs the tasks extension its client did not declare (-32021), or None."""
    if declares_extension(capabilities):
        return None
    if method in TASK_METHODS and any(t.task_support != "forbidden" for t in service.tools.values()):
        return f"{method} needs the {EXTENSION} extension in the request's client capabilities"
    if method == "tools/call":
        tool = service.tools.get(params.get("name"))  # type: ignore[arg-type]
        if tool is not None and tool.task_support == "required":
            return f"{tool.name} runs only as a task: declare the {EXTENSION} extension in the client capabilities"
    return None


def _capabilities(params: dict[str, Any]) -> dict[str, Any]:
    meta = params.get("_meta")
    capabilities = meta.get(protocol.META_CLIENT_CAPABILITIES) if isinstance(meta, dict) else None
    return capabilities if isinstance(capabilities, dict) else {}


def _unknown(task_id: str) -> RequestFailed:
    return RequestFailed(
        protocol.INVALID_PARAMS, f"Failed to retrieve task: no task {task_id!r} (unknown, or expired after its ttlMs)"
    )


class TaskInput:
    """The ``InputChannel`` of one running task: each request becomes an entry of the task's
    ``inputRequests`` and waits for the response ``tasks/update`` delivers (on any replica)."""

    def __init__(self, store: TaskStore, task_id: str, capabilities: dict[str, Any]) -> None:
        self.store = store
        self.task_id = task_id
        self.capabilities = capabilities
        self.pending: dict[str, dict[str, Any]] = {}
        self.arrived: dict[str, asyncio.Event] = {}
        self._used: set[str] = set()
        self._counter = itertools.count(1)
        self._publishing = asyncio.Lock()

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    def _mint(self, key: str | None, method: str) -> str:
        """A key unique over the task's life (the spec forbids reusing one), based on ``key``."""
        base = _KEY.sub("-", key or method.split("/")[0])[:64] or "input"
        candidate = base
        while candidate in self._used:
            candidate = f"{base}-{next(self._counter)}"
        self._used.add(candidate)
        return candidate

    async def request(self, method: str, params: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        # Context has checked the method and that the client declared what it needs.
        key = self._mint(key, method)
        arrived = self.arrived[key] = asyncio.Event()
        self.pending[key] = {"method": method, "params": params}
        try:
            await self._publish()
            while (answer := await self.store.answer(self.task_id, key)) is None:
                with contextlib.suppress(TimeoutError):  # a local tasks/update wakes us at once
                    await asyncio.wait_for(arrived.wait(), _ANSWER_POLL)
        finally:
            self.pending.pop(key, None)
            self.arrived.pop(key, None)
        await self._publish()
        return answer

    async def _publish(self) -> None:
        async with self._publishing:  # one write at a time, each of the latest snapshot
            await self.store.set_state(self.task_id, dict(self.pending))


class DeferredStart:
    """The input channel of a ``defer_task`` tool: the call's own channel (multi-round-trip) until
    the tool calls ``ctx.start_task()``, the task's ``TaskInput`` after."""

    def __init__(self, runner: TaskRunner, tool: str, before: Any, capabilities: dict[str, Any]) -> None:
        self.runner = runner
        self.tool = tool
        self.before = before
        self.capabilities = capabilities
        self.after: TaskInput | None = None
        self.started: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    async def request(self, method: str, params: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        if self.after is not None:
            return await self.after.request(method, params, key)
        if self.before is None:
            raise RuntimeError(f"{method}: this call has no channel back to its client")
        return await self.before.request(method, params, key)

    async def start_task(self) -> None:
        """Create the task (durably) and let the request answer its ``CreateTaskResult``."""
        if self.after is not None or self.started.done():
            return  # started already, or the request is over: the tool simply runs on
        task = await self.runner.store.create(self.tool)
        self.after = TaskInput(self.runner.store, task["taskId"], self.capabilities)
        self.started.set_result(task)


class _Run:
    __slots__ = ("channel", "task")

    def __init__(self, task: asyncio.Task[None], channel: TaskInput) -> None:
        self.task = task
        self.channel = channel


class TaskRunner:
    """The tasks this process runs, and the task methods for every task in the store."""

    def __init__(self, store: TaskStore, call: Call) -> None:
        self.store = store
        self._call = call
        self._runs: dict[str, _Run] = {}

    # -- tools/call ------------------------------------------------------------------------

    async def start(self, tool: Tool, params: dict[str, Any]) -> dict[str, Any]:
        """Create the task, start the tool in the background, and return the ``CreateTaskResult``.
        Arguments that do not validate are answered at once (an ``isError`` result, no task)."""
        arguments = params.get("arguments")
        try:
            tool.validate(arguments)
        except InvalidArguments as exc:
            return protocol.tool_error_result(exc)
        task = await self.store.create(tool.name)  # durable before the client hears of it
        channel = TaskInput(self.store, task["taskId"], _capabilities(params))
        self._adopt(task["taskId"], tool, self._call(tool, arguments, Context(input_channel=channel)), channel)
        return {"resultType": "task", **task}

    async def start_deferred(
        self, tool: Tool, params: dict[str, Any], before: Any, context: Callable[[Any], Context]
    ) -> dict[str, Any] | asyncio.Task[Any]:
        """Run a ``defer_task`` tool in the request: input it asks for goes through ``before``
        (the call's own multi-round-trip channel) until it calls ``ctx.start_task()``.

        Returns the ``CreateTaskResult`` once it has (the tool runs on as that task), or the
        finished call (an ``asyncio.Task``) for the request to answer as any other."""
        channel = DeferredStart(self, tool.name, before, _capabilities(params))
        run = asyncio.create_task(self._call(tool, params.get("arguments"), context(channel)))
        try:
            await asyncio.wait({run, channel.started}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the client went away before an answer: so does the call
            run.cancel()
            raise
        if not channel.started.done():
            channel.started.cancel()
            return run
        task = channel.started.result()
        self._adopt(task["taskId"], tool, run, channel.after)  # type: ignore[arg-type]
        return {"resultType": "task", **task}

    def _adopt(self, task_id: str, tool: Tool, work: Awaitable[Any], channel: TaskInput) -> None:
        run = asyncio.create_task(self._run(task_id, tool, work), name=f"task {tool.name}")
        self._runs[task_id] = _Run(run, channel)

    async def _run(self, task_id: str, tool: Tool, work: Awaitable[Any]) -> None:
        watcher = asyncio.create_task(self._watch(task_id, asyncio.current_task()))  # type: ignore[arg-type]
        try:
            outcome = await self._outcome(tool, work)
            try:
                await self.store.finish(task_id, **outcome)
            except DevenvError:
                logger.exception("task %s of %s finished, but its end could not be stored", task_id, tool.name)
        finally:
            watcher.cancel()
            self._runs.pop(task_id, None)

    async def _outcome(self, tool: Tool, work: Awaitable[Any]) -> dict[str, Any]:
        """What the call came to: a result (tool errors included, as the spec says) or a JSON-RPC error."""
        try:
            value = await work  # cancelling this run cancels the call too
        except (InvalidArguments, ToolError) as exc:
            return {"status": "completed", "result": protocol.tool_error_result(exc)}
        except RequestFailed as exc:
            error = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                error["data"] = exc.data
            return {"status": "failed", "error": error, "message": exc.message}
        except CapabilityMissing as exc:  # asked for input the client did not declare: -32021
            error = {
                "code": protocol.MISSING_CLIENT_CAPABILITY,
                "message": str(exc),
                "data": {"requiredCapabilities": {exc.capability: {}}},
            }
            return {"status": "failed", "error": error, "message": str(exc)}
        except Exception as exc:  # a fault outside the tool: the request failed, not the tool
            logger.exception("task of %s failed outside the tool", tool.name)
            text = f"internal error: {type(exc).__name__}"
            return {"status": "failed", "error": {"code": protocol.INTERNAL_ERROR, "message": text}, "message": text}
        return {"status": "completed", "result": tool.call_result(value)}

    async def _watch(self, task_id: str, run: asyncio.Task[None]) -> None:
        """Renew the heartbeat; stop the tool once the task ended elsewhere (a cancel on another replica)."""
        while True:
            await asyncio.sleep(self.store.heartbeat)
            try:
                live = await self.store.beat(task_id)
            except DevenvError:
                continue  # the cache is out: keep running, try again next beat
            if not live:
                run.cancel()
                return

    # -- tasks/get, tasks/update, tasks/cancel --------------------------------------------

    async def handle(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The result of a task method; ``RequestFailed`` for what the client got wrong."""
        task_id = params.get("taskId")
        if not isinstance(task_id, str):
            raise RequestFailed(
                protocol.INVALID_PARAMS,
                f'"params.taskId" must be a string (the id tools/call returned), got {task_id!r}',
            )
        try:
            if method == "tasks/get":
                task = await self.store.get(task_id)
                if task is None:
                    raise _unknown(task_id)
                return task
            if method == "tasks/update":
                return await self._update(task_id, params.get("inputResponses"))
            return await self._cancel(task_id)
        except ServiceUnavailable as exc:
            raise RequestFailed(protocol.INTERNAL_ERROR, f"task state is unavailable: {exc}") from exc

    async def _update(self, task_id: str, responses: Any) -> dict[str, Any]:
        if not isinstance(responses, dict):
            raise RequestFailed(
                protocol.INVALID_PARAMS,
                f'"params.inputResponses" must be an object (responses by key), got {responses!r}',
            )
        for key, response in responses.items():
            if not isinstance(response, dict):
                raise RequestFailed(
                    protocol.INVALID_PARAMS,
                    f"inputResponses[{key!r}] must be an object (the client's result), got {response!r}",
                )
        try:
            stored = await self.store.deliver(task_id, responses, check_input_result)
        except ValueError as exc:  # an answer of the wrong shape for its request
            raise RequestFailed(protocol.INVALID_PARAMS, str(exc)) from None
        if stored is None:
            raise _unknown(task_id)
        run = self._runs.get(task_id)
        for key in stored if run is not None else ():
            if (arrived := run.channel.arrived.get(key)) is not None:
                arrived.set()
        return {}

    async def _cancel(self, task_id: str) -> dict[str, Any]:
        cancelled = await self.store.cancel(task_id)
        if cancelled is None:
            raise _unknown(task_id)
        run = self._runs.get(task_id)
        if cancelled and run is not None:
            run.task.cancel()  # here: at once; on another replica its next heartbeat sees the end
        return {}  # the same ack for a task that had ended already: cancelling is idempotent
