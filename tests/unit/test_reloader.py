"""`devenv serve --reload` (devenv.reloader) in a local stack: what an edit restarts, and a broken edit.

Real processes: a LocalStack with live reload over a throwaway package under tmp_path,
edited as a developer would, and probed over HTTP and through the CLI and MCPClient.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from devenv import MCPClient, ServiceUnavailable
from devenv.stack import LocalStack
from devenv.tools import Registry

SOURCE = '''\
from devenv import Service
{imports}
service = Service({name!r})
seen = []


@service.tool
def answer() -> str:
    return {value}


@service.tool
def remember(text: str = "") -> list[str]:
    """Keep ``text`` in this process's memory; return all kept so far."""
    if text:
        seen.append(text)
    return seen
'''

DEVENV = [sys.executable, "-m", "devenv.cli"]


def write(root: Path, name: str, value: str, imports: str = "") -> None:
    (root / name / "service.py").write_text(SOURCE.format(name=name, value=value, imports=imports))


def call(url: str, tool: str, **arguments):
    return httpx.post(f"{url}/tools/{tool}", json=arguments, timeout=10, trust_env=False).json()


def workers(supervisor: int) -> list[int]:
    """The worker processes a reloader forked (children of the supervisor)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == supervisor and fields[0] not in "ZX":
                found.append(int(entry.name))
    return found


def until(check, timeout: float = 30, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (httpx.HTTPError, ValueError):
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """(package root, package name): alpha imports shared.py, beta does not."""
    root = tmp_path / "pkgs"
    name = f"relpkg_{uuid.uuid4().hex[:8]}"
    package = root / name
    for service in ("alpha", "beta"):
        (package / service).mkdir(parents=True)
        (package / service / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "shared.py").write_text("GREETING = 'hello'\n")
    write(package, "alpha", "GREETING", imports=f"from {name}.shared import GREETING\n")
    write(package, "beta", "'beta 1'")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("DEVENV_SERVICES_PACKAGE", name)
    return package, name


@pytest.fixture
def stack(project, tmp_path):
    package, name = project
    stack = LocalStack(
        tmp_path / "state",
        reload=True,
        registry=Registry(name),
        declared_ports=False,
        first_port=21000,
        stop_timeout=5,
    )
    stack.up()
    yield stack
    stack.down()


def by_name(stack: LocalStack) -> dict:
    return {s.name: s for s in stack.status()}


def test_an_edit_restarts_only_its_service_and_the_others_keep_their_process_and_state(project, stack):
    package, _ = project
    urls = stack.endpoints()
    assert call(urls["beta"], "remember", text="before") == ["before"]
    beta_workers = workers(by_name(stack)["beta"].pid)
    alpha_workers = workers(by_name(stack)["alpha"].pid)
    assert len(beta_workers) == 1 and len(alpha_workers) == 1

    write(package, "alpha", "'alpha 2'")
    until(lambda: call(urls["alpha"], "answer") == "alpha 2", what="alpha to serve the edit")
    until(lambda: workers(by_name(stack)["alpha"].pid) not in ([], alpha_workers), what="alpha's new worker")
    time.sleep(1)  # a reload of beta, had one been started, would be under way by now
    assert workers(by_name(stack)["beta"].pid) == beta_workers
    assert call(urls["beta"], "remember") == ["before"]  # beta's memory survived alpha's reload


def test_a_shared_module_restarts_the_services_that_import_it_only(project, stack):
    package, _ = project
    urls = stack.endpoints()
    assert call(urls["alpha"], "answer") == "hello"
    beta_workers = workers(by_name(stack)["beta"].pid)
    (package / "shared.py").write_text("GREETING = 'hi there'\n")
    until(lambda: call(urls["alpha"], "answer") == "hi there", what="alpha to import the edited shared.py")
    time.sleep(1)
    assert workers(by_name(stack)["beta"].pid) == beta_workers


def test_a_broken_edit_is_shown_fails_calls_at_once_and_a_fix_brings_the_service_back(
    project, stack, monkeypatch, tmp_path
):
    package, _ = project
    urls = stack.endpoints()
    broken = package / "beta" / "service.py"
    broken.write_text(broken.read_text().replace("return 'beta 1'", "return ('beta 1'"))

    health = until(
        lambda: (s := by_name(stack)["beta"].health).startswith("crashed") and s, what="beta to show as crashed"
    )
    assert "SyntaxError" in health and f"{package.name}/beta/service.py:" in health

    status = subprocess.run(
        [*DEVENV, "status", "--state-dir", str(stack.state_dir)], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 1
    assert "crashed" in status.stdout and "not healthy: beta" in status.stderr

    monkeypatch.setenv("K8S_MODE", "true")
    monkeypatch.setenv("DEVENV_URL_BETA", urls["beta"])
    client = MCPClient(mode="http", timeout=30)
    try:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as caught:
            client.call("beta/answer", {})
        took = time.monotonic() - started
    finally:
        client.close()
    assert "SyntaxError" in str(caught.value) and "service.py:" in str(caught.value)
    assert took < 10, f"the call took {took:.1f} s: it was retried instead of failing at once"

    write(package, "beta", "'beta fixed'")
    until(lambda: call(urls["beta"], "answer") == "beta fixed", what="the fix to bring beta back")
    until(lambda: by_name(stack)["beta"].healthy, what="beta's status to turn healthy")


def test_up_with_a_service_that_does_not_import_fails_at_once_naming_the_file(project, tmp_path):
    package, name = project
    (package / "beta" / "service.py").write_text("import no_such_module_anywhere\n")
    stack = LocalStack(tmp_path / "state", reload=True, registry=Registry(name), declared_ports=False, first_port=21100)
    started = time.monotonic()
    try:
        with pytest.raises(Exception) as caught:
            stack.up(timeout=60)
    finally:
        stack.down()
    assert "crashed" in str(caught.value) and "no_such_module_anywhere" in str(caught.value)
    assert "beta/service.py:1" in str(caught.value)
    assert time.monotonic() - started < 30  # not the whole timeout


def test_serve_on_a_taken_port_says_so_in_one_line(project):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for reload in ([], ["--reload"]):
            result = subprocess.run(
                [*DEVENV, "serve", "alpha", "--port", str(port), *reload], capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 1
            assert result.stderr.strip().splitlines() == [
                f"error: port {port} on 127.0.0.1 is already in use; choose another with --port N "
                f"(see what listens: ss -ltnp 'sport = :{port}')"
            ]


def test_an_edit_saved_while_the_service_starts_is_not_missed(project, tmp_path):
    """The file watcher starts after the first worker has imported: a save in between still counts."""
    package, name = project
    stack = LocalStack(tmp_path / "state", reload=True, registry=Registry(name), declared_ports=False, first_port=21200)
    try:
        stack.up(["beta"], wait=False)
        write(package, "beta", "'saved during start-up'")  # likely before the watcher runs
        url = stack.endpoints()["beta"]
        until(lambda: call(url, "answer") == "saved during start-up", what="the early save to be served")
    finally:
        stack.down()
