"""``devenv serve --reload``: a forking reloader that restarts one service only when its code changed.

The supervisor (this process) binds the port once, imports the third-party stack (uvicorn,
FastAPI, pydantic, and whatever else the last worker imported from outside the watched
folders) and devenv itself (again after each change in ``devenv/``), and forks a worker per
version of the code. A worker drops the modules of the services package it inherited,
imports the service afresh, tells the supervisor which files it imported, and serves on the
inherited socket. So a restart costs the import of the service only, not of an interpreter,
FastAPI and devenv, and it happens only when a file the worker imported (or one in the
service's own folder) changed: editing one service leaves the others' processes alone.

The listening socket belongs to the supervisor, so connections wait in its backlog while a
worker is replaced, never refused: the new worker is forked and imported while the old one
still serves, and the old one is told to stop (SIGTERM: it finishes its calls) only then.

A worker whose import fails serves :func:`crash_app` instead: ``/health`` and every call are
answered 503 at once with the exception and ``file:line`` (header ``X-Devenv-Crashed`` too,
which the HTTP client turns into ``ServiceUnavailable``), until an edit fixes the file.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hints import CRASHED_HEADER

__all__ = ["CRASHED_HEADER", "crash_app", "describe_failure", "serve_with_reload"]

logger = logging.getLogger("devenv.reload")

#: Third-party modules the supervisor imports before the first fork: what every worker needs.
_PRELOAD = (
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.loops.uvloop",
    "fastapi",
    "fastapi.routing",
    "starlette.responses",
    "pydantic",
    "pydantic_settings",
    "anyio.to_thread",
    "httpx",
    "orjson",
)
_READY_TIMEOUT = 60.0  # seconds a new worker may take to import before it is given up on
_STOP_TIMEOUT = 10.0


# -- what a failed import looks like ---------------------------------------------------------


def describe_failure(exc: BaseException, roots: Iterable[Path] = ()) -> dict[str, Any]:
    """``{"error": "SyntaxError: invalid syntax", "where": "services/x/service.py:12"}``.

    ``where`` is the line that failed: for a syntax error the one the parser named, else the
    innermost frame in the watched folders (the user's code, not importlib's), else the last.
    """
    roots = [Path(r).resolve() for r in roots]
    file, line = None, None
    if isinstance(exc, SyntaxError) and exc.filename:
        file, line = exc.filename, exc.lineno
        message = f"{type(exc).__name__}: {exc.msg}"
    else:
        message = f"{type(exc).__name__}: {exc}".rstrip(": ")
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if any(_under(Path(f.filename), root) for root in roots)]
        if ours or frames:
            frame = (ours or frames)[-1]
            file, line = frame.filename, frame.lineno
    where = f"{_shown(file)}:{line}" if file else "unknown"
    return {"error": message.splitlines()[0][:500] if message else type(exc).__name__, "where": where}


def _shown(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except (ValueError, OSError):
        return False
    return True


def crash_app(service: str, failure: dict[str, Any]):
    """An ASGI app that answers everything 503 with ``failure``: what a broken import serves."""
    summary = f"{service} crashed: {failure['error']} at {failure['where']}"
    detail = {"status": "crashed", "service": service, **failure}
    header = summary.encode("ascii", "replace")[:1000]  # one line of ASCII: safe in any header

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "http":
            return
        if scope["path"] == "/mcp":
            body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": summary, "data": detail}}
        elif scope["path"] in ("/health", "/ready"):
            body = detail
        else:
            body = {"error": {"type": "ServiceUnavailable", "message": summary, **detail}}
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (CRASHED_HEADER.encode(), header),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return app


# -- the worker (a forked child) -------------------------------------------------------------


def _purge(roots: list[Path]) -> None:
    """Forget the modules from ``roots``, so that the next import reads today's code."""
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name != "__main__" and path and any(_under(Path(path), root) for root in roots):
            del sys.modules[name]
    importlib.invalidate_caches()


def _imported(roots: list[Path]) -> tuple[list[str], list[str]]:
    """(files from the watched folders, names of the other modules with a file) in ``sys.modules``."""
    ours, theirs = [], []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or name == "__main__":
            continue
        if any(_under(Path(path), root) for root in roots):
            ours.append(str(Path(path).resolve()))
        elif not name.startswith("_"):
            theirs.append(name)
    return ours, theirs


def _worker(
    sock: socket.socket, report: int, service: str, host: str, port: int, roots: list[Path], stale: list[Path]
) -> None:
    """Runs in the forked child; never returns. ``stale``: the folders whose inherited modules to drop."""
    code = 0
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)  # uvicorn installs its own; the supervisor's are not ours
        _purge(stale)
        failure = None
        try:
            app = importlib.import_module("devenv.server").app_from_env()
        except BaseException as exc:  # anything the import raises is what the developer must see
            failure = describe_failure(exc, roots)
            app = crash_app(service, failure)
            traceback.print_exc()
            with contextlib.suppress(Exception):
                importlib.import_module("devenv.logs").configure_logging()
        ours, theirs = _imported(roots)
        if failure and failure["where"] != "unknown":
            ours.append(str(Path(failure["where"].rsplit(":", 1)[0]).resolve()))
        os.write(report, (json.dumps({"files": ours, "modules": theirs, "failure": failure}) + "\n").encode())
        os.close(report)
        import uvicorn

        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off" if failure else "on",
            timeout_graceful_shutdown=_STOP_TIMEOUT,
        )
        uvicorn.Server(config).run(sockets=[sock])
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# -- the supervisor --------------------------------------------------------------------------


@dataclass
class _Worker:
    pid: int
    report: int  # read end of the pipe the worker writes its one report line to
    files: set[str] = field(default_factory=set)
    failure: dict[str, Any] | None = None
    ready: bool = False


class _Supervisor:
    def __init__(
        self, sock: socket.socket, service: str, host: str, port: int, roots: list[Path], own: Path | None
    ) -> None:
        self.sock, self.service, self.host, self.port = sock, service, host, port
        self.roots = roots
        self.devenv = roots[0]  # devenv's own folder; the others hold the services
        self.own = own  # the service's own folder: any change there restarts it
        self.warm = False  # devenv.server is imported here, as of the code on disk
        self.current: _Worker | None = None
        self.retiring: dict[int, float] = {}  # old workers told to stop → when to SIGKILL them
        self.stopping = False
        self.preloaded: set[str] = set()

    def preload(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.preloaded or name in sys.modules:
                continue
            self.preloaded.add(name)
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    def warm_up(self) -> None:
        """Import devenv (server, tools, ...) here, afresh, so that a worker needs only the service.

        If devenv itself does not import, the workers import it and show why (crash_app)."""
        _purge([self.devenv])
        try:
            importlib.import_module("devenv.server")
            self.warm = True
        except BaseException:  # a broken devenv/ edit: the worker reports it
            _purge([self.devenv])
            self.warm = False

    def fork(self) -> _Worker:
        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            stale = self.roots[1:] if self.warm else self.roots
            _worker(self.sock, write, self.service, self.host, self.port, self.roots, stale)
        os.close(write)
        return _Worker(pid, read)

    def wait_ready(self, worker: _Worker) -> None:
        """Read the worker's report: what it imported, and whether its import failed."""
        deadline = time.monotonic() + _READY_TIMEOUT
        data = b""
        while not data.endswith(b"\n") and time.monotonic() < deadline and not self.stopping:
            readable, _, _ = select.select([worker.report], [], [], 0.2)
            if readable:
                chunk = os.read(worker.report, 1 << 20)
                if not chunk:
                    break
                data += chunk
        os.close(worker.report)
        try:
            report = json.loads(data)
        except ValueError:
            report = {"files": [], "modules": [], "failure": {"error": "the worker exited before it was ready"}}
        worker.files = set(report["files"])
        worker.failure = report["failure"]
        worker.ready = True
        if worker.failure:
            logger.error(
                "%s crashed: %s at %s (fix the file: it reloads on save)",
                self.service,
                worker.failure["error"],
                worker.failure.get("where", "unknown"),
                extra={"service": self.service, **worker.failure},
            )
        self.preload(report["modules"])

    def replace(self, paths: list[Path]) -> None:
        old = self.current
        why = ", ".join(_shown(str(p)) for p in paths[:3])
        logger.info("reloading %s: %s changed", self.service, why, extra={"service": self.service})
        if not self.warm or any(_under(p, self.devenv) for p in paths):
            self.warm_up()
        new = self.fork()
        self.wait_ready(new)  # the old worker serves meanwhile
        self.current = new
        if old is not None:  # it finishes its calls in flight; the loop reaps it
            with contextlib.suppress(ProcessLookupError):
                os.kill(old.pid, signal.SIGTERM)
            self.retiring[old.pid] = time.monotonic() + _STOP_TIMEOUT + 2

    def concerns(self, path: Path) -> bool:
        """Does a change of ``path`` need a new worker?"""
        if self.own is not None and _under(path, self.own):
            return True
        if path.suffix != ".py":
            return False
        worker = self.current
        if worker is None or not worker.ready:
            return True
        return str(path.resolve()) in worker.files

    def run(self) -> int:
        import watchfiles

        def stop(signum: int, frame: Any) -> None:
            self.stopping = True

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, stop)
        self.preload(_PRELOAD)
        self.warm_up()
        forked_at = time.time()
        self.current = self.fork()
        self.wait_ready(self.current)
        own_code = {str(Path(__file__).resolve())}
        first = True
        try:
            for changes in watchfiles.watch(
                *self.roots,
                debounce=400,
                step=20,  # a save is a burst of events a few ms apart: wait this long for the rest
                rust_timeout=200,
                yield_on_timeout=True,
                raise_interrupt=False,
            ):
                if self.stopping:
                    break
                exited = self._reap()
                if exited is not None:
                    logger.error("the worker of %s exited with code %s", self.service, exited)
                    return exited or 1
                changed = sorted({Path(p) for _, p in changes})
                if first:  # the watcher starts after the first worker: catch what was saved meanwhile
                    first = False
                    changed = sorted({*changed, *self._saved_since(forked_at)})
                for path in changed:
                    _drop_bytecode(path)
                relevant = [p for p in changed if self.concerns(p)]
                if relevant:
                    if own_code & {str(p.resolve()) for p in relevant}:
                        logger.warning("devenv/reloader.py changed: restart `devenv serve` to use it")
                    self.replace(relevant)
        finally:
            for pid in [*self.retiring, *([self.current.pid] if self.current else [])]:
                _terminate(pid)
            self.sock.close()
        return 0

    def _saved_since(self, when: float) -> list[Path]:
        """Files of the current worker, or in the service's folder, modified after ``when``."""
        files = {Path(f) for f in self.current.files} if self.current else set()
        if self.own is not None:
            files.update(p for p in self.own.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        saved = []
        for path in files:
            with contextlib.suppress(OSError):
                if path.stat().st_mtime >= when - 0.01:
                    saved.append(path)
        return saved

    def _reap(self) -> int | None:
        """The exit code of the current worker if it died on its own, else None; reaps old workers."""
        now = time.monotonic()
        for pid, deadline in list(self.retiring.items()):
            if now > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            self.retiring.pop(pid, None)
            if self.current is not None and pid == self.current.pid:
                return os.waitstatus_to_exitcode(status)


def _drop_bytecode(path: Path) -> None:
    # .pyc files are checked against the source's mtime in whole seconds and its size: two saves
    # within a second that keep the size (version 1 → 2) would otherwise import the old code.
    if path.suffix == ".py":
        with contextlib.suppress(OSError, ValueError):
            os.unlink(importlib.util.cache_from_source(str(path)))


def _terminate(pid: int) -> None:
    """SIGTERM a worker and wait until it has finished its calls in flight; SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT + 2
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def serve_with_reload(sock: socket.socket, service: str, roots: list[Path], own: Path | None) -> int:
    """Serve ``service`` on the bound ``sock``, with a new worker whenever code it imported changes."""
    from .logs import configure_logging

    configure_logging()
    host, port = sock.getsockname()[:2]
    return _Supervisor(sock, service, host, port, [Path(r).resolve() for r in roots], own).run()
