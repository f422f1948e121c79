"""Start-up: how long until the whole example stack (every service under ``services/``) is ready.

- inprocess: a fresh ``python`` that imports every service through the registry and makes
  a first tool call (``content-classifier/classify``). Reported from the parent's spawn to
  the answer (``seconds``), and inside the child from before ``import devenv`` (``in_child``).
- local: ``LocalStack(declared_ports=False).up()``, which returns once every service answers
  ``GET /health``; then ``down()``, timed too. Without reload (one process per service) and
  with it (``devenv up``'s default: a reloader and a worker per service).
- docker warm: ``DockerStack.up()`` with the images already built, until every service
  answers ``GET /ready``; docker cold: ``DockerStack(rebuild=True).up()``, every image built
  again (the engine's layer cache stays: a content change rebuilds only the layers after it,
  and the dependency layers come from the cache). Both from one snapshot of the project,
  so an edit elsewhere during the run cannot turn a warm start into a build; a run that
  built anyway says so (``images_built``).

Stacks get temporary state dirs and working folders, free ports, and for docker the name
prefix ``bench-``, so nothing collides with a developer's or a test session's stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from . import BenchmarkError
from .stacks import DOCKER_PREFIX, ROOT, data_env, docker_unavailable, first_port, project_copy, workdir
from .stats import spread

FIRST_CALL = ("content-classifier/classify", {"text": "the tax return and the VAT receipts"})

_CHILD = """
import time
start = time.perf_counter()
from devenv import MCPClient, default_registry

registry = default_registry()
names = registry.names()
for name in names:
    registry.get(name)
client = MCPClient(mode="inprocess")
answer = client.call({uri!r}, {arguments!r})
ready = time.perf_counter() - start
import json
print(json.dumps({{"in_child": ready, "services": names, "answer": answer}}), flush=True)
"""


@dataclass(frozen=True)
class Plan:
    inprocess: int  # repetitions
    local: int
    local_reload: int  # 0: skipped
    docker_warm: int  # 0: docker skipped
    docker_cold: int


def _summary(seconds: list[float], **extra: Any) -> dict[str, Any]:
    return {"seconds": seconds, "repetitions": len(seconds), **spread(seconds), **extra}


def _inprocess(repetitions: int, env: dict[str, str]) -> dict[str, Any]:
    import os

    code = _CHILD.format(uri=FIRST_CALL[0], arguments=FIRST_CALL[1])
    child_env = {**os.environ, **env, "K8S_MODE": "false"}
    seconds, inside = [], []
    services: list[str] = []
    for _ in range(repetitions):
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - start
        _, err = proc.communicate(timeout=60)
        if proc.returncode != 0 or not line:
            raise BenchmarkError(f"in-process start-up failed (exit {proc.returncode}):\n{err.decode()[-2000:]}")
        report = json.loads(line)
        categories = report["answer"].get("categories") if isinstance(report["answer"], dict) else None
        if not categories:
            raise BenchmarkError(f"in-process first call answered {report['answer']!r}")
        seconds.append(elapsed)
        inside.append(report["in_child"])
        services = report["services"]
    return _summary(
        seconds,
        label="inprocess: python start, import every service, first call",
        services=services,
        in_child=spread(inside),
    )


def _stack_up_down(make: Any, repetitions: int, label: str, timeout: float = 60) -> dict[str, Any]:
    """``make(steps)`` gives a stack that appends its progress lines to ``steps``."""
    ups, downs, builds = [], [], []
    services: list[str] = []
    for _ in range(repetitions):
        steps: list[str] = []
        stack = make(steps)
        start = time.perf_counter()
        urls = stack.up(timeout=timeout)
        up = time.perf_counter() - start
        try:
            statuses = stack.status()
            unhealthy = [s.name for s in statuses if not s.healthy]
            if unhealthy or not urls:
                raise BenchmarkError(f"{label}: up() returned but {unhealthy or 'no services'} not healthy")
            services = sorted(urls)
        finally:
            start = time.perf_counter()
            stack.down()
            downs.append(time.perf_counter() - start)
        ups.append(up)
        builds.append(sum(line.startswith("building") for line in steps))
    extra: dict[str, Any] = {"images_built": builds} if any(builds) else {}
    return _summary(ups, label=label, services=services, down=spread(downs), **extra)


def _local(repetitions: int, reload: bool, env: dict[str, str], root: Any) -> dict[str, Any]:
    from devenv.stack import LocalStack

    label = "local, live reload (`devenv up`)" if reload else "local: one uvicorn process per service"
    state = root / ("local-reload" if reload else "local")

    def make(steps: list[str]) -> LocalStack:
        return LocalStack(state, reload=reload, env=env, declared_ports=False, first_port=first_port())

    return _stack_up_down(make, repetitions, label)


def _docker(plan: Plan, env: dict[str, str], root: Any) -> dict[str, Any]:
    docker_stack, reason = docker_unavailable()
    if reason:
        return {"docker": {"skipped": reason}}

    project = project_copy(root, pulse=False)

    def make(rebuild: bool, steps: list[str]) -> Any:
        return docker_stack(
            root / "docker",
            env=env,
            project_dir=project,
            name_prefix=DOCKER_PREFIX,
            rebuild=rebuild,
            progress=steps.append,
        )

    results: dict[str, Any] = {}
    try:
        # Cold first: it also leaves the images for the warm runs.
        results["docker_cold"] = _stack_up_down(
            lambda steps: make(True, steps), plan.docker_cold, "docker cold: build every image, then start", timeout=180
        )
        results["docker_warm"] = _stack_up_down(
            lambda steps: make(False, steps),
            plan.docker_warm,
            "docker warm: images built, start containers",
            timeout=180,
        )
    except Exception as exc:  # the docker target is being built: report, never fail the run
        results["docker"] = {"skipped": f"docker target failed: {type(exc).__name__}: {str(exc)[:2000]}"}
    return results


def run(plan: Plan) -> dict[str, Any]:
    with workdir("startup") as root:
        env = data_env(root)
        results: dict[str, Any] = {"inprocess": _inprocess(plan.inprocess, env)}
        results["local"] = _local(plan.local, False, env, root)
        if plan.local_reload:
            results["local_reload"] = _local(plan.local_reload, True, env, root)
        if plan.docker_warm:
            results.update(_docker(plan, env, root))
        else:
            results["docker"] = {"skipped": "not in --quick (image builds take minutes)"}
    return results


def main() -> None:  # python -m benchmarks.startup: this part alone, for a quick look
    print(json.dumps(run(Plan(inprocess=3, local=2, local_reload=2, docker_warm=0, docker_cold=0)), indent=2))


if __name__ == "__main__":
    main()
