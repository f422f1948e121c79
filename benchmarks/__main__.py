"""``python -m benchmarks [--quick]``: run the suite, print the tables, write JSON, markdown and a chart."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import BenchmarkError, cache, chart, clients, innerloop, inprocess, report, startup, tracing, wire
from . import tilt as tilt_loop
from .inprocess import Budget

RESULTS = Path(__file__).with_name("results")
DEFAULT_OUTPUT = RESULTS / "latest.json"
SECTIONS = ["inprocess", "tracing", "http", "clients", "cache", "startup", "innerloop", "tilt"]


@dataclasses.dataclass(frozen=True)
class Settings:
    inprocess: Budget
    wire: dict[str, Any]
    clients: Budget
    cache: Budget
    startup: startup.Plan
    innerloop: innerloop.Plan
    tilt: tilt_loop.Plan


# --quick is CI's smoke run: every section, the headline candidates only, well under a minute.
QUICK = Settings(
    inprocess=Budget(repetitions=3, seconds_per_repetition=0.05),
    # No wrk warm-up: the sequential requests (with their own warm-up) come first and warm it.
    wire=dict(warmup_seconds=0, sequential_requests=300, sequential_warmup=100, seconds=1, runs=1),
    clients=Budget(repetitions=3, seconds_per_repetition=0.05),
    cache=Budget(repetitions=3, seconds_per_repetition=0.05),
    startup=startup.Plan(inprocess=2, local=1, local_reload=0, docker_warm=0, docker_cold=0),
    innerloop=innerloop.Plan(repetitions=2, baseline_repetitions=1, docker=False),
    tilt=tilt_loop.Plan(repetitions=2, docker=False),
)
FULL = Settings(
    inprocess=Budget(repetitions=5, seconds_per_repetition=1.0),
    wire=dict(warmup_seconds=3, sequential_requests=2000, sequential_warmup=200, seconds=5, runs=3),
    clients=Budget(repetitions=5, seconds_per_repetition=0.5),
    cache=Budget(repetitions=5, seconds_per_repetition=0.5),
    startup=startup.Plan(inprocess=5, local=5, local_reload=3, docker_warm=3, docker_cold=1),
    innerloop=innerloop.Plan(repetitions=5, baseline_repetitions=3, docker=True),
    tilt=tilt_loop.Plan(repetitions=5, docker=True),
)


def _sections(value: str) -> list[str]:
    chosen = [s.strip() for s in value.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return chosen


def _levels(value: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--connections wants numbers like 1,16,64, got {value!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("--connections needs at least one level, each ≥ 1")
    return levels


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run for CI (under a minute)")
    parser.add_argument(
        "--only", type=_sections, default=SECTIONS, help=f"comma-separated sections: {','.join(SECTIONS)}"
    )
    parser.add_argument(
        "--extras",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also the informative variants (default: on, off with --quick)",
    )
    parser.add_argument(
        "--docker",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also the docker target in start-up, inner loop and Tilt (default: on, off with --quick)",
    )
    parser.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator for throughput (auto: wrk when installed)",
    )
    parser.add_argument("--connections", type=_levels, default=(1, 16, 64), help="concurrency levels (default 1,16,64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument("--duration", type=float, help="seconds per throughput run")
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin the server to CPU 0 and the clients to CPU 1"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the JSON; .md and the chart go beside it")
    return parser.parse_args(argv)


def _generator(choice: str) -> str:
    if choice == "python" or (choice == "auto" and not wire.wrk_available()):
        if choice == "auto":
            print(
                "wrk not found: install it (apt-get install -y wrk) for throughput figures you can trust;\n"
                "falling back to a Python load generator, which may saturate before the server does.\n"
            )
        return "python"
    if not wire.wrk_available():
        raise BenchmarkError("--generator wrk, but wrk is not installed: apt-get install -y wrk")
    return "wrk"


def _section(document: dict[str, Any], key: str, title: str, work: Callable[[], Any]) -> None:
    """Run one section; a failure is recorded and printed, and the other sections still run."""
    print(f"[{key}] {title}", flush=True)
    started = time.monotonic()
    try:
        document[key] = work()
    except BenchmarkError as exc:
        document.setdefault("failures", {})[key] = str(exc)
        print(f"  FAILED: {exc}\n", file=sys.stderr)
        return
    except Exception as exc:  # a bug in one section must not cost the figures of the others
        document.setdefault("failures", {})[key] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        return
    document.setdefault("section_seconds", {})[key] = round(time.monotonic() - started, 1)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    settings = QUICK if args.quick else FULL
    extras = (not args.quick) if args.extras is None else args.extras
    docker = (not args.quick) if args.docker is None else args.docker
    started = time.monotonic()
    document: dict[str, Any] = {
        "date": report.now(),
        "mode": "quick" if args.quick else "full",
        "machine": report.machine(),
        "load_average": {"start": report.load_average()},
    }
    if document["load_average"]["start"][0] > 0.5:
        print(
            f"note: load average {document['load_average']['start'][0]} at start: "
            "other work on this machine will show in the figures\n"
        )
    try:
        wire_settings = {**settings.wire, **({"seconds": args.duration} if args.duration else {})}
        plan = wire.Plan(
            **wire_settings,
            connections=args.connections,
            threads=args.threads,
            generator=_generator(args.generator) if "http" in args.only else "wrk",
            pin=args.pin,
        )
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1

    def print_table(key: str, make: Callable[[dict[str, Any]], report.Table]) -> None:
        if key in document:
            print(report.render(make(document[key])) + "\n", flush=True)

    if "inprocess" in args.only:
        _section(
            document, "inprocess", "In-process call overhead", lambda: inprocess.run(settings.inprocess, extras=extras)
        )
        document["inprocess_budget"] = dataclasses.asdict(settings.inprocess)
        print_table("inprocess", report.inprocess_table)

    if "tracing" in args.only:
        _section(document, "tracing", "Tracing off and on", lambda: tracing.run(settings.inprocess))
        print_table("tracing", report.tracing_table)

    if "http" in args.only:
        targets = [t for t in wire.TARGETS if extras or t.key in wire.HEADLINE]
        levels = ", ".join(map(str, plan.connections))
        _section(
            document,
            "http",
            f"Wire: one uvicorn worker each; {plan.generator} at {levels} connections, "
            f"{plan.runs} × {plan.seconds:g} s per level, median run",
            lambda: wire.run(plan, targets),
        )
        document["http_plan"] = {**dataclasses.asdict(plan), "requests": {"mcp": wire.BODY.decode()}}
        for key, entry in document.get("http", {}).items():
            if "failed" in entry:
                document.setdefault("failures", {})[f"http:{key}"] = entry["failed"]
        print_table("http", report.wire_table)

    if "clients" in args.only:
        _section(
            document,
            "clients",
            "Clients over HTTP against one devenv server",
            lambda: clients.run(settings.clients, plan, extras=extras),
        )
        print_table("clients", report.clients_table)

    if "cache" in args.only:
        _section(document, "cache", "Cache hit and miss, memory and Redis", lambda: cache.run(settings.cache))
        print_table("cache", report.cache_table)

    if "startup" in args.only:
        plan_startup = settings.startup if docker else dataclasses.replace(settings.startup, docker_warm=0)
        _section(document, "startup", "Start-up of the example stack", lambda: startup.run(plan_startup))
        print_table("startup", report.startup_table)

    if "innerloop" in args.only:
        plan_loop = dataclasses.replace(settings.innerloop, docker=docker)
        _section(document, "innerloop", "Inner loop: edit to live", lambda: innerloop.run(plan_loop))
        print_table("innerloop", report.innerloop_table)

    if "tilt" in args.only:
        plan_tilt = dataclasses.replace(settings.tilt, docker=docker)
        _section(document, "tilt", "Inner loop through Tilt: edit to live", lambda: tilt_loop.run(plan_tilt))
        print_table("tilt", report.tilt_table)

    figures = report.ratios(document)
    document["ratios"] = figures
    document["targets"] = report.verdicts(figures)
    document["load_average"]["end"] = report.load_average()
    if "http" in document:
        subtitle = report.context_line(document).split(";")[0]
        document["chart"] = chart.wire_png(document["http"], args.output.with_name("wire.png"), subtitle)
    document["seconds"] = round(time.monotonic() - started, 1)

    print(report.render(report.targets_table(document["targets"])) + "\n")
    print(report.render(report.ratios_table(figures)))
    report.write(document, args.output)
    markdown_path = args.output.with_suffix(".md")
    markdown_path.write_text(report.markdown(document))
    print(f"\n{document['seconds']:.0f} s; figures in {args.output}, tables in {markdown_path}", end="")
    print(f", chart in {document['chart']['path']}" if get_path(document) else "")
    if document.get("failures"):
        print(f"sections that failed: {', '.join(document['failures'])}", file=sys.stderr)
        return 1
    return 0


def get_path(document: dict[str, Any]) -> str | None:
    return report.get(document, "chart", "path")


if __name__ == "__main__":
    sys.exit(main())
