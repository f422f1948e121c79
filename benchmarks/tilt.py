"""Edit-to-live through Tilt (``tilt up -- --target=local``) beside ``devenv up``'s, in one run.

The service is ``pulse`` (``stacks.PULSE_SOURCE``, given a port, since the Tiltfile serves each
service on its own) in a throwaway package. The project's own Tiltfile runs with
``DEVENV_SERVICES_PACKAGE`` pointing at that package, so its catalogue holds pulse alone, and
``--unit-tests=false`` keeps the unit tests from loading the machine during the edits. Each
repetition rewrites ``service.py`` to return the next number and polls ``POST /tools/version``
(a fresh connection every 5 ms) until that number comes back; the clock starts just before the
write. The baseline is ``LocalStack(reload=True)`` (what ``devenv up`` runs) on the same package.

Skipped, with the reason, when no Tilt is found (``tests/tilt/binary.py``: PATH, else the
shared copy). ``python -m benchmarks.tilt`` runs this part alone.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import BenchmarkError
from .stacks import PULSE, PULSE_SOURCE, ROOT, first_port, wait_for_value, workdir
from .stats import spread

PACKAGE = "devenv_bench_tilt"


@dataclass(frozen=True)
class Plan:
    repetitions: int = 5
    timeout: float = 60.0  # per edit
    startup_timeout: float = 120.0


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
        log = root / "tilt.log"
        with log.open("wb") as out:
            tilt_up = subprocess.Popen(
                [str(tilt), "up", "--port", "0", "--stream", "--", "--target=local", "--unit-tests=false"],
                cwd=ROOT, env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            try:
                seconds = _edits(url, service_dir, port, counter, plan)
            except BenchmarkError as exc:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise BenchmarkError(f"{exc}\ntilt up's log ends:\n{tail}") from None
            results["tilt_local"] = _summary(seconds, "`tilt up -- --target=local`")
        finally:
            os.killpg(tilt_up.pid, signal.SIGTERM)  # tilt up stops its serve_cmd processes on SIGTERM
            try:
                tilt_up.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(tilt_up.pid, signal.SIGKILL)
                tilt_up.wait()
    results["tilt_minus_devenv_up_s"] = results["tilt_local"]["median"] - results["devenv_up"]["median"]
    return results


def main() -> None:  # python -m benchmarks.tilt
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(json.dumps(run(Plan(repetitions=reps)), indent=2))


if __name__ == "__main__":
    main()
