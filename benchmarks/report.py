"""The run's context (machine, versions, load), its ratios against the issue's targets, and the table."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .wire import ROOT

PACKAGES = [
    "devenv",
    "mcp",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "pydantic-core",
    "orjson",
    "anyio",
]

# The targets. Figures, not tests: a miss is reported, it never fails the run.
TARGETS = {
    "inprocess_us_per_call": ("<=", 20.0),
    "http_p50_ms": ("<=", 0.8),
    "http_throughput_vs_sdk": (">=", 3.5),
}


# -- context ---------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git() -> dict[str, Any]:
    """Which code was measured: other people edit the tree, so note uncommitted changes too."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "devenv_uncommitted": bool(git("status", "--porcelain", "--", "devenv")),
        }
    except OSError:
        return {}


def _wrk_version() -> str | None:
    try:
        done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    except OSError:
        return None
    return (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else None


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": {name: _version(name) for name in PACKAGES},
        "wrk": _wrk_version(),
        "git": _git(),
    }


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- ratios ----------------------------------------------------------------------------------


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def ratios(inprocess: dict[str, Any], wire: dict[str, Any]) -> dict[str, Any]:
    """Everything computed from this run's own figures, so machine speed cancels out."""
    devenv_rps = _get(wire, "devenv", "throughput", "median")
    devenv_p50 = _get(wire, "devenv", "sequential_us", "p50")
    figures = {
        "inprocess_us_per_call": _get(inprocess, "devenv", "median"),
        "inprocess_sdk_over_devenv": _ratio(_get(inprocess, "sdk", "median"), _get(inprocess, "devenv", "median")),
        "inprocess_devenv_over_direct": _ratio(
            _get(inprocess, "devenv", "median"), _get(inprocess, "direct", "median")
        ),
        "http_p50_ms": devenv_p50 / 1000 if devenv_p50 else None,
        "http_throughput_vs_sdk": _ratio(devenv_rps, _get(wire, "sdk", "throughput", "median")),
        "http_throughput_vs_sdk_quiet": _ratio(devenv_rps, _get(wire, "sdk_quiet", "throughput", "median")),
        "http_throughput_vs_floor": _ratio(devenv_rps, _get(wire, "floor", "throughput", "median")),
        "http_p50_sdk_over_devenv": _ratio(_get(wire, "sdk", "sequential_us", "p50"), devenv_p50),
        # The same comparison in server CPU per request: steadier when neighbours steal cycles.
        "http_cpu_sdk_over_devenv": _ratio(
            _get(wire, "sdk", "server_cpu_us_per_request", "median"),
            _get(wire, "devenv", "server_cpu_us_per_request", "median"),
        ),
    }
    return {key: value for key, value in figures.items() if value is not None}


def verdicts(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for key, (op, bound) in TARGETS.items():
        if key in figures:
            value = figures[key]
            met = value <= bound if op == "<=" else value >= bound
            out[key] = {"value": value, "target": f"{op} {bound}", "met": met}
    return out


# -- output ----------------------------------------------------------------------------------


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [_row(header, widths), _row(["-" * w for w in widths], widths)]
    return "\n".join(lines + [_row(r, widths) for r in rows])


def _us(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def inprocess_table(results: dict[str, Any]) -> str:
    base = _get(results, "direct", "median")
    rows = [
        [
            r["label"],
            _us(r["median"]),
            f"{_us(r['min'])}–{_us(r['max'])}",
            f"{r['iterations']:,}",
            f"{r['median'] / base:,.0f}x" if base else "",
        ]
        for r in results.values()
    ]
    return _table(["in-process call", "µs/call", "min–max", "calls/rep", "vs direct"], rows)


def _cpu_cells(result: dict[str, Any]) -> list[str]:
    if not result["server_cpu_us_per_request"]:
        return ["n/a", "n/a"]
    utilisation = statistics.median(run["server_cpu_utilisation"] for run in result["throughput"]["runs"])
    return [_us(result["server_cpu_us_per_request"]["median"]), f"{utilisation:.2f}"]


def wire_table(results: dict[str, Any], connections: int) -> str:
    rows = []
    for r in results.values():
        seq, tp = r["sequential_us"], r["throughput"]
        loaded_p99 = statistics.median(run["latency_us"]["p99"] for run in tp["runs"])
        rows.append(
            [
                r["label"],
                _us(seq["p50"]),
                _us(seq["p99"]),
                f"{tp['median']:,.0f}",
                f"{tp['min']:,.0f}–{tp['max']:,.0f}",
                f"{loaded_p99 / 1000:,.1f}",
                *_cpu_cells(r),
            ]
        )
    header = [
        "POST /mcp tools/call",
        "seq p50 µs",
        "seq p99 µs",
        f"req/s @{connections}",
        "min–max",
        f"p99 ms @{connections}",
        "CPU µs/req",
        "CPU util",
    ]
    return _table(header, rows)


def verdict_lines(checks: dict[str, dict[str, Any]], figures: dict[str, Any]) -> str:
    names = {
        "inprocess_us_per_call": "in-process µs per call",
        "http_p50_ms": "devenv /mcp p50 ms",
        "http_throughput_vs_sdk": "devenv /mcp throughput ÷ SDK server",
    }
    lines = [
        f"  {names[k]:<38} {c['value']:8.2f}   target {c['target']:<7} {'met' if c['met'] else 'MISSED'}"
        for k, c in checks.items()
    ]
    if "inprocess_sdk_over_devenv" in figures:
        lines.append(f"  {'SDK in-memory ÷ devenv in-process':<38} {figures['inprocess_sdk_over_devenv']:8.1f}")
    for key, name in (
        ("http_cpu_sdk_over_devenv", "SDK server ÷ devenv, CPU µs per request"),
        ("http_throughput_vs_sdk_quiet", "devenv ÷ SDK server (log_level=WARNING)"),
        ("http_throughput_vs_floor", "devenv ÷ bare FastAPI floor"),
    ):
        if key in figures:
            lines.append(f"  {name:<38} {figures[key]:8.2f}")
    return "\n".join(lines)


def write(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
