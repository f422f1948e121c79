"""`devenv up/down/status/env` with the local target, through the real CLI.

Stacks are started by a `devenv` subprocess, as a developer would in a terminal; CliRunner
is used only where no process is started. The services come from a throwaway package
under tmp_path. Whatever a test started is stopped in a fixture, also when it fails.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from devenv.cli import app
from devenv.stack import LocalStack

SERVICE_SOURCE = '''\
from devenv import Service

service = Service({name!r}, port={port})


@service.tool
def answer() -> str:
    """Say who answers."""
    return {name!r}
'''

_SCRIPT = Path(sys.executable).with_name("devenv")
DEVENV = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "devenv.cli"]


def free_port() -> int:
    """A free loopback port below the ephemeral range, so parallel runs of these tests do not collide."""
    while True:
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A services package with `alpha` and `beta`, importable here and in the service processes.

    They declare random free ports: a developer's own stack may be using 8100 and up.
    """
    root = tmp_path / "pkgs"
    name = f"clipkg_{uuid.uuid4().hex[:8]}"
    for service in ("", "alpha", "beta"):
        (root / name / service).mkdir(parents=True, exist_ok=True)
        (root / name / service / "__init__.py").write_text("")
        if service:
            (root / name / service / "service.py").write_text(SERVICE_SOURCE.format(name=service, port=free_port()))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("DEVENV_SERVICES_PACKAGE", name)
    return name


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "state"
    try:
        yield path
    finally:
        LocalStack(path, stop_timeout=5).down()


def devenv(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DEVENV, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def answer(url: str) -> str:
    return httpx.post(f"{url}/tools/answer", json={}, timeout=5, trust_env=False).json()


def test_importing_the_cli_stays_light():
    code = (
        "import sys, devenv.cli; "
        "print([m for m in ('httpx', 'fastapi', 'pydantic', 'uvicorn', 'devenv.stack', 'devenv.tools') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_up_detached_then_status_env_and_down(package, state_dir):
    sd = ("--state-dir", str(state_dir))
    result = devenv("up", "-d", "--no-reload", *sd)
    assert result.returncode == 0, result.stderr
    assert "alpha" in result.stdout and "beta" in result.stdout and "healthy" in result.stdout

    status = devenv("status", *sd)
    assert status.returncode == 0, status.stderr
    state = json.loads((state_dir / "state.json").read_text())
    pids = [rec["pid"] for rec in state["services"].values()]
    for name, rec in state["services"].items():
        row = next(line for line in status.stdout.splitlines() if f" {name} " in line)
        assert rec["url"] in row and str(rec["pid"]) in row and "healthy" in row

    env = devenv("env", *sd)
    assert env.returncode == 0 and env.stderr == ""
    exports = dict(shlex.split(line)[1].split("=", 1) for line in env.stdout.splitlines())
    assert all(line.startswith("export ") for line in env.stdout.splitlines())
    assert exports == {
        "K8S_MODE": "true",
        "DEVENV_SERVICES": "alpha,beta",
        "DEVENV_URL_ALPHA": state["services"]["alpha"]["url"],
        "DEVENV_URL_BETA": state["services"]["beta"]["url"],
    }
    assert answer(exports["DEVENV_URL_ALPHA"]) == "alpha" and answer(exports["DEVENV_URL_BETA"]) == "beta"

    # As documented: eval $(devenv env), and `source .devenv/env`, in a real shell.
    command = shlex.join([*DEVENV, "env", *sd])
    for script in (f"eval $({command})", f'eval "$({command})"', f"source {shlex.quote(str(state_dir / 'env'))}"):
        shell = subprocess.run(
            ["bash", "-c", f'{script} && echo "$K8S_MODE $DEVENV_URL_ALPHA $DEVENV_URL_BETA"'],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shell.stdout.split() == ["true", exports["DEVENV_URL_ALPHA"], exports["DEVENV_URL_BETA"]], script

    # Remote mode through the env really reaches the stack.
    call = subprocess.run(
        [*DEVENV, "call", "beta/answer"], capture_output=True, text=True, timeout=60, env={**os.environ, **exports}
    )
    assert call.returncode == 0, call.stderr
    assert json.loads(call.stdout) == "beta"

    stopped = devenv("down", *sd)
    assert stopped.returncode == 0
    assert stopped.stdout.strip() == "stopped alpha, beta"
    assert all(gone(pid) for pid in pids)
    assert not (state_dir / "state.json").exists()

    again = devenv("down", *sd)
    assert again.returncode == 0 and "no stack running" in again.stdout
    after = devenv("env", *sd)
    assert after.returncode == 1 and after.stdout == "" and "no stack running" in after.stderr


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "devenv down"])
def test_up_in_the_foreground_shows_the_stack_until_stopped(package, state_dir, how):
    proc = subprocess.Popen(
        [*DEVENV, "up", "--no-reload", "alpha", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        # A shell without job control starts `cmd &` with SIGINT ignored, and the child inherits that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        stack = LocalStack(state_dir)
        deadline = time.monotonic() + 60
        while not (stack.status() and all(s.healthy for s in stack.status())):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the stack did not come up within 60 s"
            time.sleep(0.2)
        pid = stack.status()[0].pid
        assert (state_dir / "env").is_file()
        time.sleep(1.5)  # let the live table refresh at least once
        if how == "devenv down":
            assert devenv("down", "--state-dir", str(state_dir)).stdout.strip() == "stopped alpha"
        else:
            proc.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "alpha" in out and "healthy" in out  # the table
    assert ("stopped by `devenv down`" if how == "devenv down" else "stopped alpha") in out
    assert gone(pid)
    assert not (state_dir / "state.json").exists()


def test_up_that_fails_says_why_and_leaves_nothing(package, state_dir, tmp_path):
    broken = Path(os.environ["PYTHONPATH"].split(os.pathsep)[0]) / package / "beta" / "service.py"
    broken.write_text("import no_such_module_anywhere\n")
    result = devenv("up", "-d", "--no-reload", "--state-dir", str(state_dir))
    assert result.returncode == 1
    assert "'beta' exited" in result.stderr and "no_such_module_anywhere" in result.stderr
    assert not (state_dir / "state.json").exists()


# -- without processes: CliRunner -----------------------------------------------------------

runner = CliRunner()


def test_commands_without_a_stack(state_dir):
    sd = ["--state-dir", str(state_dir)]
    status = runner.invoke(app, ["status", *sd])
    assert status.exit_code == 0 and status.output.strip() == "no stack running"
    down = runner.invoke(app, ["down", *sd])
    assert down.exit_code == 0 and "nothing to stop" in down.output
    env = runner.invoke(app, ["env", *sd])
    assert env.exit_code == 1 and env.stdout == "" and "no stack running" in env.stderr
    assert not state_dir.exists()  # looking does not create the state dir


def test_stale_stack_shows_stopped_and_down_cleans_it(state_dir):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state_dir.mkdir()
    (state_dir / "state.json").write_text(
        json.dumps(
            {
                "version": 1,
                "target": "local",
                "services": {
                    "alpha": {
                        "pid": dead.pid,
                        "port": 8100,
                        "url": "http://127.0.0.1:8100",
                        "log": str(state_dir / "alpha.log"),
                    }
                },
            }
        )
    )
    sd = ["--state-dir", str(state_dir)]
    status = runner.invoke(app, ["status", *sd])
    assert status.exit_code == 0
    assert "stopped" in status.output and "no stack running" in status.output and "devenv down" in status.output
    env = runner.invoke(app, ["env", *sd])
    assert env.exit_code == 1 and "no stack running" in env.stderr
    down = runner.invoke(app, ["down", *sd])
    assert down.exit_code == 0 and "removed the stale state of alpha" in down.output
    assert not (state_dir / "state.json").exists()


@pytest.mark.parametrize("command", ["up", "down", "status", "env"])
def test_an_unknown_target_is_a_usage_error(command, state_dir):
    result = runner.invoke(app, [command, "--target", "moon", "--state-dir", str(state_dir)])
    assert result.exit_code == 2
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # unwrap the rich error panel
    assert "'moon' is not a target; choose from local, docker, kind" in text
    assert not state_dir.exists()


def test_up_with_a_port_base_puts_the_services_there(package, state_dir):
    base = free_port()
    while any(_taken(p) for p in (base, base + 1)):
        base = free_port()
    sd = ("--state-dir", str(state_dir))
    result = devenv("up", "-d", "--no-reload", "--port-base", str(base), *sd)
    assert result.returncode == 0, result.stderr
    urls = LocalStack(state_dir).endpoints()
    assert urls == {"alpha": f"http://127.0.0.1:{base}", "beta": f"http://127.0.0.1:{base + 1}"}
    assert answer(urls["beta"]) == "beta"


def _taken(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_port_base_is_refused_for_targets_that_choose_their_own_ports(state_dir):
    result = runner.invoke(app, ["up", "--port-base", "9000", "--target", "docker", "--state-dir", str(state_dir)])
    assert result.exit_code == 2
    assert "--port-base is for the local target" in result.stderr
    assert not state_dir.exists()


# -- devenv tools ---------------------------------------------------------------------------


def test_tools_lists_the_healthy_services_and_names_the_broken_one(package, monkeypatch):
    monkeypatch.delenv("K8S_MODE", raising=False)
    broken = Path(os.environ["PYTHONPATH"].split(os.pathsep)[0]) / package / "beta" / "service.py"
    broken.write_text("from devenv import Service\n\nservice = Service('beta'\n")
    result = devenv("tools")
    assert result.returncode == 1
    assert "alpha/answer" in result.stdout
    assert "beta/" not in result.stdout
    error = [line for line in result.stderr.splitlines() if line.startswith("error: beta:")]
    assert len(error) == 1 and "SyntaxError" in error[0] and f"{package}/beta/service.py:3" in error[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_services_lists_the_others_and_names_the_broken_one_with_file_and_line(package, as_json):
    # What the Tiltfile reads at every load, `tilt down` included: one broken service must fail
    # it with a line that says where, not a traceback.
    broken = Path(os.environ["PYTHONPATH"].split(os.pathsep)[0]) / package / "beta" / "service.py"
    broken.write_text("from devenv import Service\n\nservice = Service('beta'\n")
    result = devenv("services", *(["--json"] if as_json else []))
    assert result.returncode == 1
    if as_json:
        assert [entry["name"] for entry in json.loads(result.stdout)] == ["alpha"]
    else:
        assert result.stdout.split()[0] == "alpha" and "beta" not in result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: beta: SyntaxError: '(' was never closed at ")
    assert line.endswith(f"{package}/beta/service.py:3")


def test_tools_of_one_service_shows_each_argument_with_type_and_default(package, monkeypatch):
    monkeypatch.delenv("K8S_MODE", raising=False)
    source = Path(os.environ["PYTHONPATH"].split(os.pathsep)[0]) / package / "alpha" / "service.py"
    source.write_text(
        "from typing import Literal\n\nfrom devenv import Service\n\nservice = Service('alpha')\n\n\n"
        "@service.tool(read_only=True)\n"
        "def pick(query: str, limit: int = 5, tags: list[str] | None = None, mode: Literal['a', 'b'] = 'a') -> str:\n"
        "    '''Pick one.'''\n"
        "    return query\n"
    )
    result = devenv("tools", "alpha")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "alpha/pick  [readOnly, idempotent]",
        "    Pick one.",
        "    query: string",
        "    limit: integer = 5",
        "    tags: string[] | null = null",
        '    mode: "a" | "b" = "a"',
    ]
