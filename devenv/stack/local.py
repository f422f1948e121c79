"""The local target: one ``devenv serve`` (uvicorn) process per service on 127.0.0.1.

Each service runs as ``python -m devenv.cli serve NAME --host 127.0.0.1 --port PORT
[--reload]`` in its own session (so its process group, reload worker included, stops as
one), with stdout and stderr in ``<state dir>/NAME.log``. What was started is written to
``<state dir>/state.json`` so that another process (``devenv status``, ``devenv down``)
finds the stack; the default state dir is ``.devenv`` in the current directory::

    stack = LocalStack(".devenv", reload=True)
    stack.up(["jd-classifier"])          # waits until GET /health answers
    stack.endpoints()                    # {"jd-classifier": "http://127.0.0.1:8101"}
    stack.down()

Ports: the one the service declares (``Service("x", port=8101)`` in its ``service.py``,
read without importing it), else the next free one from 8100.
A process recorded in the state file that is gone (or whose pid now belongs to another
program) is reported as stopped; ``down()`` then only removes the state.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ServiceNotFound
from .base import HEALTHY, STOPPED, ServiceStatus, Stack, StackError
from .state import DEFAULT_STATE_DIR, StateDir, now, open_nofollow, write_atomic

if TYPE_CHECKING:
    import httpx

    from ..tools import Registry

__all__ = ["DEFAULT_STATE_DIR", "FIRST_PORT", "LocalStack"]

FIRST_PORT = 8100
_STATE_VERSION = 1
_LOG_TAIL_LINES = 30
_PROC = Path("/proc")


# -- processes ------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks) from /proc, or None if there is no such process."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may contain spaces and parentheses
    return fields[0], int(fields[2]), int(fields[19])


def _start_ticks(pid: int) -> int | None:
    if not _PROC.is_dir():
        return None
    stat = _proc_stat(pid)
    return stat[2] if stat else None


def _pid_alive(pid: int, start_ticks: int | None) -> bool:
    """True if ``pid`` runs and is still the process we started (pids are reused)."""
    if _PROC.is_dir():
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # a zombie has exited; it only waits for its parent
            return False
        return start_ticks is None or stat[2] == start_ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process now holds the pid
    return True


def _group_members(pgid: int) -> list[int]:
    """Live pids in process group ``pgid`` (Linux: from /proc)."""
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = _proc_stat(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
        if stat is not None and stat[1] == pgid and stat[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _ours(pid: int) -> bool:
    """Is this orphan one of devenv's (a uvicorn reload worker or multiprocessing helper)?"""
    try:
        cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return b"devenv" in cmdline or b"multiprocessing" in cmdline


def _port_error(host: str, port: int) -> OSError | None:
    """None if ``host:port`` can be bound now (with SO_REUSEADDR, as uvicorn binds), else why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def _port_in_source(path: Path) -> int | None:
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError):
        return None  # the service process will report it
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)) != "Service":
            continue
        for keyword in node.keywords:
            value = keyword.value
            if keyword.arg == "port" and isinstance(value, ast.Constant) and type(value.value) is int:
                return value.value
    return None


def declared_port(package: str | None, name: str) -> int | None:
    """``port=`` of the ``Service(...)`` call in ``<package>/<name>/service.py``, if a literal."""
    spec = importlib.util.find_spec(package) if package else None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / name.replace("-", "_") / "service.py"
        if path.is_file():
            return _port_in_source(path)
    return None


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    from ..config import redact

    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror})"
    kept = text.splitlines()[-lines:]
    return redact("\n".join(kept)) if kept else "(the log is empty)"


# -- the stack ------------------------------------------------------------------------------


class LocalStack(StateDir, Stack):
    """Services as local uvicorn processes on ``host``; see the module docstring.

    ``env`` is laid over ``os.environ`` for the service processes (and decides which
    services package the registry reads, ``DEVENV_SERVICES_PACKAGE``). ``stop_timeout`` is
    how long ``down()`` lets a service shut down gracefully before SIGKILL.
    ``declared_ports=False`` gives every service a free port from ``first_port`` up, so a
    test stack never collides with the developer's own ``devenv up``.
    """

    target = "local"

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        reload: bool = False,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        registry: Registry | None = None,
        first_port: int = FIRST_PORT,
        declared_ports: bool = True,
        stop_timeout: float = 10.0,
    ) -> None:
        self.state_dir = Path(state_dir or os.environ.get("DEVENV_STATE_DIR") or DEFAULT_STATE_DIR).absolute()
        self.reload = reload
        self.host = host
        self.env = dict(env or {})
        self.first_port = first_port
        self.declared_ports = declared_ports
        self.stop_timeout = stop_timeout
        self._registry = registry
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # the ones this object started, to reap them

    def __repr__(self) -> str:
        return f"LocalStack({str(self.state_dir)!r}, reload={self.reload})"

    # -- the contract ------------------------------------------------------------------------

    def up(self, services: list[str] | None = None, wait: bool = True, timeout: float = 30) -> dict[str, str]:
        with self._lock():
            state = self._load()
            if state is not None:
                running = [n for n, rec in state["services"].items() if self._alive(n, rec)]
                if running:
                    raise StackError(
                        f"a local stack is already running from {self.state_dir} ({', '.join(running)}); "
                        "stop it first with `devenv down`"
                    )
                self._forget()  # stale: every process it recorded is gone
            names = list(dict.fromkeys(services)) if services else self.registry.names()
            if not names:
                raise StackError(
                    f"no services to start: found no <name>/service.py in package {self.registry.package!r} "
                    "(set DEVENV_SERVICES_PACKAGE, or check that the package is importable)"
                )
            ports = self._assign_ports(names)
            urls = {name: f"http://{self._url_host()}:{port}" for name, port in ports.items()}
            env = self._child_env(urls)
            state = {
                "version": _STATE_VERSION,
                "target": self.target,
                "started_at": now(),
                "host": self.host,
                "reload": self.reload,
                "package": self.registry.package,
                "services": {},
            }
            try:
                for name, port in ports.items():
                    state["services"][name] = self._spawn(name, port, urls[name], env)
                    self._save(state)  # after each start, so `devenv down` can stop a half-started stack
                write_atomic(self.env_file, self._env_file_text(urls))
            except BaseException:
                self._stop(state["services"])
                self._forget()
                raise
        if wait:
            try:
                self._wait_healthy(state["services"], timeout)
            except BaseException:  # includes Ctrl-C while waiting: leave nothing behind
                with self._lock():
                    self._stop(state["services"])
                    self._forget()
                raise
        return dict(urls)

    def down(self) -> list[str]:
        if self._load() is None:
            return []  # nothing to do: do not even create the state dir for the lock
        with self._lock():
            state = self._load()
            if state is None:
                return []
            services = state["services"]
            running = [n for n, rec in services.items() if self._alive(n, rec)]
            self._stop(services)
            self._forget()
        return running

    def status(self) -> list[ServiceStatus]:
        state = self._load()
        if state is None:
            return []
        services = state["services"]
        alive = {n: self._alive(n, rec) for n, rec in services.items()}
        health = dict.fromkeys(services, STOPPED)
        probe = [n for n in services if alive[n]]
        if probe:
            from concurrent.futures import ThreadPoolExecutor

            import httpx

            with (
                httpx.Client(timeout=httpx.Timeout(1.0, connect=0.5), trust_env=False) as client,
                ThreadPoolExecutor(max_workers=min(8, len(probe))) as pool,
            ):
                results = pool.map(lambda n: self._probe(client, n, services[n]["url"]), probe)
                health.update(zip(probe, results, strict=True))
        return [
            ServiceStatus(
                name=n,
                url=rec["url"],
                pid=rec["pid"] if alive[n] else None,
                health=health[n],
                port=rec["port"],
                log=rec["log"],
            )
            for n, rec in services.items()
        ]

    def logs(self, service: str) -> str:
        state = self._load()
        if state is not None and service in state["services"]:
            path = Path(state["services"][service]["log"])
        else:
            path = self.state_dir / f"{service}.log"  # still there after `down`
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            known = sorted(state["services"]) if state else []
            hint = f"; services of the stack: {', '.join(known)}" if known else ""
            raise StackError(f"no log for service {service!r} in {self.state_dir}{hint}") from None

    # -- ports -------------------------------------------------------------------------------

    def _assign_ports(self, names: list[str]) -> dict[str, int]:
        known = self.registry.names()
        for name in names:
            if name not in known:
                raise ServiceNotFound(name, known)
        # Read, not imported: a service's import may be slow, crash or have side effects, and
        # that belongs in its own process and log, not in `devenv up`.
        declared = {name: self._declared_port(name) if self.declared_ports else None for name in names}
        owners: dict[int, str] = {}
        for name, port in declared.items():
            if port is None:
                continue
            if port in owners:
                raise StackError(f"services {owners[port]!r} and {name!r} both declare port {port}")
            owners[port] = name
            error = _port_error(self.host, port)
            if error is not None:
                reason = "is already in use" if error.errno == errno.EADDRINUSE else f"cannot be bound ({error})"
                raise StackError(
                    f"cannot start {name!r}: port {port} on {self.host} {reason}. It is the port "
                    f"{name!r} declares (Service(port={port})); stop what listens there "
                    f"(`ss -ltnp 'sport = :{port}'`) or choose other ports: `devenv up --port-base N`"
                )
        ports: dict[str, int] = {}
        candidate = self.first_port
        for name, port in declared.items():
            if port is None:
                while candidate in owners or _port_error(self.host, candidate) is not None:
                    candidate += 1
                    if candidate > 65535:
                        raise StackError(f"no free port from {self.first_port} up for {name!r}")
                port = candidate
                owners[port] = name
            ports[name] = port
        return ports

    def _declared_port(self, name: str) -> int | None:
        return declared_port(self.registry.package, name)

    def _url_host(self) -> str:
        if self.host in ("0.0.0.0", ""):
            return "127.0.0.1"
        if self.host == "::":
            return "[::1]"
        return f"[{self.host}]" if ":" in self.host else self.host

    # -- processes ---------------------------------------------------------------------------

    def _child_env(self, urls: dict[str, str]) -> dict[str, str]:
        from ..discovery import env_var_for

        env = {**os.environ, **self.env}
        env["DEVENV_SERVICES_PACKAGE"] = self.registry.package
        env["PYTHONUNBUFFERED"] = "1"  # log lines reach the file as they are written
        # Services call each other over HTTP, as in a cluster, and find this stack, not a stale
        # shell export; `env=` given to the stack may still say otherwise.
        env["K8S_MODE"] = self.env.get("K8S_MODE", "true")
        env["DEVENV_SERVICES"] = ",".join(urls)
        env.update({env_var_for(name): url for name, url in urls.items()})
        return env

    def _spawn(self, name: str, port: int, url: str, env: dict[str, str]) -> dict[str, Any]:
        cmd = [sys.executable, "-m", "devenv.cli", "serve", name, "--host", self.host, "--port", str(port)]
        if self.reload:
            cmd.append("--reload")
        log_path = self.state_dir / f"{name}.log"
        fd = open_nofollow(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "wb") as log:
            log.write(f"# devenv: {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._procs[name] = proc
        return {
            "pid": proc.pid,
            "port": port,
            "url": url,
            "log": str(log_path),
            "started_at": now(),
            "start_ticks": _start_ticks(proc.pid),
        }

    def _alive(self, name: str, rec: Mapping[str, Any]) -> bool:
        proc = self._procs.get(name)
        if proc is not None and proc.pid == rec["pid"]:
            return proc.poll() is None
        return _pid_alive(rec["pid"], rec.get("start_ticks"))

    def _pids_to_signal(self, name: str, rec: Mapping[str, Any]) -> tuple[bool, list[int]]:
        """(the leader is ours and alive, so signal its whole group; else these orphans of it)."""
        if self._alive(name, rec):
            return True, [rec["pid"]]
        if not _PROC.is_dir():
            return False, []
        # The leader is gone. A pid that is still some group's id cannot be handed out again,
        # so members of that group are ours: e.g. a reload worker whose supervisor was killed.
        return False, [p for p in _group_members(rec["pid"]) if _ours(p)]

    def _signal(self, services: Mapping[str, Mapping[str, Any]], sig: int) -> bool:
        """Send ``sig`` to each service's processes; True if there was anything to signal."""
        sent = False
        for name, rec in services.items():
            group, pids = self._pids_to_signal(name, rec)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig) if group else os.kill(pid, sig)
                    sent = True
        return sent

    def _stop(self, services: Mapping[str, Mapping[str, Any]]) -> None:
        """SIGTERM each service's process group, wait ``stop_timeout``, SIGKILL what is left."""
        if self._signal(services, signal.SIGTERM):
            deadline = time.monotonic() + self.stop_timeout
            while time.monotonic() < deadline and self._any_left(services):
                time.sleep(0.05)
            if self._signal(services, signal.SIGKILL):
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and self._any_left(services):
                    time.sleep(0.05)
        for name in services:
            proc = self._procs.pop(name, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1)

    def _any_left(self, services: Mapping[str, Mapping[str, Any]]) -> bool:
        for name, rec in services.items():
            if self._alive(name, rec):
                return True
            if _PROC.is_dir() and any(_ours(p) for p in _group_members(rec["pid"])):
                return True
        return False

    # -- health ------------------------------------------------------------------------------

    @staticmethod
    def _probe(client: httpx.Client, name: str, url: str) -> str:
        import httpx

        try:
            response = client.get(f"{url}/health")
        except httpx.TimeoutException:
            return "unreachable: /health timed out"
        except httpx.TransportError:
            return "unreachable"
        try:
            body = response.json()
            answered = body.get("service")
        except (ValueError, AttributeError):
            body, answered = {}, None
        if response.status_code != 200:
            if isinstance(body, dict) and body.get("status") == "crashed":  # devenv.reloader's crash_app
                return f"crashed: {body.get('error')} at {body.get('where')}"
            return f"unhealthy: HTTP {response.status_code}"
        if answered != name:
            return f"unhealthy: the port answers as {answered!r}"
        return HEALTHY

    def _wait_healthy(self, services: Mapping[str, Mapping[str, Any]], timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        pending = list(services)
        last: dict[str, str] = {}
        with httpx.Client(timeout=httpx.Timeout(1.0, connect=0.5), trust_env=False) as client:
            while True:
                for name in list(pending):
                    rec = services[name]
                    if not self._alive(name, rec):
                        proc = self._procs.get(name)
                        code = proc.returncode if proc is not None else None
                        how = f"exited with code {code}" if code is not None else "exited"
                        raise StackError(
                            f"service {name!r} {how} before it answered GET {rec['url']}/health. "
                            f"Last lines of {rec['log']}:\n{_tail(Path(rec['log']))}"
                        )
                    last[name] = self._probe(client, name, rec["url"])
                    if last[name] == HEALTHY:
                        pending.remove(name)
                    elif last[name].startswith("crashed"):  # its import failed: waiting will not fix it
                        raise StackError(f"service {name!r} {last[name]} (see {rec['log']})")
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    details = "\n".join(
                        f"--- {name} ({last.get(name, 'not probed')}), last lines of {services[name]['log']}:\n"
                        f"{_tail(Path(services[name]['log']))}"
                        for name in pending
                    )
                    raise StackError(
                        f"timed out after {timeout:g}s waiting for {', '.join(repr(n) for n in pending)} "
                        f"to answer GET /health\n{details}"
                    )
                time.sleep(0.1)

    # -- state -------------------------------------------------------------------------------

    def _check_state(self, state: dict[str, Any]) -> None:
        for rec in state["services"].values():
            missing = {"pid", "port", "url", "log"} - set(rec)
            if missing:
                raise KeyError(", ".join(sorted(missing)))
