"""MCP Streamable HTTP client transport: pooled httpx, retries with backoff, SSE and sessions.

Speaks to devenv servers (stateless, JSON answers) and to servers devenv did not write:
those that answer with ``text/event-stream`` and that issue an ``Mcp-Session-Id``.

Failures: ``timeout`` bounds a whole call, retries included, so nothing ever hangs past it.
Only idempotent (and read-only) tools are retried, on connection errors and 429/502/503/504,
up to ``retries`` times with capped exponential backoff and jitter (honouring Retry-After);
a tool that may have side effects fails at once with ``ServiceUnavailable``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from .. import protocol
from .._portal import run_sync
from ..config import redact
from ..discovery import service_url
from ..errors import DevenvError, InvalidArguments, ProtocolError, ServiceUnavailable, ToolNotFound
from ..tools import WRAPPED_KEY
from .base import Transport

__all__ = ["HTTPTransport"]

_SESSION_HEADER = "mcp-session-id"
_VERSION_HEADER = "mcp-protocol-version"
# Failures after which the request may or may not have run: retried only for idempotent tools.
_RETRYABLE = (httpx.TransportError,)
_RETRYABLE_STATUS = {429, 502, 503, 504}
_STATUS_TEXT = {429: "rate limited", 502: "bad gateway", 503: "unavailable", 504: "gateway timeout"}


class _Retry(Exception):
    """Internal: the attempt failed in a way a retry may fix; ``error`` is what to raise if not."""

    def __init__(self, error: ServiceUnavailable, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after


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


@dataclass
class _Session:
    endpoint: str
    session_id: str | None = None
    version: str = protocol.LATEST_VERSION
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)


def _endpoint(base: str) -> str:
    return base if base.endswith("/mcp") else base + "/mcp"


def _unwrap(definition: dict[str, Any] | None, structured: dict[str, Any]) -> Any:
    schema = (definition or {}).get("outputSchema") or {}
    wrapped = schema.get(WRAPPED_KEY)
    if wrapped is None:  # a server devenv did not write: the usual convention is a lone "result"
        wrapped = set(schema.get("properties", {})) == {"result"} and "result" in structured
    return structured["result"] if wrapped else structured


class HTTPTransport(Transport):
    """MCP over HTTP. ``timeout``: the most one call may take, retries included (seconds).

    ``auth_token`` is sent as ``Authorization: Bearer ...`` (MCPClient passes
    ``DEVENV_AUTH_TOKEN``); it never appears in an error or a repr.
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
        limits: httpx.Limits | None = None,
        auth_token: str | None = None,
    ) -> None:
        self._resolve = resolve
        self._total_timeout = timeout
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._retries = retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        self._headers.update(headers or {})
        if auth_token:
            self._headers["authorization"] = f"Bearer {auth_token}"
        self._limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        # Weak: a loop that ends (asyncio.run, a test's loop) must not keep its pool alive here.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._sessions: dict[str, _Session] = {}
        self._ids = itertools.count(1)
        self._sleep = asyncio.sleep  # between retries; a test may record the delays instead

    # -- public contract ---------------------------------------------------------------------

    def call_tool(self, service: str, tool: str, arguments: dict[str, Any]) -> Any:
        return run_sync(self.acall_tool(service, tool, arguments))

    def list_tools(self, service: str) -> list[dict[str, Any]]:
        return run_sync(self.alist_tools(service))

    def __repr__(self) -> str:
        auth = ", auth=True" if "authorization" in self._headers else ""
        return f"HTTPTransport(timeout={self._total_timeout}, retries={self._retries}{auth})"

    async def alist_tools(self, service: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self._total_timeout
        session = await self._session(service, deadline)
        await self._with_retries(service, True, lambda: self._fetch_tools(service, session), deadline)
        return list(session.tools.values())

    async def acall_tool(self, service: str, tool: str, arguments: dict[str, Any]) -> Any:
        deadline = time.monotonic() + self._total_timeout
        session = await self._session(service, deadline)
        try:
            body = protocol.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": next(self._ids),
                    "method": "tools/call",
                    "params": {"name": tool, "arguments": arguments},
                }
            )
        except TypeError as exc:
            raise InvalidArguments(tool, [{"field": "", "message": str(exc), "type": "json_type"}]) from None
        idempotent = bool(session.tools.get(tool, {}).get("annotations", {}).get("idempotentHint"))
        message = await self._with_retries(service, idempotent, lambda: self._post(service, session, body), deadline)
        if "error" in message:
            raise self._rpc_error(service, tool, message["error"])
        result = message.get("result") or {}
        if result.get("isError"):
            payload = (result.get("_meta") or {}).get(protocol.ERROR_META_KEY)
            if payload is None and session.tools and tool not in session.tools:
                raise ToolNotFound(service, tool, sorted(session.tools))  # a foreign server's "unknown tool"
            if payload is None:
                text = " ".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")
                payload = {"type": "ToolError", "error_type": "ToolError", "detail": text}
            raise protocol.error_from_payload(payload, service=service, tool=tool)
        structured = result.get("structuredContent")
        if structured is not None:
            return _unwrap(session.tools.get(tool), structured)
        content = result.get("content", [])
        if len(content) == 1 and content[0].get("type") == "text":
            return content[0]["text"]
        return content

    async def aclose(self) -> None:
        clients, self._clients = dict(self._clients), weakref.WeakKeyDictionary()
        for loop, client in clients.items():
            if loop is asyncio.get_running_loop():
                await client.aclose()
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(client.aclose(), loop)
            # a loop that no longer runs took its sockets with it: nothing left to close

    def close(self) -> None:
        run_sync(self.aclose())

    # -- sessions ----------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        # httpx connections belong to the loop that opened them: one pool per event loop.
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = httpx.AsyncClient(timeout=self._timeout, limits=self._limits, headers=self._headers)
            self._clients[loop] = client
        return client

    async def _session(self, service: str, deadline: float) -> _Session:
        session = self._sessions.get(service)
        if session is None:
            session = _Session(_endpoint(self._resolve(service)))
            await self._with_retries(service, True, lambda: self._initialize(service, session), deadline)
            self._sessions[service] = session
        return session

    async def _initialize(self, service: str, session: _Session) -> None:
        session.session_id = None
        init = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": "initialize",
            "params": {
                "protocolVersion": protocol.LATEST_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "devenv", "version": "0.1.0"},
            },
        }
        reply = await self._post(service, session, protocol.dumps(init), initializing=True)
        if "error" in reply:
            raise ProtocolError(
                f"{service}: initialize failed: {reply['error'].get('message')}", reply["error"].get("code")
            )
        session.version = reply.get("result", {}).get("protocolVersion", protocol.LATEST_VERSION)
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await self._post(service, session, protocol.dumps(note), notification=True)
        await self._fetch_tools(service, session)

    async def _fetch_tools(self, service: str, session: _Session) -> None:
        tools: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            params = {"cursor": cursor} if cursor else {}
            request = {"jsonrpc": "2.0", "id": next(self._ids), "method": "tools/list", "params": params}
            reply = await self._post(service, session, protocol.dumps(request))
            if "error" in reply:
                raise self._rpc_error(service, "", reply["error"])
            result = reply.get("result", {})
            tools.update({t["name"]: t for t in result.get("tools", [])})
            cursor = result.get("nextCursor")
            if not cursor:
                break
        session.tools = tools

    # -- one exchange ------------------------------------------------------------------------

    async def _with_retries(self, service: str, retry: bool, attempt: Callable[[], Any], deadline: float) -> Any:
        for n in itertools.count():
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    return await attempt()
            except _Retry as failed:
                if not retry or n >= self._retries:
                    raise failed.error from None
                # Capped exponential backoff; jitter spreads clients that all lost the same server.
                delay = min(self._max_backoff, self._backoff * 2**n) * random.uniform(0.5, 1.0)
                if failed.retry_after is not None:
                    delay = max(delay, failed.retry_after)
                if time.monotonic() + delay >= deadline:
                    raise failed.error from None  # no time left for another attempt
                await self._sleep(delay)
            except TimeoutError:
                url = self._sessions[service].endpoint if service in self._sessions else self._resolve(service)
                reason = f"no answer within {self._total_timeout:g} s (the client's timeout, retries included)"
                raise _unavailable(service, _endpoint(url), reason) from None

    async def _post(
        self, service: str, session: _Session, body: bytes, *, initializing: bool = False, notification: bool = False
    ) -> dict[str, Any]:
        headers = {}
        if not initializing:
            headers[_VERSION_HEADER] = session.version
        if session.session_id:
            headers[_SESSION_HEADER] = session.session_id
        url = session.endpoint
        try:
            async with self._client().stream("POST", url, content=body, headers=headers) as response:
                if response.status_code in _RETRYABLE_STATUS:
                    status = response.status_code
                    raise _Retry(
                        _unavailable(service, url, f"HTTP {status} ({_STATUS_TEXT[status]})"),
                        _retry_after(response.headers.get("retry-after")),
                    )
                if response.status_code == 401:
                    raise ProtocolError(
                        f"{service}: {redact(url)} refused the call (HTTP 401 Unauthorized): set DEVENV_AUTH_TOKEN"
                        " (or DEVENV_AUTH_TOKEN_FILE) to the service's token"
                    )
                if response.status_code == 404 and session.session_id and not initializing:
                    # The server forgot our session (restarted): start a new one, then resend once.
                    await self._initialize(service, session)
                    return await self._post(service, session, body, notification=notification)
                if initializing and _SESSION_HEADER in response.headers:
                    session.session_id = response.headers[_SESSION_HEADER]
                if notification:
                    return {}
                return await self._read_reply(service, url, response, body)
        except httpx.TransportError as exc:
            raise _Retry(_unavailable(service, url, f"{type(exc).__name__}: {exc}".rstrip(": "))) from exc

    async def _read_reply(self, service: str, url: str, response: httpx.Response, body: bytes) -> dict[str, Any]:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        request_id = orjson.loads(body).get("id")
        if kind == "text/event-stream":
            async for message in _sse_messages(response):
                if message.get("id") == request_id and ("result" in message or "error" in message):
                    return message
            raise ProtocolError(f"{service}: event stream from {url} ended without a response")
        data = await response.aread()
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ProtocolError(
                f"{service}: HTTP {response.status_code} from {url} is not JSON: {data[:200]!r}"
            ) from None
        if not isinstance(message, dict) or ("result" not in message and "error" not in message):
            raise ProtocolError(f"{service}: HTTP {response.status_code} from {url} is not a JSON-RPC response")
        return message

    @staticmethod
    def _rpc_error(service: str, tool: str, error: dict[str, Any]) -> DevenvError:
        code, message, data = error.get("code"), error.get("message", ""), error.get("data")
        if code == protocol.INVALID_PARAMS and isinstance(data, dict) and data.get("type") in ("ToolNotFound",):
            return protocol.error_from_payload(data, service=service, tool=tool)
        if code == protocol.INVALID_PARAMS and tool and "unknown tool" in message.lower():
            return ToolNotFound(service, tool)
        return ProtocolError(f"{service}: {message}", code, data)


async def _sse_messages(response: httpx.Response):
    """JSON-RPC messages from a ``text/event-stream`` body (events joined from their data lines)."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line == "" and data:
            text, data = "\n".join(data), []
            try:
                message = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue  # not JSON-RPC (a keep-alive or a priming event)
            if isinstance(message, dict):
                yield message
