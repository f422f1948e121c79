"""Services, their typed tools, and the registry that finds them by name.

A tool is a plain function. Its input JSON Schema comes from the signature, its output
schema from the return annotation and its description from the docstring, all through
pydantic, so the same validation and serialisation run in-process and on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import importlib
import inspect
import logging
import queue
import re
import threading
import time
import traceback
import types
import typing
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import PydanticSerializationError

from ._portal import run_sync
from .cache import Cache, cache_from_env
from .config import redact
from .content import content_blocks, is_content_annotation
from .context import Context
from .errors import (
    CapabilityMissing,
    ConfigError,
    DevenvError,
    InvalidArguments,
    PromptNotFound,
    RequestFailed,
    ResourceNotFound,
    ServiceNotFound,
    ToolError,
    ToolNotFound,
)
from .prompts import Prompt
from .protocol import tool_result
from .resources import Resource

__all__ = ["Registry", "Service", "Tool", "default_registry"]

logger = logging.getLogger("devenv.tools")

WRAPPED_KEY = "x-devenv-wrapped"
#: Seconds a slowly failing cache is left alone before it is tried again.
CACHE_RETRY_INTERVAL = 1.0
_SLOW_CACHE_FAILURE = 0.1
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_ENV_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_MEMORY = re.compile(r"^[0-9]+(Ki|Mi|Gi|K|M|G)?$")
_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_ARGS_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$", re.MULTILINE)
_ANY_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Returns?|Yields?|Raises|Examples?|Notes?|Attributes|See Also):\s*$", re.MULTILINE
)
#: ``@service.tool(task_support=...)``: the tasks extension's levels, the default first.
TASK_SUPPORT = ("forbidden", "optional", "required")
_ARG_LINE = re.compile(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?:\s*(.+)$")


def _split_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Google-style docstring → (description, {argument: description})."""
    first_section = _ANY_SECTION.search(doc)
    description = doc[: first_section.start()].strip() if first_section else doc.strip()
    match = _ARGS_SECTION.search(doc)
    if not match:
        return description, {}
    args: dict[str, str] = {}
    last = None
    for line in doc[match.end() :].splitlines():
        if not line.strip():
            continue
        if not line.startswith((" ", "\t")):
            break  # the next section (Returns:, Raises:) starts at the margin
        arg = _ARG_LINE.match(line)
        if arg:
            last = arg[1]
            args[last] = arg[2].strip()
        elif last:
            args[last] += " " + line.strip()
    return description, args


def _hoist_defs(schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = dict(schema)
    return schema, schema.pop("$defs", {})


_fingerprints: dict[tuple[Any, ...], str] = {}
_fingerprints_lock = threading.Lock()


def code_fingerprint(fn: Callable[..., Any]) -> str:
    """A short hash of the code ``fn`` runs: every ``.py`` file of the package its module is in
    (a service's ``service.py`` and its helpers), else its module's file, else its bytecode."""
    code = getattr(inspect.unwrap(fn), "__code__", None)  # a callable object has none: use its module's
    source = code.co_filename if code else getattr(inspect.getmodule(fn), "__file__", None)
    path = Path(source) if source else None
    if path is None or not path.is_file():  # defined in a REPL or exec(): the bytecode is all there is
        raw = repr((code.co_code, code.co_consts)).encode() if code else repr(fn).encode()
        return hashlib.sha256(raw).hexdigest()[:12]
    files = sorted(path.parent.glob("*.py")) if (path.parent / "__init__.py").is_file() else [path]
    stamps = []
    for file in files:
        with contextlib.suppress(OSError):  # deleted meanwhile: hash what is there
            st = file.stat()
            stamps.append((file, st.st_mtime_ns, st.st_size))
    key = tuple(stamps)
    with _fingerprints_lock:
        if key not in _fingerprints:  # read each file once per version of it
            digest = hashlib.sha256()
            for file, _, _ in stamps:
                with contextlib.suppress(OSError):
                    digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
            _fingerprints[key] = digest.hexdigest()[:12]
        return _fingerprints[key]


class Tool:
    """One callable tool: validation, execution, serialisation and result caching."""

    def __init__(
        self,
        service: Service,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        read_only: bool = False,
        idempotent: bool = False,
        destructive: bool | None = None,
        open_world: bool | None = None,
        cache_ttl: float | None = None,
        timeout: float | None = None,
        input_schema: dict[str, Any] | None = None,
        client_capabilities: dict[str, Any] | None = None,
        task_support: str = "forbidden",
        defer_task: bool = False,
    ) -> None:
        self.service = service
        self.fn = fn
        self.name = name or fn.__name__
        if not _TOOL_NAME.match(self.name):
            raise ConfigError(f"tool name {self.name!r} must match {_TOOL_NAME.pattern}")
        if cache_ttl is not None and cache_ttl <= 0:
            raise ConfigError(f"cache_ttl of {self.name!r} must be positive, got {cache_ttl}")
        if timeout is not None and not timeout > 0:
            raise ConfigError(f"timeout of {self.name!r} must be positive, got {timeout}")
        #: Seconds the server lets this tool run (None: the server's DEVENV_TOOL_TIMEOUT).
        self.timeout = timeout
        self.is_async = inspect.iscoroutinefunction(fn)
        self.read_only = read_only
        self.idempotent = read_only or idempotent  # reads are safe to repeat
        self.cache_ttl = cache_ttl
        # Hashed when the tool is defined, i.e. of the code this process runs (not of a later edit).
        self._code_hash = code_fingerprint(fn) if cache_ttl else ""
        summary, arg_docs = _split_docstring(inspect.getdoc(fn) or "")
        self.description = description or summary or self.name.replace("_", " ")  # MCP wants one
        self.annotations: dict[str, Any] = {"readOnlyHint": read_only, "idempotentHint": self.idempotent}
        if not read_only and destructive is not None:
            self.annotations["destructiveHint"] = destructive
        if open_world is not None:
            self.annotations["openWorldHint"] = open_world

        hints = typing.get_type_hints(fn, include_extras=True)
        fields: dict[str, Any] = {}
        #: The parameter that receives the call's ``Context``, if the tool declares one.
        self.context_param: str | None = None
        for param in inspect.signature(fn).parameters.values():
            if _is_context(hints.get(param.name)):
                if self.context_param is not None:
                    raise ConfigError(f"tool {self.name!r}: only one parameter may take the Context")
                self.context_param = param.name
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise ConfigError(f"tool {self.name!r}: parameter {param.name!r} must be a named parameter")
            if param.name.startswith("_") or hasattr(BaseModel, param.name):
                raise ConfigError(
                    f"tool {self.name!r}: parameter {param.name!r} clashes with pydantic's model attributes"
                    " or is private; rename it"
                )
            default = ... if param.default is param.empty else param.default
            if param.name in arg_docs:  # a docstring description; Annotated[..., Field(description=)] also works
                default = Field(default, description=arg_docs[param.name])
            fields[param.name] = (hints.get(param.name, Any), default)
        model_name = "".join(part.title() for part in re.split(r"[_.-]", self.name)) + "Arguments"
        self.input_model = create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)
        self.input_schema = self.input_model.model_json_schema()
        self._schema_validator = None
        if input_schema is not None:  # advertised as given (JSON Schema 2020-12) and enforced too
            self.input_schema = input_schema
            self._schema_validator = _schema_validator(self.name, input_schema)
        #: Client capabilities a call needs (e.g. {"sampling": {}}); 2026-07-28 refuses a request
        #: that does not declare them with -32021.
        self.client_capabilities = _check_capabilities(self.name, client_capabilities)
        if task_support not in TASK_SUPPORT:
            raise ConfigError(f"tool {self.name!r}: task_support={task_support!r}; one of {', '.join(TASK_SUPPORT)}")
        #: Whether a 2026-07-28 call may (``optional``) or must (``required``) run as a task
        #: (the tasks extension); ``forbidden`` tools always answer in the request.
        self.task_support = task_support
        if defer_task and task_support == "forbidden":
            raise ConfigError(f"tool {self.name!r}: defer_task needs task_support='optional' or 'required'")
        #: The task starts when the tool calls ``ctx.start_task()``, after gathering input in the request.
        self.defer_task = defer_task

        returns = hints.get("return", Any)
        #: Returns MCP content blocks (Text, Image, ...) rather than structured JSON.
        self.returns_content = is_content_annotation(returns)
        if self.returns_content:
            self._output = None
            self.wraps_result = False
            self.output_schema = None
            return
        self._output = TypeAdapter(returns)
        output_schema = self._output.json_schema(mode="serialization")
        # MCP's structuredContent must be an object; anything else travels as {"result": value}.
        self.wraps_result = output_schema.get("type") != "object"
        if self.wraps_result:
            inner, defs = _hoist_defs(output_schema)
            output_schema = {"type": "object", "properties": {"result": inner}, "required": ["result"]}
            if defs:
                output_schema["$defs"] = defs
        # Tells a remote devenv client whether to unwrap {"result": ...} (JSON Schema ignores x- keys).
        self.output_schema = {**output_schema, WRAPPED_KEY: self.wraps_result}

    @property
    def uri(self) -> str:
        return f"{self.service.name}/{self.name}"

    def definition(self) -> dict[str, Any]:
        """The tool as MCP's tools/list describes it."""
        definition = {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
            "outputSchema": self.output_schema,
            "annotations": self.annotations,
        }
        if self.output_schema is None:  # a content tool has no structured result to describe
            del definition["outputSchema"]
        return definition

    # -- validation and serialisation: shared by every transport ---------------------------

    def validate(self, arguments: Any) -> Any:
        """Validate raw JSON arguments into the input model, or raise ``InvalidArguments``."""
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise InvalidArguments(
                self.name, [{"field": "", "message": "arguments must be a JSON object", "type": "dict_type"}]
            )
        if self._schema_validator is not None:
            errors = [
                {"field": ".".join(str(p) for p in err.absolute_path), "message": err.message, "type": err.validator}
                for err in self._schema_validator.iter_errors(arguments)
            ]
            if errors:
                raise InvalidArguments(self.name, errors)
        try:
            return self.input_model.model_validate(arguments)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False)
            ]
            raise InvalidArguments(self.name, errors) from None

    def serialize(self, value: Any) -> bytes:
        """The result as JSON bytes, checked against the return annotation."""
        try:
            if self._output is None:
                return orjson.dumps(content_blocks(value))
            return self._output.dump_json(value, warnings="error")
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            message = redact(f"result does not match the return annotation: {exc}")
            raise ToolError(self.name, "ResultError", message) from exc

    def structured(self, result: Any) -> dict[str, Any]:
        """``result`` (a JSON value) as MCP structuredContent."""
        return {"result": result} if self.wraps_result else result

    def call_result(self, result: Any) -> dict[str, Any]:
        """``result`` (what ``run`` returned) as the MCP CallToolResult the wire sends."""
        if self.returns_content:
            return {"content": result, "isError": False}
        return tool_result(self.structured(result))

    def _failure(self, exc: Exception) -> ToolError:
        # What a tool raised goes back to the caller: never with a secret of this process in it.
        tb = redact("".join(traceback.format_exception(exc))) if self.service.debug else None
        return ToolError(self.name, type(exc).__name__, redact(str(exc)), tb)

    def _timed_out(self, timeout: float) -> ToolError:
        return ToolError(
            self.name,
            "TimeoutError",
            f"timed out: no result within {timeout:g} s (the tool's timeout); the call was abandoned",
        )

    def _cache_key(self, args: Any) -> str:
        digest = hashlib.sha256(args.model_dump_json().encode()).hexdigest()[:32]
        # The version and a hash of the code are in the key, so neither a deploy nor a live reload
        # serves results the old code computed (a version nobody bumped changes nothing).
        return f"devenv:{self.service.name}:{self.service.version}:{self._code_hash}:{self.name}:{digest}"

    # -- execution ---------------------------------------------------------------------------

    def run(self, arguments: Any, *, context: Context | None = None) -> Any:
        """Validate, call, serialise, JSON round-trip: the result a remote caller would get.

        ``context`` reaches a tool that declares a ``Context`` parameter (else a silent one).
        """
        args = self.validate(arguments)
        key = self._cache_key(args) if self.cache_ttl else None
        if key and (hit := self.service.cache_get(key)) is not None:
            return orjson.loads(hit)
        kwargs = args.__dict__ if self.context_param is None else self._with_context(args, context)
        try:
            if self.is_async:
                value = run_sync(self.fn(**kwargs))
            else:
                value = self.fn(**kwargs)
        except (CapabilityMissing, RequestFailed):
            raise  # the caller's to answer (-32021, or the tool's own JSON-RPC error), not a tool failure
        except Exception as exc:
            raise self._failure(exc) from exc
        data = self.serialize(value)
        if key:
            self.service.cache_set(key, data, self.cache_ttl)
        return orjson.loads(data)

    async def arun(
        self,
        arguments: Any,
        *,
        thread_sync: bool = True,
        timeout: float | None = None,
        context: Context | None = None,
    ) -> Any:
        """``run`` for async callers; sync tools go to a worker thread unless ``thread_sync`` is off.

        ``timeout`` (seconds) bounds the tool's run: past it the call fails with a ``ToolError``
        of type ``TimeoutError`` and the caller goes on. An ``async def`` tool is cancelled; a
        sync tool's worker thread cannot be killed, so it is abandoned and finishes on its own
        (an inline sync tool, ``thread_sync=False``, cannot be interrupted at all).
        """
        args = self.validate(arguments)
        key = self._cache_key(args) if self.cache_ttl else None
        blocking_cache = key is not None and self.service.cache.blocking
        if key:
            hit = (
                await anyio.to_thread.run_sync(self.service.cache_get, key)
                if blocking_cache
                else self.service.cache_get(key)
            )
            if hit is not None:
                return orjson.loads(hit)
        kwargs = args.__dict__ if self.context_param is None else self._with_context(args, context)
        try:
            if timeout is None:
                value = await self._invoke(kwargs, thread_sync, False)
            else:
                value = await self._invoke_within(kwargs, thread_sync, timeout)
        except TimedOut as exc:
            raise self._timed_out(timeout) from exc  # type: ignore[arg-type]
        except (CapabilityMissing, RequestFailed):
            raise
        except Exception as exc:
            raise self._failure(exc) from exc
        data = self.serialize(value)
        if key:
            if blocking_cache:
                await anyio.to_thread.run_sync(self.service.cache_set, key, data, self.cache_ttl)
            else:
                self.service.cache_set(key, data, self.cache_ttl)
        return orjson.loads(data)

    async def _invoke_within(self, kwargs: dict[str, Any], thread_sync: bool, timeout: float) -> Any:
        """``_invoke`` cancelled after ``timeout`` seconds (then ``TimedOut``).

        On asyncio this is what ``asyncio.timeout`` does, with one timer handle and nothing
        else: a few microseconds, where ``anyio.fail_after`` costs about five times more on the
        server's hot path. Elsewhere (trio) anyio's portable timeout is used.
        """
        try:
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        if task is None:
            with anyio.move_on_after(timeout):
                return await self._invoke(kwargs, thread_sync, True)
            raise TimedOut
        cancelling = task.cancelling()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        handle = loop.call_at(loop.time() + timeout, expire)
        try:
            value = await self._invoke(kwargs, thread_sync, True)
        except BaseException:  # CancelledError, or whatever the tool raised on being cancelled
            if expired and task.uncancel() <= cancelling:
                raise TimedOut from None  # our cancellation, not the server's: a timeout
            raise
        finally:
            handle.cancel()
        if expired and task.uncancel() <= cancelling:
            raise TimedOut  # the tool swallowed the cancellation but ran past its time all the same
        return value

    def _with_context(self, args: Any, context: Context | None) -> dict[str, Any]:
        # Only tools that declare a Context get here; the others pass args.__dict__ as it is.
        return {**args.__dict__, self.context_param: context or Context()}  # type: ignore[dict-item]

    async def _invoke(self, kwargs: dict[str, Any], thread_sync: bool, abandon: bool) -> Any:
        if self.is_async:
            return await self.fn(**kwargs)
        if thread_sync:
            if abandon and _on_asyncio():
                return await _tool_threads.run(self.fn, kwargs)
            return await anyio.to_thread.run_sync(lambda: self.fn(**kwargs), abandon_on_cancel=abandon)
        return self.fn(**kwargs)


class _ToolThreads:
    """Worker threads for sync tools on the server: about half what anyio.to_thread costs a call.

    An idle thread takes the call, else a new one starts; a thread idle for ``linger`` seconds
    ends. A cancelled call (its timeout, or its client gone) is abandoned: its thread finishes on
    its own and no one waits for it, so stuck tools never starve the ones that follow. The
    server's concurrency limit bounds the threads busy with live calls.
    """

    def __init__(self, linger: float = 10.0) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()
        self._linger = linger

    async def run(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            start = self._idle == 0
            self._idle -= not start
        self._jobs.put((future, loop, contextvars.copy_context(), fn, kwargs))  # the caller's trace context too
        if start:
            threading.Thread(target=self._work, name="devenv-tool", daemon=True).start()
        return await future

    def _work(self) -> None:
        while True:
            try:
                future, loop, context, fn, kwargs = self._jobs.get(timeout=self._linger)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # else a call counted on this thread: its job is on the way
                        self._idle -= 1
                        return
                continue
            try:
                outcome = (True, context.run(fn, **kwargs))
            except BaseException as exc:  # handed to the caller, whatever it is
                outcome = (False, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:
                pass  # the loop closed while the tool ran: nobody is waiting
            del future, context, fn, kwargs, outcome
            with self._lock:
                self._idle += 1


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if not future.cancelled():  # an abandoned call's late answer goes nowhere
        ok, value = outcome
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


_tool_threads = _ToolThreads()


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False  # trio (or another anyio backend): anyio's portable hop
    return True


def _schema_validator(tool: str, schema: Any) -> Any:
    from jsonschema import Draft202012Validator, SchemaError  # only tools with their own schema pay

    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ConfigError(f'tool {tool!r}: input_schema must be a JSON Schema object with "type": "object"')
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ConfigError(f"tool {tool!r}: input_schema is not valid JSON Schema 2020-12: {exc.message}") from None
    return Draft202012Validator(schema)


def _check_capabilities(tool: str, capabilities: Any) -> dict[str, Any] | None:
    if capabilities is None:
        return None
    if not isinstance(capabilities, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in capabilities.items()
    ):
        raise ConfigError(f'tool {tool!r}: client_capabilities maps names to objects, like {{"sampling": {{}}}}')
    return capabilities or None


def _is_context(annotation: Any) -> bool:
    """``Context`` or ``Context | None``."""
    if annotation is Context:
        return True
    args = typing.get_args(annotation)
    return (
        typing.get_origin(annotation) in (typing.Union, types.UnionType)
        and Context in args
        and all(a in (Context, type(None)) for a in args)
    )


class TimedOut(Exception):
    """A tool ran past its timeout: the ``__cause__`` of the ``ToolError`` that says so."""


ReadinessCheck = Callable[[], Any]


class Service:
    """A named group of tools, served together as one process, container or Pod.

    ``port`` is the local port ``devenv up`` gives it (and ``{port}`` in
    ``DEVENV_URL_TEMPLATE``); ``requires=("cache",)`` makes ``/ready`` fail while the
    cache backend (Redis) is unreachable; ``calls`` names the services its tools call
    through ``MCPClient`` (Tilt's resource dependencies and the NetworkPolicies follow it).

    What the cluster path derives from it as well (``devenv generate`` writes the manifests):
    ``secrets`` names the keys of the Secret ``devenv-secrets`` the service reads (mounted as
    files, read with ``service.secret(KEY)``; ``.env`` or ``KEY`` / ``KEY_FILE`` elsewhere),
    ``settings`` the plain settings it reads (documented in ``.env.example``), ``replicas`` its
    count in the prod overlay and ``cpu`` / ``memory`` its container limits.
    """

    def __init__(
        self,
        name: str,
        *,
        version: str = "0.1.0",
        instructions: str | None = None,
        port: int | None = None,
        requires: tuple[str, ...] = (),
        calls: tuple[str, ...] = (),
        secrets: tuple[str, ...] = (),
        settings: tuple[str, ...] = (),
        replicas: int = 2,
        cpu: str = "500m",
        memory: str = "256Mi",
        debug: bool = False,
    ) -> None:
        if not _SERVICE_NAME.match(name):
            raise ConfigError(f"service name {name!r} must be lowercase words joined by '-', like 'jd-classifier'")
        unknown = set(requires) - {"cache"}
        if unknown:
            raise ConfigError(f"service {name!r}: unknown requirement(s) {sorted(unknown)}; known: ['cache']")
        bad_calls = [c for c in calls if not isinstance(c, str) or not _SERVICE_NAME.match(c) or c == name]
        if bad_calls:
            raise ConfigError(f"service {name!r}: calls={bad_calls!r} must name other services, like 'jd-classifier'")
        for kind, keys in (("secrets", secrets), ("settings", settings)):
            bad = [k for k in keys if not isinstance(k, str) or not _ENV_KEY.match(k)]
            if bad:
                raise ConfigError(
                    f"service {name!r}: {kind}={bad!r} must be environment variable names, like 'API_KEY'"
                )
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
            raise ConfigError(f"service {name!r}: replicas={replicas!r} must be a whole number of at least 1")
        if not isinstance(cpu, str) or not _CPU.match(cpu):
            raise ConfigError(f"service {name!r}: cpu={cpu!r} must be a Kubernetes CPU quantity, like '500m' or '1'")
        if not isinstance(memory, str) or not _MEMORY.match(memory):
            raise ConfigError(f"service {name!r}: memory={memory!r} must be a Kubernetes memory quantity, like '256Mi'")
        self.name = name
        self.version = version
        self.secrets = tuple(secrets)
        self.settings = tuple(settings)
        self.replicas = replicas
        self.cpu = cpu
        self.memory = memory
        self.instructions = instructions
        self.port = port
        self.requires = tuple(requires)
        self.calls = tuple(calls)
        self.debug = debug
        self.tools: dict[str, Tool] = {}
        #: Static resources and resource templates, by URI (template) in declaration order.
        self.resources: dict[str, Resource] = {}
        self.prompts: dict[str, Prompt] = {}
        self._cache: Cache | None = None
        # Cache outage handling: after a failure the cache is left alone for a moment (no call
        # waits on a dead Redis twice in a row), then tried again; every skip is counted.
        self._cache_down_until = 0.0
        self._cache_down = False
        self._cache_warned: set[str] = set()
        self._cache_lock = threading.Lock()
        self.cache_errors: dict[str, int] = {"get": 0, "set": 0}
        self.cache_lookups: dict[str, int] = {"hit": 0, "miss": 0}  # /metrics: the cache hit ratio
        self._readiness_checks: dict[str, ReadinessCheck] = {}
        # Who hears of resource_updated: each app serving this service (its legacy sessions), held
        # weakly so an app that is dropped (tests make many) does not linger here.
        self._update_listeners: list[weakref.WeakMethod[Callable[[str], Any]]] = []

    def __repr__(self) -> str:
        return f"Service({self.name!r}, tools={list(self.tools)})"

    def describe(self) -> dict[str, Any]:
        """The declaration as plain JSON: what ``devenv services --json`` prints for Tilt and the manifests."""
        return {
            "name": self.name,
            "version": self.version,
            "port": self.port,
            "requires": list(self.requires),
            "calls": list(self.calls),
            "secrets": list(self.secrets),
            "settings": list(self.settings),
            "replicas": self.replicas,
            "limits": {"cpu": self.cpu, "memory": self.memory},  # the container's, in the cluster
            "tools": sorted(self.tools),
            "resources": list(self.resources),
            "prompts": sorted(self.prompts),
        }

    def capabilities(self) -> dict[str, Any]:
        """The MCP server capabilities this service honours: only what it has."""
        caps: dict[str, Any] = {}
        if self.tools:
            caps["tools"] = {"listChanged": False}
        if self.resources:
            caps["resources"] = {"listChanged": False, "subscribe": False}
        if self.prompts:
            caps["prompts"] = {"listChanged": False}
        if any(r.completers for r in self.resources.values()) or any(p.completers for p in self.prompts.values()):
            caps["completions"] = {}
        if any(t.context_param for t in self.tools.values()):
            caps["logging"] = {}  # a tool with a Context can send log messages
        return caps

    def secret(self, key: str) -> str | None:
        """The value of a secret this service declares: ``$KEY``, else the file ``$KEY_FILE`` names."""
        if key not in self.secrets:
            raise ConfigError(
                f"service {self.name!r} reads secret {key!r} without declaring it: add it to secrets=(...)"
            )
        from .config import read_secret

        return read_secret(key)

    def tool(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        read_only: bool = False,
        idempotent: bool = False,
        destructive: bool | None = None,
        open_world: bool | None = None,
        cache_ttl: float | None = None,
        timeout: float | None = None,
        input_schema: dict[str, Any] | None = None,
        client_capabilities: dict[str, Any] | None = None,
        task_support: str = "forbidden",
        defer_task: bool = False,
    ) -> Any:
        """Register ``fn`` as a tool; usable as ``@service.tool`` or ``@service.tool(...)``.

        ``timeout`` overrides the server's ``DEVENV_TOOL_TIMEOUT`` for this tool (seconds).
        ``input_schema`` advertises a hand-written JSON Schema 2020-12 instead of the one the
        signature gives; arguments must then satisfy both. ``client_capabilities`` names what
        the calling client must support (``{"sampling": {}}``). ``task_support="optional"``
        lets a 2026-07-28 client that declares the tasks extension get a task to poll instead of
        waiting for the result; ``"required"`` refuses clients that do not declare it.
        ``defer_task=True`` starts the task only when the tool calls ``ctx.start_task()``, so
        input it needs first is asked for in the call itself (multi-round-trip).
        """

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            tool = Tool(
                self,
                func,
                name=name,
                description=description,
                read_only=read_only,
                idempotent=idempotent,
                destructive=destructive,
                open_world=open_world,
                cache_ttl=cache_ttl,
                timeout=timeout,
                input_schema=input_schema,
                client_capabilities=client_capabilities,
                task_support=task_support,
                defer_task=defer_task,
            )
            if tool.name in self.tools:
                raise ConfigError(f"service {self.name!r} already has a tool named {tool.name!r}")
            self.tools[tool.name] = tool
            return func  # the function stays a plain function, callable directly in tests

        return register(fn) if fn is not None else register

    def resource(
        self,
        uri: str,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        complete: dict[str, Any] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a resource (``"jd://structure"``) or a template (``"jd://areas/{area}"``).

        ``complete`` maps a template variable to its completion values or a function.
        """

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            resource = Resource(
                func, uri, name=name, title=title, description=description, mime_type=mime_type, complete=complete
            )
            if resource.uri in self.resources:
                raise ConfigError(f"service {self.name!r} already has a resource {resource.uri!r}")
            self.resources[resource.uri] = resource
            return func

        return register

    def prompt(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        complete: dict[str, Any] | None = None,
    ) -> Any:
        """Register ``fn`` as a prompt; usable as ``@service.prompt`` or ``@service.prompt(...)``."""

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            prompt = Prompt(func, name=name, title=title, description=description, complete=complete)
            if prompt.name in self.prompts:
                raise ConfigError(f"service {self.name!r} already has a prompt named {prompt.name!r}")
            self.prompts[prompt.name] = prompt
            return func

        return register(fn) if fn is not None else register

    # -- resources, prompts and completion: the same JSON in-process and on the wire ---------

    def list_resources(self) -> list[dict[str, Any]]:
        return [r.definition() for r in self.resources.values() if not r.is_template]

    def list_resource_templates(self) -> list[dict[str, Any]]:
        return [r.definition() for r in self.resources.values() if r.is_template]

    def find_resource(self, uri: Any) -> tuple[Resource, dict[str, str]]:
        """The resource serving ``uri`` and the template's variables; static URIs win over templates."""
        if not isinstance(uri, str) or not uri:
            raise ValueError(f'"uri" must be a non-empty string, got {uri!r}')
        static = self.resources.get(uri)
        if static is not None and not static.is_template:
            return static, {}
        for resource in self.resources.values():
            if resource.is_template and (variables := resource.match(uri)) is not None:
                return resource, variables
        raise ResourceNotFound(self.name, uri)

    def read_resource(self, uri: str) -> dict[str, Any]:
        """The resources/read result: ``{"contents": [...]}``."""
        resource, variables = self.find_resource(uri)
        return resource.read(uri, variables)

    async def aread_resource(self, uri: str, *, thread_sync: bool = True) -> dict[str, Any]:
        resource, variables = self.find_resource(uri)
        return await resource.aread(uri, variables, thread_sync=thread_sync)

    def resource_updated(self, uri: str) -> None:
        """Say that resource ``uri`` changed: legacy (2025-*) clients subscribed to it get
        ``notifications/resources/updated`` on their session's GET stream. Safe from any thread."""
        self.find_resource(uri)  # a typo fails here, not silently
        for ref in list(self._update_listeners):
            listener = ref()
            if listener is None:
                self._update_listeners.remove(ref)
            else:
                listener(uri)

    def on_resource_updated(self, listener: Callable[[str], Any]) -> None:
        """Have the bound method ``listener`` called with each URI ``resource_updated`` names."""
        self._update_listeners.append(weakref.WeakMethod(listener))  # type: ignore[arg-type]

    def list_prompts(self) -> list[dict[str, Any]]:
        return [p.definition() for p in self.prompts.values()]

    def get_prompt_spec(self, name: Any) -> Prompt:
        if not isinstance(name, str):
            raise ValueError(f'"name" must be the prompt name (a string), got {name!r}')
        try:
            return self.prompts[name]
        except KeyError:
            raise PromptNotFound(self.name, name, sorted(self.prompts)) from None

    def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> dict[str, Any]:
        """The prompts/get result: ``{"messages": [...], "description": ...}``."""
        return self.get_prompt_spec(name).render(arguments)

    async def aget_prompt(
        self,
        name: str,
        arguments: dict[str, str] | None = None,
        *,
        thread_sync: bool = True,
        context: Context | None = None,
    ) -> dict[str, Any]:
        return await self.get_prompt_spec(name).arender(arguments, thread_sync=thread_sync, context=context)

    def complete(self, ref: Any, argument: Any, context: Any = None) -> dict[str, Any]:
        """The completion/complete result: ``{"completion": {"values": [...], "total": n, "hasMore": b}}``.

        ``ref`` is ``{"type": "ref/prompt", "name": ...}`` or ``{"type": "ref/resource", "uri": ...}``.
        """
        if not isinstance(ref, dict):
            raise ValueError('"ref" must be an object: {"type": "ref/prompt", "name": ...} or ref/resource')
        if not isinstance(argument, dict) or not isinstance(argument.get("name"), str):
            raise ValueError('"argument" must be an object with a string "name" and "value"')
        if context is not None and not isinstance(context, dict):
            raise ValueError('"context" must be an object')
        filled = (context or {}).get("arguments")
        kind = ref.get("type")
        target: Prompt | Resource
        if kind == "ref/prompt":
            target = self.get_prompt_spec(ref.get("name"))
        elif kind == "ref/resource":
            uri = ref.get("uri")
            target = self.resources.get(uri) if isinstance(uri, str) else None  # type: ignore[assignment]
            if target is None:
                target, _ = self.find_resource(uri)
        else:
            raise ValueError(f'"ref.type" must be "ref/prompt" or "ref/resource", got {kind!r}')
        return {"completion": target.complete(argument["name"], argument.get("value"), filled)}

    def get_tool(self, name: str) -> Tool:
        try:
            return self.tools[name]
        except KeyError:
            raise ToolNotFound(self.name, name, sorted(self.tools)) from None

    # -- cache -------------------------------------------------------------------------------

    @property
    def cache(self) -> Cache:
        """The cache backend: Redis when ``REDIS_URL`` is set, else memory. Assignable in tests."""
        if self._cache is None:
            self._cache = cache_from_env()
        return self._cache

    @cache.setter
    def cache(self, backend: Cache) -> None:
        self._cache = backend
        self._cache_down_until, self._cache_down = 0.0, False
        self._cache_warned.clear()

    def cache_get(self, key: str) -> bytes | None:
        """The cached value, or None; a cache outage degrades to no cache, never to a failed call."""
        if self._cache_down_until and not self._cache_usable("get"):
            return None
        started = time.monotonic()
        try:
            value = self.cache.get(key)
        except DevenvError as exc:
            self._cache_failed("get", exc, started)
            return None
        if self._cache_down:
            self._cache_recovered()
        with self._cache_lock:
            self.cache_lookups["miss" if value is None else "hit"] += 1
        return value

    def cache_set(self, key: str, value: bytes, ttl: float | None) -> None:
        if self._cache_down_until and not self._cache_usable("set"):
            return
        started = time.monotonic()
        try:
            self.cache.set(key, value, ttl)
        except DevenvError as exc:
            self._cache_failed("set", exc, started)
            return
        if self._cache_down:
            self._cache_recovered()

    def _cache_usable(self, op: str) -> bool:
        if time.monotonic() >= self._cache_down_until:
            return True  # time to try again
        with self._cache_lock:
            self.cache_errors[op] += 1
        return False

    def _cache_failed(self, op: str, exc: DevenvError, started: float) -> None:
        now = time.monotonic()
        with self._cache_lock:
            self.cache_errors[op] += 1
            first = op not in self._cache_warned
            self._cache_warned.add(op)
            self._cache_down = True
            if now - started >= _SLOW_CACHE_FAILURE:
                # A cache that fails slowly (a timeout, not a refused connection) would add that
                # delay to every call: leave it alone for a moment before trying again.
                self._cache_down_until = now + CACHE_RETRY_INTERVAL
        if first:  # one warning per kind of operation per outage, not one per call
            what = "read" if op == "get" else "write"
            logger.warning("cache %s skipped, tools run without the cache until it answers: %s", what, exc)

    def _cache_recovered(self) -> None:
        with self._cache_lock:
            was_down, self._cache_down, self._cache_down_until = self._cache_down, False, 0.0
            self._cache_warned.clear()
        if was_down:
            logger.warning("cache is back; results are cached again")

    # -- readiness ---------------------------------------------------------------------------

    def readiness_check(self, fn: ReadinessCheck) -> ReadinessCheck:
        """Register ``fn`` for ``/ready``: it raises (or returns False) while not ready."""
        self._readiness_checks[fn.__name__] = fn
        return fn

    def check_ready(self) -> dict[str, str | None]:
        """Each check's name → None when it passes, else why it failed."""
        checks: dict[str, ReadinessCheck] = {}
        if "cache" in self.requires:
            checks["cache"] = self.cache.ping
        checks.update(self._readiness_checks)
        results: dict[str, str | None] = {}
        for name, check in checks.items():
            try:
                ok = check()
            except Exception as exc:  # a readiness check reports, it never crashes the probe
                results[name] = f"{type(exc).__name__}: {exc}"
            else:
                results[name] = None if ok is None or ok else "check returned False"
        return results


class Registry:
    """Finds services by name: ``jd-classifier`` is ``<package>/jd_classifier/service.py``'s ``service``.

    ``package=None`` knows only the services registered explicitly.
    """

    def __init__(self, package: str | None = "services", services: list[Service] | None = None) -> None:
        self.package = package
        self._services: dict[str, Service] = {}
        for service in services or []:
            self.register(service)

    def register(self, service: Service) -> Service:
        self._services[service.name] = service
        return service

    def _package_dir(self) -> Path | None:
        if self.package is None:
            return None
        try:
            module = importlib.import_module(self.package)
        except ImportError:
            return None
        paths = list(getattr(module, "__path__", []))
        return Path(paths[0]) if paths else None

    def names(self) -> list[str]:
        """Every service name: registered ones, plus those found on disk (without importing them)."""
        names = set(self._services)
        root = self._package_dir()
        if root is not None:
            names.update(p.parent.name.replace("_", "-") for p in root.glob("*/service.py"))
        return sorted(names)

    def get(self, name: str) -> Service:
        service = self._services.get(name)
        if service is not None:
            return service
        if self.package is None or not _SERVICE_NAME.match(name):
            raise ServiceNotFound(name, self.names())
        module_name = f"{self.package}.{name.replace('-', '_')}.service"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (exc.name == module_name or module_name.startswith(exc.name + ".")):
                raise ServiceNotFound(name, self.names()) from None
            raise  # the service exists but one of its own imports is broken: show that, not "unknown"
        service = getattr(module, "service", None)
        if not isinstance(service, Service):
            raise ConfigError(f"{module_name} must define `service = Service({name!r})`")
        if service.name != name:
            raise ConfigError(f"{module_name} defines service {service.name!r}; expected {name!r}")
        return self.register(service)

    def all(self) -> list[Service]:
        return [self.get(name) for name in self.names()]


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry over ``$DEVENV_SERVICES_PACKAGE`` (default ``services``)."""
    global _default
    if _default is None:
        from .config import get_settings

        _default = Registry(get_settings().services_package)
    return _default
