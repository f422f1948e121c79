"""What the start-up and inner-loop benchmarks share: throwaway folders, a tiny service, polling.

Nothing here touches the project's own ``services/`` or ``.devenv``: stacks get a state dir
in a temporary folder, free ports (``declared_ports=False``), and the docker target gets the
name prefix ``bench-`` so it never takes the plain container names a developer's or a test
session's stack uses.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import BenchmarkError

ROOT = Path(__file__).resolve().parent.parent
DOCKER_PREFIX = "bench-"

PULSE = "pulse"  # the tiny service whose answer the inner-loop benchmark edits
PULSE_TOOL = "version"
PULSE_SOURCE = '''"""pulse: one tool whose answer the inner-loop benchmark rewrites, to time edit-to-live."""

from devenv import Service

service = Service("pulse")


@service.tool
def version() -> int:
    """The number the benchmark wrote here last."""
    return {value}
'''


def first_port() -> int:
    """Where a benchmark stack starts looking for free ports: a port free right now, away from
    8100 and up, where the developer's own stack and the test suite's stacks look."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary folder others (the containers' uid 1001) may read."""
    with tempfile.TemporaryDirectory(prefix=f"devenv-bench-{prefix}-") as tmp:
        path = Path(tmp)
        path.chmod(0o755)
        yield path


def data_env(root: Path) -> dict[str, str]:
    """The example services' working folders, as the integration tests give them."""
    env = {}
    for key, name in (("VAULT_ROOT", "vault"), ("UNSORTED_ROOT", "unsorted")):
        folder = root / name
        folder.mkdir(exist_ok=True)
        folder.chmod(0o777)  # container users (uid 1001) write here too
        env[key] = str(folder)
    return env


def write_pulse(service_dir: Path, value: int) -> None:
    """(Re)write ``<service_dir>/service.py`` so that ``version()`` returns ``value``: the edit."""
    service_dir.mkdir(parents=True, exist_ok=True)
    init = service_dir / "__init__.py"
    if not init.exists():
        init.write_text("")
    (service_dir / "service.py").write_text(PULSE_SOURCE.format(value=value))


def pulse_package(root: Path, package: str = "devenv_bench_live") -> Path:
    """A services package holding only ``pulse``, importable with ``root`` on PYTHONPATH."""
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("")
    write_pulse(root / package / PULSE, 0)
    return root / package / PULSE


def project_copy(root: Path, pulse: bool = True) -> Path:
    """A snapshot of what the Dockerfile builds from (its .dockerignore lets in only these), with
    ``services/pulse`` if asked. Others edit the tree while a run goes on: a snapshot keeps the
    images' content hash, and so warm against cold, the same for the whole run."""
    dest = root / "project"
    dest.mkdir()
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in ("devenv", "services"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    if pulse:
        write_pulse(dest / "services" / PULSE, 0)
    for folder, _dirs, files in os.walk(dest):  # readable by the containers' user (dev stage mounts)
        os.chmod(folder, 0o755)
        for file in files:
            os.chmod(os.path.join(folder, file), 0o644)
    return dest


def pulse_value(base_url: str, timeout: float = 1.0) -> int | None:
    """``POST /tools/version`` on a fresh connection: the number, or None while it does not answer."""
    host_port = base_url.removeprefix("http://")
    host, _, port = host_port.partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", f"/tools/{PULSE_TOOL}", b"{}", {"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if response.status != 200:
        return None
    try:
        return int(body)
    except ValueError:
        return None


def wait_for_value(base_url: str, want: int, timeout: float, interval: float = 0.005) -> float:
    """Poll until ``pulse`` answers ``want``; the ``time.perf_counter()`` at which it did."""
    deadline = time.perf_counter() + timeout
    while True:
        got = pulse_value(base_url)
        now = time.perf_counter()
        if got == want:
            return now
        if now > deadline:
            raise BenchmarkError(f"{base_url}: pulse still answers {got!r}, not {want}, after {timeout:g} s")
        time.sleep(interval)


def docker_unavailable() -> tuple[Any, str | None]:
    """(the DockerStack class, None) when the docker target can run here, else (None, why not)."""
    try:
        from devenv.stack.docker import DockerStack
    except ImportError as exc:
        return None, f"devenv.stack.docker is not importable ({exc})"
    try:
        from devenv.stack.base import StackError
    except ImportError as exc:
        return None, f"devenv.stack.base is not importable ({exc})"
    probe = DockerStack(tempfile.gettempdir(), name_prefix=DOCKER_PREFIX)
    try:
        probe.client  # noqa: B018 - connects and pings the engine
    except StackError as exc:
        return None, str(exc)
    except Exception as exc:  # an unfinished target may fail any way: it is skipped, never fatal
        return None, f"{type(exc).__name__}: {exc}"
    return DockerStack, None
