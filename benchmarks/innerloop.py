"""Inner loop: from a file write in a service to the first answer that shows the change.

The service is ``pulse`` (``stacks.PULSE_SOURCE``): one tool, ``version() -> int``, in a
throwaway package in a temporary folder. Each repetition rewrites ``service.py`` so that
the tool returns the next number, and polls ``POST /tools/version`` (a fresh connection
every 5 ms) until that number comes back. The clock starts just before the write.

- local, live reload: ``LocalStack(reload=True)`` (what ``devenv up`` runs): the write is
  all the developer does; devenv's forking reloader (``devenv.reloader``) forks a new worker.
- local, live reload, whole stack: the same edit with the five example services up beside
  ``pulse`` (a copy of the project, ``services/pulse`` added); afterwards the other five must
  still run in the same worker processes, and ``notifications`` must still hold what it was
  sent before the edits (``others_untouched``).
- local, restart (the baseline): ``LocalStack(reload=False)``: write, ``down()``, ``up()``.
- docker, live reload: ``DockerStack(reload=True)``: the image's dev stage with the project's
  ``devenv/`` and ``services/`` mounted (from a copy of the project, so the edit stays there).
- docker, rebuild (the baseline): ``DockerStack(reload=False)``: write, ``down()``, ``up()``,
  which builds a new image because the build context changed.

The docker rows are skipped, with the reason, when ``devenv.stack.docker`` is missing or
no engine answers.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import BenchmarkError
from .stacks import (
    DOCKER_PREFIX,
    PULSE,
    docker_unavailable,
    first_port,
    project_copy,
    pulse_package,
    pulse_value,
    wait_for_value,
    workdir,
    write_pulse,
)
from .stats import spread


@dataclass(frozen=True)
class Plan:
    repetitions: int  # edits with live reload
    baseline_repetitions: int  # edits with a restart (local) or rebuild (docker)
    docker: bool  # also the docker target (slow: image builds)
    timeout: float = 60.0  # per edit (a docker rebuild needs much longer: see _DOCKER_REBUILD_TIMEOUT)


_DOCKER_REBUILD_TIMEOUT = 900.0


def _summary(seconds: list[float], **extra: Any) -> dict[str, Any]:
    return {"seconds": seconds, "repetitions": len(seconds), **spread(seconds), **extra}


# Where the time of one live reload goes, read from the service's log (uvicorn's and devenv's
# JSON lines carry millisecond timestamps): phase → the log message that ends it.
_PHASES = [
    ("detect", "reloading "),  # watchfiles saw the write and the supervisor forks a new worker
    ("start", "Application startup complete."),  # the fork imported devenv and the service afresh
]  # the old worker stops after the new one serves: that is off the path to the first answer


def _phases(log: Path, edited: float, live: float) -> dict[str, float] | None:
    """Seconds per phase of the reload that followed the write at wall-clock ``edited``."""
    stamps: dict[str, float] = {}
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
            when = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        if when < edited - 0.002:  # the clocks agree to the millisecond the log keeps
            continue
        for phase, message in _PHASES:
            if phase not in stamps and str(entry.get("msg", "")).startswith(message):
                stamps[phase] = when
    if len(stamps) != len(_PHASES):
        return None
    out, previous = {}, edited
    for phase, _ in _PHASES:
        out[phase] = max(0.0, stamps[phase] - previous)
        previous = stamps[phase]
    out["first_answer"] = max(0.0, live - previous)
    return out


def _settle(url: str, want: int, timeout: float) -> None:
    """Before the next edit: the service answers the current number (and so is not mid-restart)."""
    wait_for_value(url, want, timeout)
    time.sleep(0.3)  # let the reloader finish its own bookkeeping after the restart


def _edit_and_wait(
    plan: Plan, url: str, log: Path, service_dir: Path, counter: Iterator[int]
) -> tuple[list[float], dict[str, Any] | None]:
    """Edit ``pulse`` to answer the next number, time until it does; per repetition, with phases.

    The service must answer 0 at first (as ``pulse_package`` writes it)."""
    _settle(url, 0, plan.timeout)
    seconds, phases = [], []
    for _ in range(plan.repetitions):
        current = next(counter)
        wall, start = time.time(), time.perf_counter()
        write_pulse(service_dir, current)
        took = wait_for_value(url, current, plan.timeout) - start
        seconds.append(took)
        _settle(url, current, plan.timeout)
        split = _phases(log, wall, wall + took)
        if split:
            phases.append(split)
    breakdown = {phase: spread([p[phase] for p in phases]) for phase in phases[0]} if phases else None
    return seconds, breakdown


# -- local ------------------------------------------------------------------------------------


def _local(plan: Plan) -> dict[str, Any]:
    from devenv.stack import LocalStack
    from devenv.tools import Registry

    results: dict[str, Any] = {}
    counter = itertools.count(1)
    with workdir("live") as root:
        service_dir = pulse_package(root)
        package = service_dir.parent.name
        sys.path.insert(0, str(root))  # the stack lists the package's services from this process
        try:
            env = {
                "DEVENV_SERVICES_PACKAGE": package,
                "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p),
            }

            def stack(reload: bool) -> LocalStack:
                state = root / ("state-reload" if reload else "state-restart")
                return LocalStack(
                    state,
                    reload=reload,
                    env=env,
                    registry=Registry(package),
                    declared_ports=False,
                    first_port=first_port(),
                )

            # Live reload: one stack, edited repeatedly.
            live = stack(reload=True)
            url = live.up([PULSE])[PULSE]
            log = live.state_dir / f"{PULSE}.log"
            try:
                seconds, breakdown = _edit_and_wait(plan, url, log, service_dir, counter)
            finally:
                live.down()
            results["local_reload"] = _summary(seconds, label="local, live reload (`devenv up`)", phases=breakdown)

            # The baseline: the same edit, then the process stopped and started again by hand.
            cold = stack(reload=False)
            url = cold.up([PULSE])[PULSE]
            seconds = []
            try:
                for _ in range(plan.baseline_repetitions):
                    current = next(counter)
                    start = time.perf_counter()
                    write_pulse(service_dir, current)
                    cold.down()
                    url = cold.up([PULSE])[PULSE]
                    seconds.append(wait_for_value(url, current, plan.timeout) - start)
            finally:
                cold.down()
            results["local_restart"] = _summary(seconds, label="local, stop and start (no reload)")
        finally:
            sys.path.remove(str(root))
    return results


def _others(stack: Any, skip: str) -> dict[str, list[int]]:
    """Service → the pids of the workers its reloader forked (children of the recorded pid)."""
    parents = {s.pid: s.name for s in stack.status() if s.name != skip and s.pid}
    found: dict[str, list[int]] = {name: [] for name in parents.values()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) in parents and fields[0] not in "ZX":
            found[parents[int(fields[1])]].append(int(entry.name))
    return {name: sorted(pids) for name, pids in found.items()}


def _local_stack(plan: Plan) -> dict[str, Any]:
    """Edit-to-live with the whole example stack up; the other services must not notice."""
    import httpx

    from devenv.stack import LocalStack
    from devenv.tools import Registry

    from .stacks import data_env

    class CopyRegistry(Registry):  # the copy's services, whatever `services` this process imported
        def __init__(self, folder: Path) -> None:
            super().__init__("services")
            self.folder = folder

        def names(self) -> list[str]:
            return sorted(p.parent.name.replace("_", "-") for p in self.folder.glob("*/service.py"))

    counter = itertools.count(500)
    with workdir("stack") as root:
        project = project_copy(root)
        service_dir = project / "services" / PULSE
        here = os.getcwd()
        os.chdir(project)  # the service processes import devenv and services from the copy
        try:
            stack = LocalStack(
                root / "state",
                reload=True,
                env={**data_env(root), "PYTHONPATH": str(project)},
                registry=CopyRegistry(project / "services"),
                declared_ports=False,
                first_port=first_port(),
            )
            urls = stack.up()
            url = urls[PULSE]
            log = stack.state_dir / f"{PULSE}.log"
            try:
                note = httpx.post(f"{urls['notifications']}/tools/notify", json={"message": "before"}, timeout=10)
                note.raise_for_status()
                before = _others(stack, PULSE)
                seconds, breakdown = _edit_and_wait(plan, url, log, service_dir, counter)
                after = _others(stack, PULSE)
                kept = httpx.post(f"{urls['notifications']}/tools/list_notifications", json={}, timeout=10).json()
            finally:
                stack.down()
        finally:
            os.chdir(here)
    untouched = before == after and all(before.values()) and any(n.get("message") == "before" for n in kept)
    return _summary(
        seconds,
        label=f"local, live reload, whole stack ({len(urls)} services)",
        phases=breakdown,
        services=len(urls),
        others_untouched=untouched,
        other_workers={"before": before, "after": after},
    )


# -- docker -----------------------------------------------------------------------------------


def _docker(plan: Plan, docker_stack: Any) -> dict[str, Any]:
    from devenv import Service
    from devenv.tools import Registry

    results: dict[str, Any] = {}
    counter = itertools.count(1000)
    with workdir("docker-live") as root:
        project = project_copy(root)
        service_dir = project / "services" / PULSE
        registry = Registry(None, [Service(PULSE)])  # the name only: the containers import the code

        def stack(reload: bool) -> Any:
            return docker_stack(
                root / ("state-reload" if reload else "state-rebuild"),
                reload=reload,
                project_dir=project,
                registry=registry,
                name_prefix=DOCKER_PREFIX,
                progress=lambda line: None,
            )

        live = stack(reload=True)
        build_start = time.perf_counter()
        url = live.up([PULSE], timeout=120)[PULSE]
        first_up = time.perf_counter() - build_start
        try:
            current = 0
            _settle(url, current, plan.timeout)
            seconds = []
            for _ in range(plan.repetitions):
                current = next(counter)
                start = time.perf_counter()
                write_pulse(service_dir, current)
                seconds.append(wait_for_value(url, current, plan.timeout) - start)
                _settle(url, current, plan.timeout)
        finally:
            live.down()
        results["docker_reload"] = _summary(
            seconds, label="docker, live reload (dev image, source mounted)", first_up_seconds=first_up
        )

        rebuild = stack(reload=False)
        url = rebuild.up([PULSE], timeout=120)[PULSE]
        if pulse_value(url) != current:
            raise BenchmarkError(f"docker pulse answers {pulse_value(url)!r}, expected {current}")
        seconds = []
        try:
            for _ in range(plan.baseline_repetitions):
                current = next(counter)
                start = time.perf_counter()
                write_pulse(service_dir, current)
                rebuild.down()
                url = rebuild.up([PULSE], timeout=120)[PULSE]
                seconds.append(wait_for_value(url, current, _DOCKER_REBUILD_TIMEOUT) - start)
        finally:
            rebuild.down()
        results["docker_rebuild"] = _summary(seconds, label="docker, image rebuild and restart")
    return results


def _fail_fast(repetitions: int = 5) -> dict[str, Any]:
    """Seconds until a fresh remote-mode client's first call fails where no stack is: nothing
    listens on the port (a stopped stack, a stale ``eval $(devenv env)``), or the in-cluster
    name does not resolve (``K8S_MODE=true`` outside a cluster). The client's timeout is 30 s."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: refused
        cases = {"refused": closed, "unresolved": "http://pulse-service.invalid:8080"}
        out: dict[str, Any] = {}
        saved = {k: os.environ.pop(k, None) for k in ("DEVENV_URL_PULSE", "DEVENV_SERVICES")}
        try:
            for case, url in cases.items():
                os.environ["DEVENV_URL_PULSE"] = url  # as `eval $(devenv env)` would have set it
                out[case] = _first_call(case, repetitions)
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None)
                if value is not None:
                    os.environ[key] = value
    return out


def _first_call(case: str, repetitions: int) -> dict[str, Any]:
    from devenv import MCPClient, ServiceUnavailable

    seconds, message = [], ""
    for _ in range(repetitions):
        client = MCPClient(mode="http", timeout=30)
        start = time.perf_counter()
        try:
            client.call(f"{PULSE}/version", {})
        except ServiceUnavailable as exc:
            message = str(exc)
        finally:
            seconds.append(time.perf_counter() - start)
            client.close()
    return _summary(seconds, label=f"first call, {case}", message=message[:400])


def run(plan: Plan) -> dict[str, Any]:
    results = _local(plan)
    results["local_stack_reload"] = _local_stack(plan)
    results["fail_fast"] = _fail_fast()
    if not plan.docker:
        results["docker"] = {"skipped": "not in --quick (image builds take minutes)"}
        return results
    docker_stack, reason = docker_unavailable()
    if reason:
        results["docker"] = {"skipped": reason}
        return results
    try:
        results.update(_docker(plan, docker_stack))
    except Exception as exc:  # the docker target is being built: report, never fail the run
        results["docker"] = {"skipped": f"docker target failed: {type(exc).__name__}: {str(exc)[:2000]}"}
    return results


def main() -> None:  # python -m benchmarks.innerloop: this part alone, for a quick look
    import json

    print(json.dumps(run(Plan(repetitions=3, baseline_repetitions=3, docker="--docker" in sys.argv)), indent=2))


if __name__ == "__main__":
    main()
