"""Test helpers that are library code (the pytest plugin only wraps them in fixtures)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["ServedProcess", "free_port", "serve_in_thread", "serve_process"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_in_thread(app: Any, port: int | None = None, *, timeout: float = 15.0) -> Iterator[str]:
    """Serve an ASGI ``app`` with uvicorn on 127.0.0.1 in a thread; yield its base URL; stop it after."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


@dataclass
class ServedProcess:
    """A running ``devenv serve``: its base URL (``/mcp`` is ``url + "/mcp"``) and its process."""

    url: str
    proc: subprocess.Popen[bytes]


@contextmanager
def serve_process(
    service: str,
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    cwd: Path | str | None = None,
    timeout: float = 30.0,
) -> Iterator[ServedProcess]:
    """``devenv serve SERVICE`` as a user starts it, on a free port, with ``env`` over this process's
    environment; yields once ``/health`` answers, terminates it after. Its output goes to ``log``
    (else to a temporary file, shown if it does not come up)."""
    port = free_port()
    out: BinaryIO = log.open("wb") if log is not None else tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devenv.cli", "serve", service, "--port", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                out.seek(0)
                said = out.read()[-2000:].decode(errors="replace")
                raise RuntimeError(f"devenv serve {service} did not come up on port {port}: {said}")
            time.sleep(0.1)
        yield ServedProcess(url, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False
