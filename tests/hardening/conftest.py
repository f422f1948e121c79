"""Fixtures of the hardening suite: real `devenv serve` processes, a Redis that can be killed,
a throwaway services package, and the closing summary line (cases fuzzed, faults injected,
calls lost)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from devenv.testing import free_port
from tests.hardening import tally

# Hypothesis keeps caches in ./.hypothesis; keep them out of the work tree.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "devenv-hypothesis"))

SERVICE_SOURCE = '''\
"""A service for the hardening tests, served by a real `devenv serve` process."""

import pathlib
import time

from devenv import Service

service = Service("hardy")


@service.tool(read_only=True)
def echo(text: str) -> str:
    """Return text unchanged (read-only, so retried by clients)."""
    return text


@service.tool(read_only=True)
def slow(seconds: float, marker: str = "") -> float:
    """Sleep, after writing marker (so a test knows the call is in flight)."""
    if marker:
        pathlib.Path(marker).write_text("started")
    time.sleep(seconds)
    return seconds


@service.tool
def slow_write(seconds: float, marker: str = "") -> float:
    """Like slow, but not idempotent: never retried."""
    if marker:
        pathlib.Path(marker).write_text("started")
    time.sleep(seconds)
    return seconds
'''


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    counts = tally.counts()
    if not counts:
        return
    line = (
        f"devenv hardening: {counts.get('cases fuzzed', 0)} cases fuzzed"
        f" (schemathesis {counts.get('schemathesis cases', 0)}, hypothesis {counts.get('hypothesis cases', 0)};"
        f" {tally.FUZZ_EXAMPLES} examples per operation/property),"
        f" {counts.get('faults injected', 0)} faults injected,"
        f" {counts.get('calls made', 0)} calls across restarts, {counts.get('calls lost', 0)} calls lost"
    )
    terminalreporter.write_sep("-", "hardening summary")
    terminalreporter.write_line(line)


@pytest.fixture
def services_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A throwaway package holding the `hardy` service, importable here and in child processes."""
    root = tmp_path / "pkgs"
    name = f"hardpkg_{uuid.uuid4().hex[:8]}"
    (root / name / "hardy").mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    (root / name / "hardy" / "__init__.py").write_text("")
    (root / name / "hardy" / "service.py").write_text(SERVICE_SOURCE)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("DEVENV_SERVICES_PACKAGE", name)
    return name


class Served:
    """One `devenv serve` child process; ``start``/``stop`` may be called again (a restart)."""

    def __init__(self, service: str, port: int, env: dict[str, str], log_dir: Path, args: list[str]) -> None:
        self.service, self.port, self.env, self.log_dir, self.args = service, port, env, log_dir, args
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60.0, **extra_env: str) -> Served:
        self.starts += 1
        log = (self.log_dir / f"serve-{self.port}-{self.starts}.log").open("wb")
        env = {**os.environ, "DEVENV_ENV_FILE": os.devnull, **self.env, **extra_env}
        cmd = [sys.executable, "-m", "devenv.cli", "serve", self.service, "--port", str(self.port), *self.args]
        deadline = time.monotonic() + timeout
        while True:  # the previous process's port may take a moment to come free
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.log_dir)
            if self._wait_healthy(deadline):
                return self
            if self.proc.poll() is None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"devenv serve {self.service} did not come up; see {log.name}")
            time.sleep(0.2)

    def _wait_healthy(self, deadline: float) -> bool:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/health", timeout=2, trust_env=False).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        return False

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        tally.add("faults injected")

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def serve(services_package: str, tmp_path: Path) -> Iterator:
    """``serve(port=None, args=(), **env)``: a started `devenv serve hardy`; every one is stopped after."""
    made: list[Served] = []

    def start(port: int | None = None, args: tuple[str, ...] = (), **env: str) -> Served:
        served = Served("hardy", port or free_port(), env, tmp_path, list(args))
        made.append(served)
        return served.start()

    yield start
    for served in made:
        served.stop()


class RedisServer:
    """A redis-server of this test's own on a fixed loopback port, so it can be stopped and restarted."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary, self.workdir = binary, workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        deadline = time.monotonic() + 30
        while True:
            self.proc = subprocess.Popen(
                [*cmd, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        return self
                except OSError:
                    time.sleep(0.05)
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.2)  # the port was still held by the previous one: try again

    def stop(self) -> None:
        """An outage: the server goes away (its clients see refused connections)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
            tally.add("faults injected")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server not found on PATH; .ci/run installs it (apt-get install redis-server)")
        pytest.skip("redis-server not found on PATH (apt-get install redis-server)")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(binary, workdir).start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.proc.terminate()
        server.proc.wait(30)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after a generous deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
