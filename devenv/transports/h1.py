"""Lean keep-alive HTTP/1.1 POSTs, blocking (a bare socket) and asyncio (a bare ``Protocol``).

Why not httpx: MCPClient makes one small POST per call, and httpx's per-request machinery
(request/response models, header objects, the anyio-based pool) costs more than the round
trip itself on loopback; ``http.client`` sends the head and the body in two segments and parses
headers with the email package. This module does only what MCP over HTTP needs: POST the
request in one send on a kept-alive connection, read a ``Content-Length`` or chunked body, and
hand an event stream to the caller piece by piece. Both flavours share the parsing (``_take_head``,
``_Body``), which does no I/O. See benchmarks/README.md ("Clients") for the figures.

Errors: anything that means "the request may not have reached the server, or no answer came
back" is raised as ``ConnectionError`` (or ``TimeoutError``); callers decide about retries.
"""

from __future__ import annotations

import asyncio
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


def _request(endpoint: Endpoint, body: bytes, headers: dict[str, str]) -> bytes:
    """The whole request in one buffer, so it leaves in one send (http.client sends the body apart)."""
    lines = [f"POST {endpoint.path} HTTP/1.1\r\nhost: {endpoint.host_header}\r\ncontent-length: {len(body)}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + body


# -- reading a response, without I/O: both connections feed their buffer to these ----------------


def _take_head(buffer: bytearray) -> tuple[int, dict[str, str]] | None:
    """Status and lower-cased headers off the front of ``buffer``, or None until all have arrived."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buffer[:end].decode("latin-1").split("\r\n")
    del buffer[: end + 4]
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ConnectionError(f"not an HTTP/1.1 response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(rest[:3]), headers


class _Body:
    """Where one response body ends: Content-Length, chunked, or the server closing.

    ``take(buffer, closed)`` removes and returns the body bytes available in ``buffer`` (b""
    when it needs more), and sets ``done`` once the body is complete.
    """

    __slots__ = ("_chunked", "_left", "_until_close", "done")

    def __init__(self, headers: dict[str, str]) -> None:
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._until_close = not self._chunked and "content-length" not in headers
        self._left: int | None = None if self._chunked or self._until_close else int(headers["content-length"])
        self.done = self._left == 0

    def take(self, buffer: bytearray, closed: bool) -> bytes:
        if self._until_close:
            piece = bytes(buffer)
            buffer.clear()
            self.done = closed
            return piece
        if not self._chunked:
            piece = bytes(buffer[: self._left])
            del buffer[: len(piece)]
            self._left -= len(piece)  # type: ignore[operator]
            self.done = self._left == 0
            return piece
        while True:
            if self._left is None:  # at a chunk-size line
                end = buffer.find(b"\r\n")
                if end < 0:
                    return b""
                size = int(bytes(buffer[:end]).split(b";")[0], 16)
                del buffer[: end + 2]
                self._left = size if size else -1
            if self._left == -1:  # the last chunk: trailers up to the blank line
                end = buffer.find(b"\r\n")
                if end < 0:
                    return b""
                del buffer[: end + 2]
                if end == 0:
                    self.done = True
                    return b""
                continue
            if len(buffer) < self._left + 2:  # a chunk and its CRLF, whole
                return b""
            piece = bytes(buffer[: self._left])
            del buffer[: self._left + 2]
            self._left = None
            if piece:
                return piece


# -- blocking ------------------------------------------------------------------------------------


def _connection_error(exc: OSError) -> Exception:
    if isinstance(exc, TimeoutError):
        return exc
    return ConnectionError(f"{type(exc).__name__}: {exc}".rstrip(": "))


class _SyncConnection:
    """One kept-alive socket and what has arrived on it."""

    __slots__ = ("buffer", "closed", "sock")

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        try:
            sock = socket.create_connection((endpoint.host, endpoint.port), timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if endpoint.scheme == "https":
                sock = _ssl_context().wrap_socket(sock, server_hostname=endpoint.host)
        except OSError as exc:
            raise _connection_error(exc) from exc
        self.sock, self.buffer, self.closed = sock, bytearray(), False

    def more(self) -> None:
        if self.closed:
            raise ConnectionError("the server closed the connection")
        try:
            data = self.sock.recv(65536)
        except OSError as exc:
            raise _connection_error(exc) from exc
        if not data:
            self.closed = True
        self.buffer += data

    def close(self) -> None:
        self.closed = True
        self.sock.close()


class SyncPool:
    """Kept-alive blocking connections, shared by threads (each connection by one at a time)."""

    def __init__(self) -> None:
        self._idle: dict[Endpoint, list[_SyncConnection]] = {}
        self._lock = threading.Lock()

    def _take(self, endpoint: Endpoint, timeout: float) -> _SyncConnection:
        while True:
            with self._lock:
                idle = self._idle.get(endpoint)
                conn = idle.pop() if idle else None
            if conn is None:
                return _SyncConnection(endpoint, timeout)
            if not _readable(conn.sock):
                conn.sock.settimeout(timeout)
                return conn
            conn.close()  # an idle connection with something to read was closed by the server

    def _give_back(self, endpoint: Endpoint, conn: _SyncConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(endpoint, [])
            if len(idle) < _MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    def post(self, endpoint: Endpoint, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        """Send the POST and read the head. Call ``read()`` or drain ``pieces()``, then ``release()``
        (the connection goes back to the pool only if its body was read to the end)."""
        conn = self._take(endpoint, timeout)
        try:
            try:
                conn.sock.sendall(_request(endpoint, body, headers))
            except OSError as exc:
                raise _connection_error(exc) from exc
            while (head := _take_head(conn.buffer)) is None:
                conn.more()
                if conn.closed:
                    raise ConnectionError("the server closed the connection before answering")
        except BaseException:
            conn.close()
            raise
        status, response_headers = head
        framing = _Body(response_headers)
        keep = response_headers.get("connection", "").lower() != "close" and not framing._until_close

        def pieces() -> Iterator[bytes]:
            while not framing.done:
                piece = framing.take(conn.buffer, conn.closed)
                if piece:
                    yield piece
                elif not framing.done:
                    if conn.closed:
                        raise ConnectionError("the server closed the connection mid-response")
                    conn.more()

        def read() -> bytes:
            return b"".join(pieces())

        def release() -> None:
            if framing.done and keep and not conn.buffer:
                self._give_back(endpoint, conn)
            else:
                conn.close()  # unread body, an error or a server that closes: never reuse

        response = Response(status, response_headers, read, pieces)
        response.release = release  # type: ignore[attr-defined]
        return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


# -- asyncio -------------------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: bytes arrive in ``buffer``; readers wait on ``more()``.

    A request's timeout is one timer handle (``arm``): when it fires the waiting reader gets
    ``TimeoutError`` and the connection is dropped, with none of ``asyncio.timeout``'s
    per-request cancel-and-uncancel machinery.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.expired = False
        self._timer: asyncio.TimerHandle | None = None
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

    def arm(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._timer = loop.call_at(loop.time() + timeout, self._expire)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self.expired = True
        self.transport.close()  # type: ignore[union-attr]
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError())

    async def more(self) -> None:
        if self.expired:
            raise TimeoutError()
        if self.closed:
            raise ConnectionError("the server closed the connection")
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter


class AsyncPool:
    """Kept-alive asyncio connections, one pool per event loop (a connection belongs to its loop)."""

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Endpoint, list[_Connection]]] = (
            weakref.WeakKeyDictionary()
        )

    def _idle(self, loop: asyncio.AbstractEventLoop) -> dict[Endpoint, list[_Connection]]:
        idle = self._loops.get(loop)
        if idle is None:
            idle = self._loops[loop] = {}
        return idle

    async def _take(self, loop: asyncio.AbstractEventLoop, endpoint: Endpoint, timeout: float) -> _Connection:
        idle = self._idle(loop).get(endpoint)
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.buffer:
                return conn
            conn.transport.close()  # type: ignore[union-attr]
        tls = _ssl_context() if endpoint.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):  # only when connecting, which is rare
                _, conn = await loop.create_connection(
                    _Connection, endpoint.host, endpoint.port, ssl=tls, server_hostname=endpoint.host if tls else None
                )
        except OSError as exc:
            raise _connection_error(exc) from exc
        return conn

    def _give_back(self, loop: asyncio.AbstractEventLoop, endpoint: Endpoint, conn: _Connection) -> None:
        idle = self._idle(loop).setdefault(endpoint, [])
        if len(idle) < _MAX_IDLE and not conn.closed:
            idle.append(conn)
        else:
            conn.transport.close()  # type: ignore[union-attr]

    async def post(self, endpoint: Endpoint, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        """Send the POST and read the head. Call ``read()`` or drain ``pieces()``, then ``release()``.

        ``timeout`` bounds everything up to ``release()``: then the reader gets ``TimeoutError``."""
        loop = asyncio.get_running_loop()
        conn = await self._take(loop, endpoint, timeout)
        conn.arm(loop, timeout)
        try:
            conn.transport.write(_request(endpoint, body, headers))  # type: ignore[union-attr]
            while (head := _take_head(conn.buffer)) is None:
                await conn.more()
        except BaseException:
            conn.disarm()
            conn.transport.close()  # type: ignore[union-attr]
            raise
        status, response_headers = head
        framing = _Body(response_headers)
        keep = response_headers.get("connection", "").lower() != "close" and not framing._until_close

        async def pieces() -> AsyncIterator[bytes]:
            while not framing.done:
                piece = framing.take(conn.buffer, conn.closed)
                if piece:
                    yield piece
                elif not framing.done:
                    await conn.more()

        async def read() -> bytes:
            # Most answers are whole in the buffer already: one slice, no generator.
            first = framing.take(conn.buffer, conn.closed)
            if framing.done:
                return first
            return first + b"".join([piece async for piece in pieces()])

        def release() -> None:
            conn.disarm()
            if framing.done and keep and not conn.expired:
                self._give_back(loop, endpoint, conn)
            else:
                conn.transport.close()  # type: ignore[union-attr]

        response = Response(status, response_headers, read, pieces)
        response.release = release  # type: ignore[attr-defined]
        return response

    def close(self) -> None:
        loops, self._loops = dict(self._loops), weakref.WeakKeyDictionary()
        for loop, idle in loops.items():
            for conn in (conn for conns in idle.values() for conn in conns):
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
