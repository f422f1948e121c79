"""LocalStack against real processes on loopback: one `devenv serve` per service, real HTTP.

Each test makes a throwaway services package under tmp_path, so these tests do not depend
on the example services. Every stack is taken down in a fixture, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devenv.errors import DevenvError, ServiceNotFound
from devenv.stack import LocalStack, StackError, env_exports, get_stack

SERVICE_SOURCE = '''\
from devenv import Service

service = Service({name!r}{port})


@service.tool
def answer() -> str:
    """Say which version of this code runs."""
    return {value!r}
'''

MakePackage = Callable[..., str]


def write_service(root: Path, name: str, *, value: str = "v1", port: int | None = None, source: str = "") -> Path:
    folder = root / name.replace("-", "_")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")
    path = folder / "service.py"
    path.write_text(source or SERVICE_SOURCE.format(name=name, port=f", port={port}" if port else "", value=value))
    return path


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakePackage:
    """Create a services package (a fresh name each time) that this process and the services import."""
    root = tmp_path / "pkgs"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")

    def make(**services: dict) -> str:
        package = f"stackpkg_{uuid.uuid4().hex[:8]}"
        (root / package).mkdir()
        (root / package / "__init__.py").write_text("")
        for name, options in services.items():
            write_service(root / package, name.replace("_", "-"), **options)
        monkeypatch.setenv("DEVENV_SERVICES_PACKAGE", package)
        return package

    make.root = root  # type: ignore[attr-defined]
    return make


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """Where the stack under test keeps its state; whatever it started is stopped afterwards."""
    path = tmp_path / "state"
    try:
        yield path
    finally:
        LocalStack(path, stop_timeout=5).down()


@pytest.fixture
def first_port() -> int:
    """Auto-assigned ports start here: away from 8100+, where a developer's own stack may run."""
    return random.randrange(20000, 32000, 100)  # below the ephemeral range, where clients' ports come from


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def call_answer(url: str) -> str:
    response = httpx.post(f"{url}/tools/answer", json={}, timeout=5, trust_env=False)
    response.raise_for_status()
    return response.json()


def processes_of(package: str) -> list[int]:
    """Live processes started for ``package`` (they inherit DEVENV_SERVICES_PACKAGE)."""
    marker = f"DEVENV_SERVICES_PACKAGE={package}\0".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes() and not gone(int(entry.name)):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_up_serves_each_service_reports_it_and_down_stops_it(make_package, state_dir, first_port):
    package = make_package(alpha={"value": "a1"}, beta={"value": "b1"})
    stack = LocalStack(state_dir, first_port=first_port)

    started = time.perf_counter()
    endpoints = stack.up()
    print(f"\nup → all healthy: {time.perf_counter() - started:.2f}s")

    assert set(endpoints) == {"alpha", "beta"}
    ports = {name: int(url.rsplit(":", 1)[1]) for name, url in endpoints.items()}
    assert all(url == f"http://127.0.0.1:{ports[name]}" for name, url in endpoints.items())
    assert len(set(ports.values())) == 2 and all(p >= first_port for p in ports.values())
    for name, url in endpoints.items():
        health = httpx.get(f"{url}/health", timeout=5, trust_env=False)
        assert health.status_code == 200 and health.json()["service"] == name
    assert call_answer(endpoints["alpha"]) == "a1"
    assert call_answer(endpoints["beta"]) == "b1"

    # Another process (here: another object over the same state dir) finds the stack.
    other = LocalStack(state_dir)
    assert other.endpoints() == endpoints
    statuses = {s.name: s for s in other.status()}
    assert all(s.healthy and s.running for s in statuses.values())
    pids = {name: s.pid for name, s in statuses.items()}
    assert all(pid and not gone(pid) for pid in pids.values())
    state = json.loads((state_dir / "state.json").read_text())
    assert {n: rec["pid"] for n, rec in state["services"].items()} == pids
    assert all(rec["started_at"] and Path(rec["log"]).is_file() for rec in state["services"].values())
    assert "Application startup complete" in other.logs("alpha")
    env_lines = (state_dir / "env").read_text().splitlines()
    assert f"export DEVENV_URL_ALPHA={endpoints['alpha']}" in env_lines
    assert "export K8S_MODE=true" in env_lines

    with pytest.raises(StackError, match="already running"):
        other.up()

    assert sorted(other.down()) == ["alpha", "beta"]
    assert all(gone(pid) for pid in pids.values()) and processes_of(package) == []
    assert all(port_is_free(port) for port in ports.values())
    assert not (state_dir / "state.json").exists() and not (state_dir / "env").exists()
    assert stack.status() == [] and stack.endpoints() == {} and stack.down() == []
    assert "Application startup complete" in stack.logs("beta")  # logs outlive the stack


def test_up_starts_only_the_services_named(make_package, state_dir, first_port):
    make_package(alpha={}, beta={})
    with LocalStack(state_dir, first_port=first_port) as stack:
        assert list(stack.up(["beta"])) == ["beta"]
        assert [s.name for s in stack.status()] == ["beta"]
    assert stack.status() == []  # the with block took it down


def test_declared_port_that_is_taken_fails_clearly_before_starting_anything(make_package, state_dir, first_port):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        make_package(alpha={}, pinned={"port": taken})
        with pytest.raises(StackError) as info:
            LocalStack(state_dir, first_port=first_port).up()
    message = str(info.value)
    assert "'pinned'" in message and str(taken) in message and "already in use" in message
    assert "devenv up --port-base N" in message
    assert not (state_dir / "state.json").exists()
    assert list(state_dir.glob("*.log")) == []  # alpha was not started either


def test_a_service_that_crashes_on_import_fails_up_with_its_log_tail(make_package, state_dir, first_port):
    crash = 'raise RuntimeError("boom: CRASHY_SETTING is missing")\n'
    package = make_package(alpha={}, crashy={"source": crash})
    stack = LocalStack(state_dir, first_port=first_port)
    with pytest.raises(StackError) as info:
        stack.up(timeout=60)
    message = str(info.value)
    assert "'crashy'" in message and "exited" in message
    assert "RuntimeError: boom: CRASHY_SETTING is missing" in message  # the tail of its log
    assert not (state_dir / "state.json").exists()
    assert "serve alpha" in (state_dir / "alpha.log").read_text()  # alpha was started alongside ...
    assert processes_of(package) == []  # ... and stopped with the rest: nothing is left behind


def test_a_service_that_never_gets_healthy_times_out_with_its_log_tail(make_package, state_dir, first_port, tmp_path):
    importers = tmp_path / "importers"
    stuck = textwrap.dedent(
        f"""
        import os, sys, time
        with open({str(importers)!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        print("connecting to the database ...", file=sys.stderr, flush=True)
        time.sleep(60)
        """
    )
    package = make_package(stuck={"source": stuck})
    with pytest.raises(StackError) as info:
        LocalStack(state_dir, first_port=first_port, stop_timeout=2).up(timeout=3)
    message = str(info.value)
    assert "timed out after 3s waiting for 'stuck' to answer GET /health" in message
    assert "connecting to the database ..." in message
    assert processes_of(package) == [] and not (state_dir / "state.json").exists()
    # Only the service's own process imported it: `up` reads the declared port from the source.
    assert str(os.getpid()) not in importers.read_text().split()


def test_unknown_service_is_refused_before_anything_starts(make_package, state_dir):
    make_package(alpha={})
    with pytest.raises(ServiceNotFound, match="'nope'.*alpha"):
        LocalStack(state_dir).up(["nope"])
    assert not (state_dir / "state.json").exists()


def test_stale_state_is_reported_stopped_and_down_cleans_it(make_package, state_dir, first_port):
    make_package(alpha={})
    state_dir.mkdir()
    stale = {
        "version": 1,
        "target": "local",
        "started_at": "2024-01-01T00:00:00+00:00",
        "services": {
            # A process that has exited, and a pid that now belongs to another program (this test).
            "alpha": {"pid": dead_pid(), "port": 1, "url": "http://127.0.0.1:1", "log": str(state_dir / "alpha.log")},
            "beta": {
                "pid": os.getpid(),
                "port": 2,
                "url": "http://127.0.0.1:2",
                "log": str(state_dir / "b.log"),
                "start_ticks": 1,
            },
        },
    }
    (state_dir / "state.json").write_text(json.dumps(stale))
    stack = LocalStack(state_dir, first_port=first_port)

    statuses = stack.status()
    assert [(s.name, s.health, s.pid) for s in statuses] == [("alpha", "stopped", None), ("beta", "stopped", None)]
    assert not stack.is_running()
    assert stack.endpoints() == {"alpha": "http://127.0.0.1:1", "beta": "http://127.0.0.1:2"}

    assert stack.down() == []  # nothing was running, and this test process was not signalled
    assert not (state_dir / "state.json").exists()

    # A stale state does not block the next `up` either.
    (state_dir / "state.json").write_text(json.dumps(stale))
    assert list(stack.up()) == ["alpha"]
    assert stack.status()[0].healthy


def test_damaged_state_file_is_a_clear_error(state_dir):
    state_dir.mkdir()
    (state_dir / "state.json").write_text("{not json")
    with pytest.raises(StackError, match="damaged.*delete it"):
        LocalStack(state_dir).status()
    (state_dir / "state.json").unlink()


def test_down_also_stops_a_reload_worker_whose_supervisor_was_killed(make_package, state_dir, first_port):
    package = make_package(alpha={})
    stack = LocalStack(state_dir, reload=True, first_port=first_port)
    url = stack.up(timeout=60)["alpha"]
    supervisor = stack.status()[0].pid
    os.kill(supervisor, signal.SIGKILL)  # e.g. the OOM killer; the worker keeps serving the socket
    deadline = time.monotonic() + 10
    while not gone(supervisor) and time.monotonic() < deadline:
        stack.status()  # reaps it
        time.sleep(0.05)
    assert LocalStack(state_dir).status()[0].health == "stopped"
    assert call_answer(url) == "v1"  # the orphaned worker still answers

    LocalStack(state_dir).down()
    assert processes_of(package) == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2, trust_env=False)


def test_down_kills_a_service_that_does_not_stop_in_time(make_package, state_dir, first_port, tmp_path):
    started = tmp_path / "hang-started"
    source = SERVICE_SOURCE.format(name="slow", port="", value="v1") + textwrap.dedent(
        f"""
        import pathlib
        import time


        @service.tool
        def hang() -> str:
            \"\"\"Keep a request in flight: uvicorn waits for it on SIGTERM.\"\"\"
            pathlib.Path({str(started)!r}).touch()
            time.sleep(120)
            return "late"
        """
    )
    package = make_package(slow={"source": source})
    stack = LocalStack(state_dir, first_port=first_port, stop_timeout=1)
    url = stack.up(timeout=60)["slow"]
    pid = stack.status()[0].pid

    def call_hang() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{url}/tools/hang", json={}, timeout=120, trust_env=False)

    threading.Thread(target=call_hang, daemon=True).start()
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline, "the request never reached the tool"
        time.sleep(0.05)

    assert stack.down() == ["slow"]
    assert gone(pid) and processes_of(package) == []
    log = stack.logs("slow")
    assert "Shutting down" in log  # it got SIGTERM first ...
    assert "Finished server process" not in log  # ... and, still busy after stop_timeout, SIGKILL


def test_reload_serves_edited_code(make_package, state_dir, first_port):
    package = make_package(alpha={"value": "v1"})
    source = make_package.root / package / "alpha" / "service.py"  # type: ignore[attr-defined]
    stack = LocalStack(state_dir, reload=True, first_port=first_port)
    url = stack.up(timeout=60)["alpha"]
    assert call_answer(url) == "v1"

    source.write_text(source.read_text().replace("'v1'", "'version two'"))
    deadline = time.monotonic() + 30
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = call_answer(url)
        except httpx.HTTPError:
            seen = None  # restarting
        if seen == "version two":
            break
        time.sleep(0.1)
    assert seen == "version two", f"still {seen!r} 30 s after the edit; log:\n{stack.logs('alpha')[-3000:]}"
    assert stack.status()[0].healthy


def test_env_exports_are_shell_quoted():
    lines = env_exports({"jd-classifier": "http://127.0.0.1:8101", "odd": "http://h:1/a b'c"})
    assert lines[0] == "export K8S_MODE=true"
    assert lines[1] == "export DEVENV_SERVICES=jd-classifier,odd"
    assert lines[2] == "export DEVENV_URL_JD_CLASSIFIER=http://127.0.0.1:8101"
    assert shlex.split(lines[3]) == ["export", "DEVENV_URL_ODD=http://h:1/a b'c"]


def test_unknown_target_is_refused():
    with pytest.raises(StackError, match="unknown target 'moon'; available: local, docker, kind"):
        get_stack("moon")
    assert isinstance(get_stack("local", state_dir="x"), LocalStack)
    assert issubclass(StackError, DevenvError)


def test_logs_of_an_unknown_service(state_dir):
    with pytest.raises(StackError, match="no log for service 'ghost'"):
        LocalStack(state_dir).logs("ghost")
