"""``python -m benchmarks [--quick]``: run the suite, print the tables, write the JSON."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from . import BenchmarkError, inprocess, report, wire
from .inprocess import Budget

DEFAULT_OUTPUT = Path(__file__).with_name("results") / "latest.json"

# --quick is CI's smoke run: the headline candidates only, well under a minute in total.
QUICK = (
    Budget(repetitions=3, seconds_per_repetition=0.1),
    dict(warmup_seconds=1, sequential_requests=300, sequential_warmup=50, seconds=1, runs=3),
)
FULL = (
    Budget(repetitions=5, seconds_per_repetition=1.0),
    dict(warmup_seconds=3, sequential_requests=2000, sequential_warmup=200, seconds=10, runs=3),
)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run for CI (well under a minute)")
    parser.add_argument("--only", choices=["inprocess", "http"], help="run one half of the suite")
    parser.add_argument(
        "--extras",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also the informative variants (default: on, off with --quick)",
    )
    parser.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator for throughput (auto: wrk when installed)",
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument("--duration", type=float, help="seconds per throughput run")
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin the server to CPU 0 and the clients to CPU 1"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
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


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    budget, plan_settings = QUICK if args.quick else FULL
    extras = (not args.quick) if args.extras is None else args.extras
    started = time.monotonic()
    document = {
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
        if args.only in (None, "inprocess"):
            print("In-process call overhead (µs per call, median of repetitions)")
            document["inprocess"] = inprocess.run(budget, extras=extras)
            document["inprocess_budget"] = dataclasses.asdict(budget)
            print(report.inprocess_table(document["inprocess"]) + "\n")

        if args.only in (None, "http"):
            if args.duration:
                plan_settings = {**plan_settings, "seconds": args.duration}
            plan = wire.Plan(
                **plan_settings,
                connections=args.connections,
                threads=args.threads,
                generator=_generator(args.generator),
                pin=args.pin,
            )
            targets = [t for t in wire.TARGETS if extras or not t.extra]
            print(
                f"POST /mcp tools/call: one uvicorn worker each; {plan.generator} at {plan.connections} connections,"
                f" {plan.runs} × {plan.seconds:g} s, median run"
            )
            document["http"] = wire.run(plan, targets)
            document["http_plan"] = {**dataclasses.asdict(plan), "headers": wire.HEADERS, "body": wire.BODY.decode()}
            print("\n" + report.wire_table(document["http"], plan.connections) + "\n")
    except BenchmarkError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1

    figures = report.ratios(document.get("inprocess", {}), document.get("http", {}))
    document["ratios"] = figures
    document["targets"] = report.verdicts(figures)
    document["load_average"]["end"] = report.load_average()
    document["seconds"] = round(time.monotonic() - started, 1)
    print("Ratios within this run")
    print(report.verdict_lines(document["targets"], figures))
    report.write(document, args.output)
    print(f"\n{document['seconds']:.0f} s; figures in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
