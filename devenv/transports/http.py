"""MCP Streamable HTTP client transport: both eras, pooled keep-alive connections, retries.

Per server, once: ``server/discover`` at 2026-07-28. A server that answers speaks the modern
era: every request then carries ``_meta`` (protocol version, client info and capabilities), the
``MCP-Protocol-Version`` / ``Mcp-Method`` / ``Mcp-Name`` headers and ``Mcp-Param-*`` for the
arguments a tool marks with ``x-mcp-header``. A server that does not (an error that is not a
modern one, or a version list without 2026-07-28) gets the legacy ``initialize`` handshake at
2025-11-25 or 2025-06-18, with ``Mcp-Session-Id`` when it issues one. Answers may be JSON or
``text/event-stream``; progress notifications on the stream reach ``on_progress``.

Failures: ``timeout`` bounds a whole call, retries included, so nothing ever hangs past it.
Only idempotent (and read-only) tools are retried, on connection errors and 429/502/503/504,
up to ``retries`` times with capped exponential backoff and jitter (honouring Retry-After);
a tool that may have side effects fails at once with ``ServiceUnavailable``.

The protocol logic is written once, as generators that yield what to do (``_Post``,
``_Sleep``, ``_Ask``); ``call_tool`` drives them with blocking sockets in the caller's
thread, ``acall_tool`` with asyncio in the caller's loop (see h1.py for why not httpx).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import protocol
from ..client_input import NO_INPUT, ClientInput, missing
from ..config import redact
from ..discovery import service_url
from ..errors import DevenvError, InvalidArguments, ProtocolError, ServiceUnavailable, ToolNotFound
from ..hints import CRASHED_HEADER, first_contact_failure
from ..tools import WRAPPED_KEY
from . import h1, mcpheaders
from .base import Transport, content_value, current_traceparent

__all__ = ["HTTPTransport"]

log = logging.getLogger("devenv.client")

MODERN_VERSION = "2026-07-28"
LEGACY_VERSIONS = ("2025-11-25", "2025-06-18")
HEADER_MISMATCH = -32020
MISSING_CAPABILITY = -32021
UNSUPPORTED_VERSION = -32022
_MODERN_ERRORS = {HEADER_MISMATCH, MISSING_CAPABILITY, UNSUPPORTED_VERSION}
_META_VERSION = "io.modelcontextprotocol/protocolVersion"
_META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
_META_CLIENT = "io.modelcontextprotocol/clientInfo"
CLIENT_INFO = {"name": "devenv", "version": "0.1.0"}
_RETRYABLE_STATUS = {429, 502, 503, 504}
_STATUS_TEXT = {429: "rate limited", 502: "bad gateway", 503: "unavailable", 504: "gateway timeout"}
_MAX_CACHED = 512  # prebuilt header sets per server (one per method and tool)
_MAX_ROUNDS = 10  # input-required rounds per call before giving up on a server that keeps asking

Era = str  # "auto" | "modern" | "legacy"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the HTTP-date form is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < 3600 else None


def _unavailable(service: str, url: str, reason: str) -> ServiceUnavailable:
    return ServiceUnavailable(service, redact(url), redact(reason))


def _endpoint(base: str) -> str:
    return base if base.rstrip("/").endswith("/mcp") else base.rstrip("/") + "/mcp"


def _unwrap(definition: dict[str, Any] | None, structured: dict[str, Any]) -> Any:
    schema = (definition or {}).get("outputSchema") or {}
    wrapped = schema.get(WRAPPED_KEY)
    if wrapped is None:  # a server devenv did not write: the usual convention is a lone "result"
        wrapped = set(schema.get("properties", {})) == {"result"} and "result" in structured
    return structured["result"] if wrapped else structured


@dataclass
class _Server:
    service: str
    url: str
    endpoint: h1.Endpoint
    era: str | None = None  # "modern" or "legacy" once known
    version: str = MODERN_VERSION
    session_id: str | None = None
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    param_headers: dict[str, list[tuple[tuple[str, ...], str]]] = field(default_factory=dict)
    discovered: dict[str, Any] = field(default_factory=dict)
    headers: dict[tuple[str, str | None], dict[str, str]] = field(default_factory=dict)  # see _build


@dataclass
class _Post:
    endpoint: h1.Endpoint
    body: bytes
    headers: dict[str, str]
    request_id: int
    timeout: float
    on_progress: Callable[..., Any] | None = None
    progress_token: str | None = None
    answers: ClientInput = NO_INPUT
    service: str = ""


@dataclass
class _Sleep:
    seconds: float


@dataclass
class _Ask:
    callback: Callable[[dict[str, Any]], Any]
    request: dict[str, Any]


@dataclass
class _Reply:
    status: int
    headers: dict[str, str]
    message: dict[str, Any] | None
    data: bytes = b""


@dataclass
class CallOptions:
    """What one call adds: a progress callback, its answers to input requests, a W3C trace parent."""

    on_progress: Callable[..., Any] | None = None
    answers: ClientInput = NO_INPUT
    traceparent: str | None = None


_NO_OPTIONS = CallOptions()


class _Unencodable(Exception):
    pass


class _SSE:
    """Incremental ``text/event-stream`` decoder: JSON-RPC messages from the data lines of each event."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, piece: bytes) -> list[dict[str, Any]]:
        self._buffer += piece
        messages = []
        while (end := self._buffer.find(b"\n")) >= 0:
            line, self._buffer = self._buffer[:end].rstrip(b"\r"), self._buffer[end + 1 :]
            if line.startswith(b"data:"):
                self._data.append(line[5:].removeprefix(b" "))
            elif not line and self._data:
                text, self._data = b"\n".join(self._data), []
                try:
                    message = orjson.loads(text)
                except orjson.JSONDecodeError:
                    continue  # not JSON-RPC (a keep-alive or a priming event)
                if isinstance(message, dict):
                    messages.append(message)
        return messages


def _json_message(data: bytes) -> dict[str, Any] | None:
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None


def _progress(op: _Post, message: dict[str, Any]) -> Any:
    """Hand a notifications/progress for this request to the caller's callback; ignore the rest."""
    if op.on_progress is None or message.get("method") != "notifications/progress":
        return None
    params = message.get("params") or {}
    if params.get("progressToken") != op.progress_token:
        return None
    return op.on_progress(params.get("progress"), params.get("total"), params.get("message"))


def _is_server_request(message: dict[str, Any]) -> bool:
    return "id" in message and isinstance(message.get("method"), str) and "result" not in message


def _check_accepted(op: _Post, status: int) -> None:
    if status >= 400:
        raise ProtocolError(f"{op.service}: the server refused the answer to its own request (HTTP {status})")


class HTTPTransport(Transport):
    """MCP over HTTP. ``timeout``: the most one call may take, retries included (seconds).

    ``auth_token`` is sent as ``Authorization: Bearer ...`` (MCPClient passes
    ``DEVENV_AUTH_TOKEN``); it never appears in an error or a repr. ``era``: ``"auto"``
    (discover, fall back to legacy), or force ``"modern"`` / ``"legacy"``.
    """

    def __init__(
        self,
        *,
        resolve: Callable[[str], str] = service_url,
        timeout: float = 30.0,
        retries: int = 10,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        headers: dict[str, str] | None = None,
        auth_token: str | None = None,
        era: Era = "auto",
    ) -> None:
        if era not in ("auto", "modern", "legacy"):
            raise ValueError(f"era must be 'auto', 'modern' or 'legacy', got {era!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._resolve = resolve
        self._total_timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._era = era
        self._headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        self._headers.update({k.lower(): v for k, v in (headers or {}).items()})
        if auth_token:
            self._headers["authorization"] = f"Bearer {auth_token}"
        self._servers: dict[str, _Server] = {}
        self._ids = itertools.count(1)
        self._sync_pool = h1.SyncPool()
        self._async_pool = h1.AsyncPool()
        self._sleep = asyncio.sleep  # between async retries; a test may record the delays instead
        self.session_answers: ClientInput = NO_INPUT  # MCPClient sets its default callbacks here
        self._sync_sleep = time.sleep

    def __repr__(self) -> str:
        auth = ", auth=True" if "authorization" in self._headers else ""
        return f"HTTPTransport(timeout={self._total_timeout}, retries={self._retries}{auth})"

    # -- public contract ---------------------------------------------------------------------

    def call_tool(self, service: str, tool: str, arguments: dict[str, Any], options: CallOptions = _NO_OPTIONS) -> Any:
        return self._drive(self._call_tool(service, tool, arguments, options))

    async def acall_tool(
        self, service: str, tool: str, arguments: dict[str, Any], options: CallOptions = _NO_OPTIONS
    ) -> Any:
        return await self._adrive(self._call_tool(service, tool, arguments, options))

    def list_tools(self, service: str) -> list[dict[str, Any]]:
        return self._drive(self._list_tools(service))

    async def alist_tools(self, service: str) -> list[dict[str, Any]]:
        return await self._adrive(self._list_tools(service))

    def request(self, service: str, method: str, params: dict[str, Any], options: CallOptions = _NO_OPTIONS) -> Any:
        return self._drive(self._request(service, method, params, options))

    async def arequest(
        self, service: str, method: str, params: dict[str, Any], options: CallOptions = _NO_OPTIONS
    ) -> Any:
        return await self._adrive(self._request(service, method, params, options))

    def list_all(self, service: str, method: str, key: str) -> list[dict[str, Any]]:
        return self._drive(self._list_all(service, method, key))

    async def alist_all(self, service: str, method: str, key: str) -> list[dict[str, Any]]:
        return await self._adrive(self._list_all(service, method, key))

    def close(self) -> None:
        self._sync_pool.close()
        self._async_pool.close()

    async def aclose(self) -> None:
        self.close()

    # -- drivers: run a protocol generator with blocking or asyncio I/O ------------------------

    def _drive(self, flow: Generator[Any, Any, Any]) -> Any:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            if type(op) is _Ask:  # the caller's own code: what it raises is the caller's, never a retry
                value = op.callback(op.request)
                if inspect.isawaitable(value):
                    value.close()  # type: ignore[attr-defined]  # never awaited: say why instead
                    raise TypeError("an async input callback needs the async call: use acall / await")
                continue
            try:
                if type(op) is _Post:
                    value = self._post_sync(op)
                else:
                    self._sync_sleep(op.seconds)
            except (ConnectionError, TimeoutError) as exc:
                error = exc

    async def _adrive(self, flow: Generator[Any, Any, Any]) -> Any:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            if type(op) is _Ask:
                value = op.callback(op.request)
                if inspect.isawaitable(value):
                    value = await value
                continue
            try:
                if type(op) is _Post:
                    value = await self._post_async(op)  # the pool times it out: one timer, no cancel scope
                else:
                    await self._sleep(op.seconds)
            except (ConnectionError, TimeoutError) as exc:
                error = exc

    def _post_sync(self, op: _Post) -> _Reply:
        response = self._sync_pool.post(op.endpoint, op.body, op.headers, op.timeout)
        try:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                decoder = _SSE()
                for piece in response.pieces():
                    for message in decoder.feed(piece):
                        if message.get("id") == op.request_id and ("result" in message or "error" in message):
                            return _Reply(response.status, response.headers, message)
                        if _is_server_request(message):
                            answer = op.answers.answer(message["method"], message.get("params") or {}, op.service)
                            if inspect.isawaitable(answer):
                                answer.close()  # type: ignore[attr-defined]
                                raise TypeError("an async input callback needs the async call: use acall / await")
                            self._respond_sync(op, message["id"], answer)
                        elif inspect.isawaitable(_progress(op, message)):
                            raise TypeError("an async on_progress needs the async call: use acall / await")
                return _Reply(response.status, response.headers, None, b"(an event stream without a response)")
            data = response.read()
            return _Reply(response.status, response.headers, _json_message(data) if data else None, data)
        finally:
            response.release()

    async def _post_async(self, op: _Post) -> _Reply:
        response = await self._async_pool.post(op.endpoint, op.body, op.headers, op.timeout)
        try:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                decoder = _SSE()
                async for piece in response.pieces():
                    for message in decoder.feed(piece):
                        if message.get("id") == op.request_id and ("result" in message or "error" in message):
                            return _Reply(response.status, response.headers, message)
                        if _is_server_request(message):
                            answer = op.answers.answer(message["method"], message.get("params") or {}, op.service)
                            if inspect.isawaitable(answer):
                                answer = await answer
                            await self._respond_async(op, message["id"], answer)
                            continue
                        pending = _progress(op, message)
                        if inspect.isawaitable(pending):
                            await pending
                return _Reply(response.status, response.headers, None, b"(an event stream without a response)")
            data = await response.read()
            return _Reply(response.status, response.headers, _json_message(data) if data else None, data)
        finally:
            response.release()

    # -- legacy eras: a server-to-client request on the call's stream, answered by a POST ------

    def _respond_sync(self, op: _Post, request_id: Any, result: dict[str, Any]) -> None:
        body = protocol.dumps({"jsonrpc": "2.0", "id": request_id, "result": result})
        response = self._sync_pool.post(op.endpoint, body, op.headers, op.timeout)
        try:
            response.read()
        finally:
            response.release()
        _check_accepted(op, response.status)

    async def _respond_async(self, op: _Post, request_id: Any, result: dict[str, Any]) -> None:
        body = protocol.dumps({"jsonrpc": "2.0", "id": request_id, "result": result})
        response = await self._async_pool.post(op.endpoint, body, op.headers, op.timeout)
        try:
            await response.read()
        finally:
            response.release()
        _check_accepted(op, response.status)

    # -- one request, retried ----------------------------------------------------------------

    def _build(
        self,
        server: _Server,
        method: str,
        params: dict[str, Any] | None,
        request_id: int | None,
        name: str | None,
        options: CallOptions,
        progress_token: str | None,
        arguments: dict[str, Any] | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        traceparent = options.traceparent or current_traceparent()
        meta: dict[str, Any]
        if server.era == "modern":
            # The headers and _meta of a plain call are the same every time: built once per
            # server, then shared (copied only when a call adds to them).
            headers = server.headers.get((method, name)) or self._modern_headers(server, method, name)
            meta = options.answers.metas.get(server.version) or self._modern_meta(server.version, options.answers)
            if arguments is not None and name in server.param_headers:
                try:
                    headers = {**headers, **mcpheaders.param_headers(server.param_headers[name], arguments)}
                except ValueError as exc:
                    raise _Unencodable(str(exc)) from None
        else:
            headers, meta = dict(self._headers), {}
            if method != "initialize":
                headers["mcp-protocol-version"] = server.version
            if server.session_id:
                headers["mcp-session-id"] = server.session_id
        if traceparent:
            meta = {**meta, "traceparent": traceparent}
            headers = {**headers, "traceparent": traceparent}
        if progress_token is not None:
            meta = {**meta, "progressToken": progress_token}
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if request_id is not None:
            message["id"] = request_id
        if params is not None or meta:
            message["params"] = {**(params or {}), "_meta": meta} if meta else params
        try:
            return protocol.dumps(message), headers
        except TypeError as exc:
            raise _Unencodable(str(exc)) from None

    def _modern_headers(self, server: _Server, method: str, name: str | None) -> dict[str, str]:
        headers = {**self._headers, "mcp-protocol-version": server.version, "mcp-method": method}
        if name is not None:
            headers["mcp-name"] = mcpheaders.encode(name)
        if len(server.headers) < _MAX_CACHED:
            server.headers[(method, name)] = headers
        return headers

    @staticmethod
    def _modern_meta(version: str, answers: ClientInput) -> dict[str, Any]:
        meta = {_META_VERSION: version, _META_CLIENT: CLIENT_INFO, _META_CAPABILITIES: answers.capabilities}
        answers.metas[version] = meta  # kept with the callbacks it declares: the client's defaults live long
        return meta

    def _send(
        self,
        server: _Server,
        method: str,
        params: dict[str, Any] | None,
        deadline: float,
        *,
        retry: bool,
        name: str | None = None,
        arguments: dict[str, Any] | None = None,
        options: CallOptions = _NO_OPTIONS,
        notification: bool = False,
    ) -> Generator[Any, Any, _Reply]:
        renewed = False
        for n in itertools.count():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timed_out(server)
            request_id = None if notification else next(self._ids)
            token = f"devenv-{request_id}" if options.on_progress and request_id is not None else None
            body, headers = self._build(server, method, params, request_id, name, options, token, arguments)
            post = _Post(
                server.endpoint,
                body,
                headers,
                request_id or 0,
                remaining,
                options.on_progress,
                token,
                options.answers,
                server.service,
            )
            retry_after = None
            try:
                reply = yield post
            except ConnectionError as exc:
                if server.service not in self._servers and (
                    hint := first_contact_failure(server.service, server.url, exc)
                ):
                    raise _unavailable(server.service, server.url, hint) from None  # no stack there: fail now
                failure = _unavailable(server.service, server.url, str(exc) or type(exc).__name__)
            except TimeoutError:
                raise self._timed_out(server) from None
            else:
                status = reply.status
                if status == 503 and CRASHED_HEADER in reply.headers:  # a broken edit: retrying cannot help
                    raise _unavailable(server.service, server.url, reply.headers[CRASHED_HEADER])
                if status in _RETRYABLE_STATUS:
                    failure = _unavailable(server.service, server.url, f"HTTP {status} ({_STATUS_TEXT[status]})")
                    retry_after = _retry_after(reply.headers.get("retry-after"))
                elif status == 401:
                    raise ProtocolError(
                        f"{server.service}: {redact(server.url)} refused the call (HTTP 401 Unauthorized):"
                        " set DEVENV_AUTH_TOKEN (or DEVENV_AUTH_TOKEN_FILE) to the service's token"
                    )
                elif status == 404 and server.session_id and method != "initialize" and not renewed:
                    # The server forgot our session (restarted): start a new one, then resend once.
                    renewed = True
                    yield from self._initialize(server, deadline)
                    continue
                else:
                    if "mcp-session-id" in reply.headers and method == "initialize":
                        server.session_id = reply.headers["mcp-session-id"]
                    return reply
            if not retry or n >= self._retries:
                raise failure
            # Capped exponential backoff; jitter spreads clients that all lost the same server.
            # The exponent is capped so that a huge ``retries`` cannot overflow the float.
            delay = min(self._max_backoff, self._backoff * 2 ** min(n, 60)) * random.uniform(0.5, 1.0)
            if retry_after is not None:
                delay = max(delay, retry_after)
            if time.monotonic() + delay >= deadline:
                raise failure  # no time left for another attempt
            yield _Sleep(delay)
        raise AssertionError("unreachable")

    def _timed_out(self, server: _Server) -> ServiceUnavailable:
        reason = f"no answer within {self._total_timeout:g} s (the client's timeout, retries included)"
        return _unavailable(server.service, server.url, reason)

    def _message(self, server: _Server, reply: _Reply) -> dict[str, Any]:
        message = reply.message
        if message is None:
            raise ProtocolError(
                f"{server.service}: HTTP {reply.status} from {redact(server.url)} is not JSON: {reply.data[:200]!r}"
            )
        if "result" not in message and "error" not in message:
            raise ProtocolError(
                f"{server.service}: HTTP {reply.status} from {redact(server.url)} is not a JSON-RPC response"
            )
        return message

    # -- per server, once: which era, then the tools -----------------------------------------

    def _ready(self, service: str, deadline: float) -> Generator[Any, Any, _Server]:
        server = self._servers.get(service)
        if server is not None and server.era is not None:
            return server
        url = _endpoint(self._resolve(service))
        server = _Server(service, url, h1.Endpoint.parse(url))
        if self._era == "legacy":
            yield from self._initialize(server, deadline)
        elif self._era == "modern":
            server.era = "modern"
        else:
            yield from self._discover(server, deadline)
        yield from self._fetch_tools(server, deadline)
        self._servers[service] = server
        return server

    def _discover(self, server: _Server, deadline: float) -> Generator[Any, Any, None]:
        server.era = "modern"
        reply = yield from self._send(server, "server/discover", {}, deadline, retry=True)
        message = reply.message or {}
        result = message.get("result")
        error = message.get("error") if isinstance(message.get("error"), dict) else None
        supported: list[str] = []
        if isinstance(result, dict):
            supported = list(result.get("supportedVersions") or [])
            server.discovered = result
        elif error is not None and isinstance(error.get("data"), dict):
            supported = list(error["data"].get("supported") or [])
        if MODERN_VERSION in supported:
            return
        if error is not None and error.get("code") in _MODERN_ERRORS and not supported:
            raise ProtocolError(f"{server.service}: server/discover failed: {error.get('message')}", error.get("code"))
        # Not a modern server (or one offering only legacy versions): the initialize handshake.
        yield from self._initialize(server, deadline, [v for v in LEGACY_VERSIONS if v in supported])

    def _initialize(
        self, server: _Server, deadline: float, versions: list[str] | None = None
    ) -> Generator[Any, Any, None]:
        server.era, server.session_id = "legacy", None
        server.version = (versions or LEGACY_VERSIONS)[0]
        # A legacy session declares its capabilities once, at initialize: the client's defaults.
        capabilities = self.session_answers.capabilities
        params = {"protocolVersion": server.version, "capabilities": capabilities, "clientInfo": CLIENT_INFO}
        reply = yield from self._send(server, "initialize", params, deadline, retry=True)
        message = self._message(server, reply)
        if "error" in message:
            error = message["error"]
            raise ProtocolError(f"{server.service}: initialize failed: {error.get('message')}", error.get("code"))
        agreed = message["result"].get("protocolVersion")
        if agreed not in LEGACY_VERSIONS:
            raise ProtocolError(f"{server.service}: the server chose protocol version {agreed!r}, which devenv lacks")
        server.version = agreed
        yield from self._send(server, "notifications/initialized", None, deadline, retry=True, notification=True)

    def _fetch_tools(self, server: _Server, deadline: float) -> Generator[Any, Any, None]:
        listed = yield from self._paginate(server, "tools/list", "tools", deadline)
        tools: dict[str, dict[str, Any]] = {}
        param_headers: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for tool in listed:
            name = tool.get("name")
            if not isinstance(name, str):
                continue
            if server.era == "modern":
                try:
                    marked = mcpheaders.marked_parameters(tool.get("inputSchema") or {})
                except ValueError as exc:
                    # The spec: leave out a tool whose x-mcp-header is invalid, keep the others.
                    log.warning("%s: leaving out tool %r: %s", server.service, name, exc)
                    continue
                if marked:
                    param_headers[name] = marked
            tools[name] = tool
        server.tools, server.param_headers = tools, param_headers

    def _paginate(self, server: _Server, method: str, key: str, deadline: float) -> Generator[Any, Any, list]:
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(1000):
            params = {"cursor": cursor} if cursor else {}
            message = self._message(server, (yield from self._send(server, method, params, deadline, retry=True)))
            if "error" in message:
                raise self._rpc_error(server.service, "", message["error"])
            result = message["result"]
            items.extend(item for item in result.get(key, []) if isinstance(item, dict))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return items

    # -- calls ------------------------------------------------------------------------------

    def _list_tools(self, service: str) -> Generator[Any, Any, list[dict[str, Any]]]:
        deadline = time.monotonic() + self._total_timeout
        server = yield from self._ready(service, deadline)
        yield from self._fetch_tools(server, deadline)
        return list(server.tools.values())

    def _list_all(self, service: str, method: str, key: str) -> Generator[Any, Any, list[dict[str, Any]]]:
        deadline = time.monotonic() + self._total_timeout
        server = yield from self._ready(service, deadline)
        return (yield from self._paginate(server, method, key, deadline))

    def _request(
        self, service: str, method: str, params: dict[str, Any], options: CallOptions
    ) -> Generator[Any, Any, dict[str, Any]]:
        """resources/read, prompts/get and the like: the result, after any input-required rounds."""
        deadline = time.monotonic() + self._total_timeout
        server = yield from self._ready(service, deadline)
        name = params.get("name", params.get("uri"))
        message = yield from self._rounds(server, method, params, deadline, True, name, None, options)
        if "error" in message:
            raise self._rpc_error(service, "", message["error"])
        return message["result"]

    def _rounds(
        self,
        server: _Server,
        method: str,
        params: dict[str, Any],
        deadline: float,
        retry: bool,
        name: str | None,
        arguments: dict[str, Any] | None,
        options: CallOptions,
    ) -> Generator[Any, Any, dict[str, Any]]:
        """One request and its multi-round-trip retries (InputRequiredResult → inputResponses)."""
        extra: dict[str, Any] = {}
        refreshed = False
        for _ in range(_MAX_ROUNDS):
            reply = yield from self._send(
                server,
                method,
                {**params, **extra},
                deadline,
                retry=retry,
                name=name,
                arguments=arguments,
                options=options,
            )
            message = self._message(server, reply)
            error = message.get("error")
            if isinstance(error, dict) and error.get("code") == HEADER_MISMATCH and not refreshed and arguments:
                # The tool's x-mcp-header marks may have changed: list the tools again, then resend.
                refreshed = True
                yield from self._fetch_tools(server, deadline)
                continue
            result = message.get("result")
            if not isinstance(result, dict) or result.get("resultType") != "input_required":
                return message
            extra = {}
            responses = {}
            for key, request in (result.get("inputRequests") or {}).items():
                responses[key] = yield _Ask(self._answerer(server, request, options), request)
            if responses:
                extra["inputResponses"] = responses
            if "requestState" in result:
                extra["requestState"] = result["requestState"]
        raise ProtocolError(f"{server.service}: {method} still asked for input after {_MAX_ROUNDS} rounds")

    @staticmethod
    def _answerer(server: _Server, request: Any, options: CallOptions) -> Callable[[dict[str, Any]], Any]:
        """The call's answer to one inputRequests entry (what ``_Ask`` runs: a callback may be async)."""
        if not isinstance(request, dict):
            raise ProtocolError(f"{server.service}: an inputRequests entry is not an object: {request!r}")
        method, params = request.get("method"), request.get("params")
        answers = options.answers
        return lambda request: answers.answer(method, params if isinstance(params, dict) else {}, server.service)

    def _call_tool(
        self, service: str, tool: str, arguments: dict[str, Any], options: CallOptions
    ) -> Generator[Any, Any, Any]:
        deadline = time.monotonic() + self._total_timeout
        server = yield from self._ready(service, deadline)
        definition = server.tools.get(tool)
        idempotent = bool(((definition or {}).get("annotations") or {}).get("idempotentHint"))
        params = {"name": tool, "arguments": arguments}
        try:
            message = yield from self._rounds(
                server, "tools/call", params, deadline, idempotent, tool, arguments, options
            )
        except _Unencodable as exc:
            raise InvalidArguments(tool, [{"field": "", "message": str(exc), "type": "json_type"}]) from None
        if "error" in message:
            raise self._rpc_error(service, tool, message["error"])
        result = message["result"]
        if result.get("isError"):
            payload = (result.get("_meta") or {}).get(protocol.ERROR_META_KEY)
            if payload is None and server.tools and tool not in server.tools:
                raise ToolNotFound(service, tool, sorted(server.tools))  # a foreign server's "unknown tool"
            if payload is None:
                text = " ".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")
                payload = {"type": "ToolError", "error_type": "ToolError", "detail": text}
            raise protocol.error_from_payload(payload, service=service, tool=tool)
        structured = result.get("structuredContent")
        if structured is not None:
            return _unwrap(definition, structured)
        return content_value(result.get("content", []))

    @staticmethod
    def _rpc_error(service: str, tool: str, error: dict[str, Any]) -> DevenvError:
        code, message, data = error.get("code"), error.get("message", ""), error.get("data")
        if code == MISSING_CAPABILITY:  # the server wanted input this call gave no callback for
            required = (data or {}).get("requiredCapabilities") if isinstance(data, dict) else None
            capability = next(iter(required), "") if isinstance(required, dict) and required else ""
            if capability in ("elicitation", "sampling", "roots"):
                return missing(capability, f"{service}: {message}")
        if code == protocol.INVALID_PARAMS and isinstance(data, dict) and data.get("type") in ("ToolNotFound",):
            return protocol.error_from_payload(data, service=service, tool=tool)
        if code == protocol.INVALID_PARAMS and tool and "unknown tool" in message.lower():
            return ToolNotFound(service, tool)
        return ProtocolError(f"{service}: {message}", code, data)
