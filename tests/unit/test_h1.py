"""devenv's lean HTTP/1.1 client (transports/h1.py), blocking and asyncio, against raw loopback
servers that answer the way real ones may: chunked bodies split anywhere, a body that trickles
in, one that ends when the server closes, garbage, and a server that never answers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from devenv.transports import h1

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"


class RawServer:
    """Accepts connections; answers each request with ``script`` (byte strings, a pause between)."""

    def __init__(self, script: list[bytes], *, close: bool = False) -> None:
        self.script, self.close_after = script, close
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = h1.Endpoint.parse(f"http://127.0.0.1:{self.listener.getsockname()[1]}/mcp")
        self.requests: list[bytes] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                data = rest[length:]
                for piece in self.script:
                    conn.sendall(piece)
                    time.sleep(0.01)  # the client must cope with the answer arriving in parts
                if self.close_after:
                    return

    def stop(self) -> None:
        self.listener.close()


CHUNKED = [HEAD + b"transfer-encoding: chunked\r\n\r\n5\r\nhel", b"lo\r\n6;ext=1\r\n world\r\n", b"0\r\n\r\n"]
TRICKLE = [HEAD + b"content-length: 11\r\n\r\nhel", b"lo w", b"orld"]
UNTIL_CLOSE = [HEAD + b"connection: close\r\n\r\nhello", b" world"]


def sync_call(pool: h1.SyncPool, server: RawServer, timeout: float = 5) -> bytes:
    response = pool.post(server.endpoint, b'{"a":1}', {"content-type": "application/json"}, timeout)
    try:
        assert response.status == 200 and response.headers["content-type"] == "application/json"
        return response.read()
    finally:
        response.release()


async def async_call(pool: h1.AsyncPool, server: RawServer, timeout: float = 5) -> bytes:
    response = await pool.post(server.endpoint, b'{"a":1}', {"content-type": "application/json"}, timeout)
    try:
        return await response.read()
    finally:
        response.release()


@pytest.mark.parametrize(
    ("script", "close", "connections"), [(CHUNKED, False, 2), (TRICKLE, False, 2), (UNTIL_CLOSE, True, 4)]
)
def test_bodies_arriving_in_parts_are_read_whole_sync_and_async(script, close, connections):
    server = RawServer(script, close=close)
    sync_pool, async_pool = h1.SyncPool(), h1.AsyncPool()

    async def twice() -> list[bytes]:
        return [await async_call(async_pool, server), await async_call(async_pool, server)]

    try:
        assert [sync_call(sync_pool, server), sync_call(sync_pool, server)] == [b"hello world"] * 2
        assert asyncio.run(twice()) == [b"hello world"] * 2
    finally:
        server.stop()
        sync_pool.close()
    # Each request sent whole, head and body together, with its length.
    assert len(server.requests) == 4
    assert all(r.startswith(b"POST /mcp HTTP/1.1\r\n") and r.endswith(b'\r\n\r\n{"a":1}') for r in server.requests)
    # Kept-alive answers reuse their connection (one per pool); a server that closes costs one per call.
    assert server.connections == connections


def test_a_server_that_never_answers_times_out_sync_and_async():
    server = RawServer([])  # reads the request, answers nothing
    try:
        with pytest.raises(TimeoutError):
            sync_call(h1.SyncPool(), server, timeout=0.2)
        with pytest.raises(TimeoutError):
            asyncio.run(async_call(h1.AsyncPool(), server, timeout=0.2))
    finally:
        server.stop()


def test_the_async_timeout_covers_a_body_that_stops_coming():
    server = RawServer([HEAD + b"content-length: 100\r\n\r\npartial"])
    try:
        with pytest.raises(TimeoutError):
            asyncio.run(async_call(h1.AsyncPool(), server, timeout=0.3))
    finally:
        server.stop()


@pytest.mark.parametrize(
    "script",
    [
        [b"SSH-2.0-OpenSSH_9.6\r\n\r\n"],  # not HTTP at all
        [HEAD + b"content-length: 100\r\n\r\ncut short"],  # the server closes mid-body
        [],  # the server closes without a word
    ],
)
def test_garbage_and_cut_answers_are_connection_errors(script):
    server = RawServer(script, close=True)
    try:
        with pytest.raises(ConnectionError):
            sync_call(h1.SyncPool(), server)
        with pytest.raises(ConnectionError):
            asyncio.run(async_call(h1.AsyncPool(), server))
    finally:
        server.stop()
