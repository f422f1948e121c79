"""Lean keep-alive HTTP/1.1 POSTs, blocking (``http.client``) and asyncio (a bare ``Protocol``).

Why not httpx: MCPClient makes one small POST per call, and httpx's per-request machinery
(request/response models, header objects, the anyio-based pool) costs more than the round
trip itself on loopback. This module does only what MCP over HTTP needs: POST to a kept-alive
connection, read a ``Content-Length`` or chunked body, and hand an event stream to the caller
piece by piece. See benchmarks/README.md ("Clients") for the figures behind the choice.

Errors: anything that means "the request may not have reached the server, or no answer came
back" is raised as ``ConnectionError`` (or ``TimeoutError``); callers decide about retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import select
import socket
import ssl
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["AsyncPool", "Endpoint", "Response", "SyncPool"]

_MAX_IDLE = 20  # kept-alive connections per endpoint and pool


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an MCP endpoint is an http:// or https:// URL, got {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.scheme, parts.hostname, port, path)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@dataclass
class Response:
    """Status and lower-cased headers; the body is read with ``read()`` or ``pieces()``."""

    status: int
    headers: dict[str, str]
    read: Callable[[], object]  # sync: bytes; async: awaitable bytes
    pieces: Callable[[], object]  # sync: iterator of bytes; async: async iterator of bytes


def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _readable(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


# -- blocking ------------------------------------------------------------------------------------


class SyncPool:
    """Kept-alive ``http.client`` connections, shared by threads (each connection by one at a time)."""

    def __init__(self) -> None:
        self._idle: dict[Endpoint, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def _take(self, endpoint: Endpoint, timeout: float) -> http.client.HTTPConnection:
        conn = None
        while conn is None:
            with self._lock:
                idle = self._idle.get(endpoint)
                conn = idle.pop() if idle else None
            if conn is None:
                break
            if conn.sock is None or _readable(conn.sock):
                conn.close()  # an idle connection with something to read was closed by the server
                conn = None
        if conn is None:
            if endpoint.scheme == "https":
                conn = http.client.HTTPSConnection(
                    endpoint.host, endpoint.port, timeout=timeout, context=_ssl_context()
                )
            else:
                conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
        elif conn.sock is not None:
            conn.sock.settimeout(timeout)
        conn.timeout = timeout
        return conn

    def _give_back(self, endpoint: Endpoint, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(endpoint, [])
            if len(idle) < _MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    @contextlib.contextmanager
    def post(self, endpoint: Endpoint, body: bytes, headers: dict[str, str], timeout: float) -> Iterator[Response]:
        """``with pool.post(...) as response``: the connection goes back to the pool on exit if fully read."""
        conn = self._take(endpoint, timeout)
        done = False
        try:
            try:
                conn.request("POST", endpoint.path, body, headers)
                raw = conn.getresponse()
            except (http.client.HTTPException, OSError) as exc:
                if isinstance(exc, TimeoutError):
                    raise
                raise ConnectionError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
            response_headers = {k.lower(): v for k, v in raw.getheaders()}

            def read() -> bytes:
                try:
                    return raw.read()
                except (http.client.HTTPException, OSError) as exc:
                    if isinstance(exc, TimeoutError):
                        raise
                    raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc

            def pieces() -> Iterator[bytes]:
                try:
                    while piece := raw.read1(65536):
                        yield piece
                except (http.client.HTTPException, OSError) as exc:
                    if isinstance(exc, TimeoutError):
                        raise
                    raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc

            yield Response(raw.status, response_headers, read, pieces)
            done = raw.isclosed() and not raw.will_close
        finally:
            if done:
                self._give_back(endpoint, conn)
            else:
                conn.close()  # unread body, an error or a server that closes: never reuse

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


# -- asyncio -------------------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: bytes arrive in ``buffer``; readers wait on ``_more()``."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _more(self) -> None:
        if self.closed:
            raise ConnectionError("the server closed the connection")
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    async def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            await self._more()
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    async def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            await self._more()
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def head(self) -> tuple[int, dict[str, str]]:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            await self._more()
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1."):
            raise ConnectionError(f"not an HTTP/1.1 response: {lines[0][:80]!r}")
        status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    async def body_pieces(self, headers: dict[str, str]) -> AsyncIterator[bytes]:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int((await self._line()).split(b";")[0], 16)
                if size == 0:
                    while await self._line():  # trailers up to the blank line
                        pass
                    return
                yield await self._exactly(size)
                await self._exactly(2)
        elif "content-length" in headers:
            left = int(headers["content-length"])
            while left:
                if not self.buffer:
                    await self._more()
                piece = bytes(self.buffer[:left])
                del self.buffer[: len(piece)]
                left -= len(piece)
                yield piece
        else:  # read until the server closes
            while True:
                if self.buffer:
                    piece = bytes(self.buffer)
                    self.buffer.clear()
                    yield piece
                if self.closed:
                    return
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter


class AsyncPool:
    """Kept-alive asyncio connections, one pool per event loop (a connection belongs to its loop)."""

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Endpoint, list[_Connection]]] = (
            weakref.WeakKeyDictionary()
        )

    def _idle(self) -> dict[Endpoint, list[_Connection]]:
        loop = asyncio.get_running_loop()
        idle = self._loops.get(loop)
        if idle is None:
            idle = self._loops[loop] = {}
        return idle

    async def _take(self, endpoint: Endpoint) -> _Connection:
        idle = self._idle().get(endpoint)
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.buffer:
                return conn
            conn.transport.close()  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        tls = _ssl_context() if endpoint.scheme == "https" else None
        try:
            _, conn = await loop.create_connection(
                _Connection, endpoint.host, endpoint.port, ssl=tls, server_hostname=endpoint.host if tls else None
            )
        except OSError as exc:
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        return conn

    def _give_back(self, endpoint: Endpoint, conn: _Connection) -> None:
        idle = self._idle().setdefault(endpoint, [])
        if len(idle) < _MAX_IDLE and not conn.closed:
            idle.append(conn)
        else:
            conn.transport.close()  # type: ignore[union-attr]

    async def post(self, endpoint: Endpoint, body: bytes, headers: dict[str, str]) -> Response:
        """Send the POST and read the head. Call ``read()`` or drain ``pieces()``, then ``release()``."""
        conn = await self._take(endpoint)
        lines = [f"POST {endpoint.path} HTTP/1.1\r\nhost: {endpoint.host_header}\r\ncontent-length: {len(body)}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        lines.append("\r\n")
        conn.transport.write("".join(lines).encode("latin-1") + body)  # type: ignore[union-attr]
        try:
            status, response_headers = await conn.head()
        except BaseException:
            conn.transport.close()  # type: ignore[union-attr]
            raise
        keep = response_headers.get("connection", "").lower() != "close"
        finished = False

        async def pieces() -> AsyncIterator[bytes]:
            nonlocal finished
            async for piece in conn.body_pieces(response_headers):
                yield piece
            finished = True

        async def read() -> bytes:
            return b"".join([piece async for piece in pieces()])

        def release() -> None:
            if finished and keep:
                self._give_back(endpoint, conn)
            else:
                conn.transport.close()  # type: ignore[union-attr]

        response = Response(status, response_headers, read, pieces)
        response.release = release  # type: ignore[attr-defined]
        return response

    def close(self) -> None:
        loops, self._loops = dict(self._loops), weakref.WeakKeyDictionary()
        for loop, idle in loops.items():
            for conns in idle.values():
                for conn in conns:
                    if loop.is_closed():
                        continue
                    if loop.is_running() and loop is not _current_loop():
                        loop.call_soon_threadsafe(conn.transport.close)  # type: ignore[union-attr]
                    else:
                        conn.transport.close()  # type: ignore[union-attr]


def _current_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
