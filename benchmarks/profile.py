"""``python -m benchmarks.profile [target]``: where a server's time goes under load (py-spy).

Starts one wire target exactly as the benchmark does, loads it with wrk, samples
whichever thread holds the GIL with py-spy (so idle worker threads do not count), and
prints the hottest functions (self and inclusive) and the share of samples per package.
The collapsed stacks are kept in ``benchmarks/results/profile-<target>.txt`` (feed them
to flamegraph.pl or speedscope).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from . import BenchmarkError, wire

RESULTS = Path(__file__).with_name("results")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _where(frame: str) -> tuple[str, str]:
    """``"call (devenv/server.py:104)"`` → (``"call (devenv/server.py)"``, package)."""
    match = _FRAME.match(frame)
    if not match:
        return frame, frame
    path = match["file"]
    marker = "site-packages/"
    relative = path.split(marker, 1)[1] if marker in path else path.split("/work/main/", 1)[-1]
    package = relative.split("/", 1)[0].removesuffix(".py")
    if relative.startswith(("/usr/", "/opt/")) or "lib/python3" in relative:
        package = "stdlib:" + relative.rsplit("/", 1)[-1].removesuffix(".py")
    return f"{match['function']} ({relative})", package


def summarise(collapsed: str, top: int = 25) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_where(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        name, package = frames[-1]
        self_time[name] += n
        packages[package] += n
        for seen in {f for f, _ in frames}:
            inclusive[seen] += n
    if not total:
        return "no samples"

    def block(title: str, counter: Counter[str]) -> list[str]:
        return [title] + [f"  {100 * n / total:5.1f}%  {name}" for name, n in counter.most_common(top)]

    lines = [f"{total} samples"]
    lines += block("self time by package (where the CPU was)", packages)
    lines += block("self time by function", self_time)
    lines += block("inclusive time by function (on the stack)", inclusive)
    return "\n".join(lines)


def profile(target: wire.Target, seconds: int, rate: int, plan: wire.Plan, top: int) -> str:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise BenchmarkError("py-spy is not installed: pip install py-spy")
    output = RESULTS / f"profile-{target.key}.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    failures: list[BaseException] = []

    def load(port: int, pid: int, answer: wire.Answer) -> None:
        try:
            # a little longer, so every sample sees a busy server
            wire.load(port, pid, seconds + 2, plan.connections[0], plan, answer, target.call)
        except BaseException as exc:  # re-raised below, in the main thread
            failures.append(exc)

    with wire.clients_pinned(plan), wire.serve(target, cpu=wire.server_cpu(plan)) as (port, pid):
        answer = wire.verify(port, target.call)
        wire.load(port, pid, plan.warmup_seconds, plan.connections[0], plan, answer, target.call)
        loader = threading.Thread(target=load, args=(port, pid, answer))
        loader.start()
        done = subprocess.run(
            [
                py_spy,
                "record",
                "-p",
                str(pid),
                "-d",
                str(seconds),
                "-r",
                str(rate),
                "-f",
                "raw",
                "--gil",
                "-o",
                str(output),
            ],
            capture_output=True,
            text=True,
        )
        loader.join()
    if failures:
        raise failures[0]
    if done.returncode != 0:
        raise BenchmarkError(f"py-spy failed: {done.stderr or done.stdout}")
    print(f"collapsed stacks: {output}")
    return summarise(output.read_text(), top)


def main(argv: list[str] | None = None) -> int:
    keys = [t.key for t in wire.TARGETS]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("target", nargs="?", default="devenv", choices=keys)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    target = next(t for t in wire.TARGETS if t.key == args.target)
    plan = wire.Plan(
        warmup_seconds=2,
        sequential_requests=0,
        sequential_warmup=0,
        seconds=args.seconds,
        runs=1,
        connections=(args.connections,),
        threads=1,
        generator="wrk" if wire.wrk_available() else "python",
        pin=True,
    )
    try:
        print(profile(target, args.seconds, args.rate, plan, args.top))
    except BenchmarkError as exc:
        print(f"profile failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
