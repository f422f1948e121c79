"""The run's context (machine, versions, load), its ratios against the issue's targets, and the tables.

Every table is built once as rows and rendered twice: aligned text for the terminal, and
markdown for ``results/latest.md`` (the source of ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

PACKAGES = [
    "devenv",
    "mcp",
    "fastmcp",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "httpx",
    "pydantic",
    "pydantic-core",
    "orjson",
    "anyio",
    "redis",
    "watchfiles",
    "docker",
]

# The targets. Figures, not tests: a miss is reported, it never fails the run.
# key → (operator, bound, what it is, unit)
TARGETS: dict[str, tuple[str, float, str, str]] = {
    "inprocess_us_per_call": ("<=", 20.0, "MCPClient in-process, trivial call", "µs"),
    "inprocess_sdk_over_devenv": (">=", 15.0, "SDK in-memory Client ÷ MCPClient in-process", "×"),
    "http_throughput_vs_sdk": (">=", 3.5, "/mcp tools/call throughput ÷ SDK server @16", "×"),
    "http_throughput_vs_sdk_2026": (">=", 5.0, "/mcp tools/call at 2026-07-28 ÷ SDK server at 2026-07-28 @16", "×"),
    "http_p50_ms": ("<=", 0.8, "/mcp tools/call p50, sequential", "ms"),
    "edit_to_live_local_s": ("<=", 1.0, "edit-to-live, local mode", "s"),
    "edit_to_live_tilt_minus_devenv_up_s": ("<=", 0.2, "edit-to-live, tilt up --target=local − devenv up", "s"),
    "edit_to_live_tilt_docker_minus_docker_s": (
        "<=",
        0.2,
        "edit-to-live, tilt up --target=docker − docker live reload",
        "s",
    ),
    "edit_to_live_local_stack_s": ("<=", 0.5, "edit-to-live, local mode, whole example stack up", "s"),
    "fail_fast_refused_s": ("<=", 1.0, "first call where nothing listens, until ServiceUnavailable (slowest)", "s"),
    "fail_fast_unresolved_s": ("<=", 1.0, "first call to a name that does not resolve (slowest)", "s"),
    "startup_local_s": ("<=", 3.0, "example stack ready, local mode", "s"),
    "client_http_call_ms": ("<=", 0.5, "MCPClient.call over HTTP, per sequential call", "ms"),
    "client_http_acall_ms": ("<=", 0.5, "MCPClient.acall over HTTP, per sequential call", "ms"),
    "client_sdk_over_devenv": (">=", 3.0, "SDK Client ÷ MCPClient.acall over HTTP, per call", "×"),
    "http_served_over_log_off": (">=", 0.9, "devenv serve with its call log ÷ log off, throughput @16", "×"),
    # "as fast as": equal within the noise of one run
    "http_rest_over_mcp": (">=", 0.95, "devenv POST /tools/echo ÷ POST /mcp @16", "×"),
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


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


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


def _first_line(*cmd: str) -> str | None:
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (done.stdout or done.stderr).strip()
    return out.splitlines()[0] if out else None


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": {name: _version(name) for name in PACKAGES},
        "wrk": _first_line("wrk", "--version"),
        "redis_server": _first_line("redis-server", "--version"),
        "git": _git(),
    }


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- ratios ----------------------------------------------------------------------------------


def get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _ms(microseconds: float | None) -> float | None:
    return None if microseconds is None else microseconds / 1000


def ratios(document: dict[str, Any]) -> dict[str, Any]:
    """Everything computed from this run's own figures, so machine speed cancels out."""
    inproc = document.get("inprocess", {})
    http = document.get("http", {})
    clients = document.get("clients", {})
    cache = document.get("cache", {})
    startup = document.get("startup", {})
    loop = document.get("innerloop", {})

    def rps(target: str, level: str = "16") -> float | None:
        return get(http, target, "throughput", level, "median")

    def cpu(target: str) -> float | None:
        return get(http, target, "throughput", "16", "server_cpu_us_per_request", "median")

    devenv_p50 = get(http, "devenv", "sequential_us", "p50")
    figures = {
        "inprocess_us_per_call": get(inproc, "trivial", "devenv", "median"),
        "tracing_on_over_off_client": _ratio(
            get(document, "tracing", "client_on", "median"), get(document, "tracing", "client_off", "median")
        ),
        "tracing_on_over_off_server": _ratio(
            get(document, "tracing", "server_on", "median"), get(document, "tracing", "server_off", "median")
        ),
        "inprocess_nested_us_per_call": get(inproc, "nested", "devenv", "median"),
        "inprocess_sdk_over_devenv": _ratio(
            get(inproc, "trivial", "sdk", "median"), get(inproc, "trivial", "devenv", "median")
        ),
        "inprocess_sdk_over_devenv_nested": _ratio(
            get(inproc, "nested", "sdk", "median"), get(inproc, "nested", "devenv", "median")
        ),
        "inprocess_fastmcp_over_devenv": _ratio(
            get(inproc, "trivial", "fastmcp", "median"), get(inproc, "trivial", "devenv", "median")
        ),
        "inprocess_devenv_over_direct": _ratio(
            get(inproc, "trivial", "devenv", "median"), get(inproc, "trivial", "direct", "median")
        ),
        "http_p50_ms": devenv_p50 / 1000 if devenv_p50 else None,
        "http_p50_sdk_over_devenv": _ratio(get(http, "sdk", "sequential_us", "p50"), devenv_p50),
        "http_throughput_vs_sdk": _ratio(rps("devenv"), rps("sdk")),
        "http_throughput_vs_sdk_c1": _ratio(rps("devenv", "1"), rps("sdk", "1")),
        "http_throughput_vs_sdk_c64": _ratio(rps("devenv", "64"), rps("sdk", "64")),
        "http_throughput_vs_sdk_2026": _ratio(rps("devenv_2026"), rps("sdk_2026")),
        "http_throughput_2026_over_2025": _ratio(rps("devenv_2026"), rps("devenv")),
        "http_throughput_vs_sdk_quiet": _ratio(rps("devenv"), rps("sdk_quiet")),
        "http_throughput_vs_fastmcp": _ratio(rps("devenv"), rps("fastmcp")),
        "http_throughput_vs_floor": _ratio(rps("devenv"), rps("floor")),
        "http_rest_over_mcp": _ratio(rps("devenv_rest"), rps("devenv")),
        "http_served_over_log_off": _ratio(rps("devenv_served"), rps("devenv")),
        # The same comparison in server CPU per request: steadier when neighbours steal cycles.
        "http_cpu_sdk_over_devenv": _ratio(cpu("sdk"), cpu("devenv")),
        "client_sdk_over_devenv": _ratio(
            get(clients, "trivial", "sdk", "median"), get(clients, "trivial", "devenv_async", "median")
        ),
        "client_http_call_ms": _ms(get(clients, "trivial", "devenv", "median")),
        "client_http_acall_ms": _ms(get(clients, "trivial", "devenv_async", "median")),
        "client_devenv_over_httpx": _ratio(
            get(clients, "trivial", "devenv_async", "median"), get(clients, "trivial", "httpx", "median")
        ),
        "client_devenv_over_floor": _ratio(
            get(clients, "trivial", "devenv_async", "median"), get(clients, "trivial", "http_client", "median")
        ),
        "cache_memory_miss_over_hit": _ratio(
            get(cache, "memory", "miss", "median"), get(cache, "memory", "hit", "median")
        ),
        "cache_redis_miss_over_hit": _ratio(
            get(cache, "redis", "miss", "median"), get(cache, "redis", "hit", "median")
        ),
        "cache_redis_hit_over_memory_hit": _ratio(
            get(cache, "redis", "hit", "median"), get(cache, "memory", "hit", "median")
        ),
        "edit_to_live_local_s": get(loop, "local_reload", "median"),
        "edit_to_live_local_stack_s": get(loop, "local_stack_reload", "median"),
        "fail_fast_refused_s": get(loop, "fail_fast", "refused", "max"),
        "fail_fast_unresolved_s": get(loop, "fail_fast", "unresolved", "max"),
        "edit_to_live_restart_over_reload": _ratio(
            get(loop, "local_restart", "median"), get(loop, "local_reload", "median")
        ),
        "edit_to_live_docker_s": get(loop, "docker_reload", "median"),
        "edit_to_live_tilt_minus_devenv_up_s": get(document, "tilt", "tilt_minus_devenv_up_s"),
        "edit_to_live_tilt_local_s": get(document, "tilt", "tilt_local", "median"),
        "edit_to_live_tilt_docker_minus_docker_s": get(document, "tilt", "tilt_docker_minus_docker_s"),
        "edit_to_live_tilt_docker_s": get(document, "tilt", "tilt_docker", "median"),
        "edit_to_live_docker_rebuild_over_reload": _ratio(
            get(loop, "docker_rebuild", "median"), get(loop, "docker_reload", "median")
        ),
        "startup_inprocess_s": get(startup, "inprocess", "median"),
        "startup_local_s": get(startup, "local", "median"),
        "startup_local_reload_s": get(startup, "local_reload", "median"),
        "startup_docker_warm_s": get(startup, "docker_warm", "median"),
        "startup_docker_cold_s": get(startup, "docker_cold", "median"),
    }
    return {key: value for key, value in figures.items() if value is not None}


_SIGN = {"<=": "≤", ">=": "≥"}


def verdicts(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for key, (op, bound, what, unit) in TARGETS.items():
        if key in figures:
            value = figures[key]
            met = value <= bound if op == "<=" else value >= bound
            out[key] = {"what": what, "value": value, "unit": unit, "target": f"{_SIGN[op]} {bound:g}", "met": met}
        else:
            out[key] = {"what": what, "value": None, "unit": unit, "target": f"{_SIGN[op]} {bound:g}", "met": None}
    return out


# -- formatting ------------------------------------------------------------------------------

Table = tuple[str, list[str], list[list[str]]]  # (title, header, rows)


def us(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if value < 1 else f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def secs(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _with_spread(entry: dict[str, Any] | None, fmt: Callable[[float | None], str]) -> list[str]:
    if not entry or "median" not in entry:
        return ["", ""]
    return [fmt(entry["median"]), f"{fmt(entry['min'])}–{fmt(entry['max'])}"]


def _skipped(entry: Any) -> str | None:
    """Why an entry has no figures: skipped (a missing optional part) or failed (a wrong answer)."""
    if not isinstance(entry, dict):
        return None
    if "failed" in entry:
        return "FAILED: " + entry["failed"].splitlines()[0]
    return entry.get("skipped")


def render(table: Table, markdown: bool = False) -> str:
    title, header, rows = table
    if markdown:
        lines = [f"**{title}**", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([title, line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


# -- the tables ------------------------------------------------------------------------------


def inprocess_table(results: dict[str, Any]) -> Table:
    trivial, nested = results.get("trivial", {}), results.get("nested", {})
    base = get(trivial, "direct", "median")
    devenv = get(trivial, "devenv", "median")
    rows = []
    for key, entry in trivial.items():
        reason = _skipped(entry)
        if reason:
            rows.append([entry["label"], "skipped", reason, "", "", "", ""])
            continue
        rows.append(
            [
                entry["label"],
                *_with_spread(entry, us),
                *_with_spread(nested.get(key), us),
                f"{entry['median'] / base:,.0f}×" if base else "",
                f"{entry['median'] / devenv:,.1f}×" if devenv and key != "direct" else "",
            ]
        )
    header = ["in-process call", "trivial µs", "min–max", "nested µs", "min–max", "÷ direct", "÷ MCPClient"]
    return "In-process call overhead (µs per call, median of repetitions)", header, rows


def tracing_table(results: dict[str, Any]) -> Table:
    rows = []
    for entry in results.values():
        reason = _skipped(entry)
        if reason:
            rows.append([entry.get("label", ""), "skipped", reason, ""])
            continue
        added = entry.get("added_us")
        rows.append([entry["label"], *_with_spread(entry, us), "" if added is None else f"{added:+.1f}"])
    header = ["call", "µs", "min–max", "µs added by tracing"]
    return "Tracing off and on (µs per call, median of repetitions)", header, rows


def wire_table(results: dict[str, Any]) -> Table:
    levels = sorted({int(c) for r in results.values() for c in r.get("throughput", {})})
    rows = []
    for entry in results.values():
        reason = _skipped(entry)
        if reason:
            shown = reason if reason.startswith("FAILED") else "skipped: " + reason
            rows.append([entry["label"], shown, *[""] * (len(levels) + 5)])
            continue
        seq, tp = entry["sequential_us"], entry["throughput"]
        at16 = tp.get("16", {})
        rows.append(
            [
                entry["label"],
                us(seq["p50"]),
                us(seq["p99"]),
                *(f"{tp[str(c)]['median']:,.0f}" if str(c) in tp else "" for c in levels),
                f"{at16['min']:,.0f}–{at16['max']:,.0f}" if at16 else "",
                us(get(at16, "p99_us", "median") / 1000) if get(at16, "p99_us", "median") else "",
                us(get(at16, "server_cpu_us_per_request", "median")),
                f"{get(at16, 'server_cpu_utilisation', 'median'):.2f}" if get(at16, "server_cpu_utilisation") else "",
            ]
        )
    header = [
        "tools/call over HTTP",
        "seq p50 µs",
        "seq p99 µs",
        *(f"req/s @{c}" for c in levels),
        "@16 min–max",
        "p99 ms @16",
        "CPU µs/req",
        "CPU util",
    ]
    return "Wire: one uvicorn worker per server, sequential latency and throughput", header, rows


def clients_table(results: dict[str, Any]) -> Table:
    trivial, nested = results.get("trivial", {}), results.get("nested", {})
    devenv = get(trivial, "devenv_async", "median")
    rows = []
    for key, entry in trivial.items():
        reason = _skipped(entry)
        if reason:
            rows.append([entry["label"], "skipped", reason, "", "", ""])
            continue
        rows.append(
            [
                entry["label"],
                *_with_spread(entry, us),
                *_with_spread(nested.get(key), us),
                f"{entry['median'] / devenv:.2f}×" if devenv else "",
            ]
        )
    header = ["client → devenv server", "trivial µs", "min–max", "nested µs", "min–max", "÷ MCPClient.acall"]
    return "Clients over HTTP, same devenv server (µs per sequential call)", header, rows


def cache_table(results: dict[str, Any]) -> Table:
    rows = []
    for backend in ("memory", "redis"):
        entry = results.get(backend, {})
        reason = _skipped(entry)
        if reason:
            rows.append([backend, "skipped", reason, ""])
            continue
        hit = get(entry, "hit", "median")
        for key in ("uncached", "miss", "hit"):
            if key in entry:
                rows.append(
                    [
                        f"{backend}: {entry[key]['label']}",
                        *_with_spread(entry[key], us),
                        f"{entry[key]['median'] / hit:,.1f}×" if hit else "",
                    ]
                )
    tool = results.get("tool", "?")
    return f"Cache: {tool} in-process (µs per call)", ["variant", "µs/call", "min–max", "÷ hit"], rows


def _seconds_rows(
    results: dict[str, Any], keys: list[str], extra: Callable[[dict[str, Any]], list[str]]
) -> list[list[str]]:
    rows = []
    for key in keys:
        entry = results.get(key)
        if entry is None:
            continue
        reason = _skipped(entry)
        if reason:
            rows.append([key, "skipped", reason, *[""] * (len(extra({})))])
            continue
        rows.append([entry["label"], *_with_spread(entry, secs), *extra(entry)])
    return rows


def startup_table(results: dict[str, Any]) -> Table:
    def down(entry: dict[str, Any]) -> list[str]:
        return [secs(get(entry, "down", "median")), str(entry.get("repetitions", ""))]

    keys = ["inprocess", "local", "local_reload", "docker_warm", "docker_cold", "docker"]
    return (
        "Start-up: the whole example stack ready (s)",
        ["target", "ready s", "min–max", "down s", "reps"],
        _seconds_rows(results, keys, down),
    )


def innerloop_table(results: dict[str, Any]) -> Table:
    def phases(entry: dict[str, Any]) -> list[str]:
        split = entry.get("phases") or {}
        cells = [secs(get(split, phase, "median")) for phase in ("detect", "start", "first_answer")]
        untouched = entry.get("others_untouched")
        others = "" if untouched is None else ("yes" if untouched else "NO")
        return [*cells, others, str(entry.get("repetitions", ""))]

    keys = ["local_reload", "local_stack_reload", "local_restart", "docker_reload", "docker_rebuild", "docker"]
    return (
        "Inner loop: file write to the first answer that shows it (s); a live reload's phases from its log",
        ["mode", "edit-to-live s", "min–max", "detect", "start", "1st answer", "others untouched", "reps"],
        _seconds_rows(results, keys, phases),
    )


def tilt_table(results: dict[str, Any]) -> Table:
    def reps(entry: dict[str, Any]) -> list[str]:
        return [str(entry.get("repetitions", ""))]

    rows = _seconds_rows(results, ["devenv_up", "tilt_local", "docker_reload", "tilt_docker"], reps)
    if "skipped" in results:
        rows.append(["tilt", "skipped", results["skipped"], ""])
    return (
        "Inner loop through Tilt, beside devenv up in the same run (s)",
        ["mode", "edit-to-live s", "min–max", "reps"],
        rows,
    )


def targets_table(checks: dict[str, dict[str, Any]]) -> Table:
    rows = []
    for check in checks.values():
        value = check["value"]
        shown = "not measured" if value is None else f"{value:.3g} {check['unit']}".replace(" ×", "×")
        verdict = "" if check["met"] is None else ("met" if check["met"] else "MISSED")
        rows.append([check["what"], shown, f"{check['target']} {check['unit']}".replace(" ×", "×"), verdict])
    return "Targets (figures, never pass/fail)", ["figure", "this run", "target", "verdict"], rows


_OTHER_RATIOS = [
    ("tracing_on_over_off_client", "MCPClient in-process, tracing on ÷ off", "×"),
    ("tracing_on_over_off_server", "_Runtime.call, tracing on ÷ off", "×"),
    ("inprocess_sdk_over_devenv_nested", "SDK in-memory ÷ MCPClient, nested pydantic argument", "×"),
    ("inprocess_fastmcp_over_devenv", "FastMCP in-memory ÷ MCPClient, trivial call", "×"),
    ("http_p50_sdk_over_devenv", "SDK server ÷ devenv /mcp, sequential p50", "×"),
    ("http_throughput_vs_sdk_c1", "devenv /mcp ÷ SDK server, throughput @1", "×"),
    ("http_throughput_vs_sdk_c64", "devenv /mcp ÷ SDK server, throughput @64", "×"),
    ("http_cpu_sdk_over_devenv", "SDK server ÷ devenv /mcp, server CPU µs per request @16", "×"),
    ("http_throughput_vs_sdk_quiet", "devenv /mcp ÷ SDK server with log_level=WARNING @16", "×"),
    ("http_throughput_vs_fastmcp", "devenv /mcp ÷ FastMCP server @16", "×"),
    ("http_throughput_vs_floor", "devenv /mcp ÷ bare FastAPI floor @16", "×"),
    ("client_devenv_over_httpx", "MCPClient.acall ÷ bare httpx.AsyncClient POST, per call", "×"),
    ("client_devenv_over_floor", "MCPClient.acall ÷ bare http.client, per call", "×"),
    ("cache_memory_miss_over_hit", "cache miss ÷ hit, memory", "×"),
    ("cache_redis_miss_over_hit", "cache miss ÷ hit, Redis", "×"),
    ("cache_redis_hit_over_memory_hit", "Redis hit ÷ memory hit", "×"),
    ("edit_to_live_restart_over_reload", "local: stop-and-start ÷ live reload, edit-to-live", "×"),
    ("edit_to_live_docker_s", "edit-to-live, docker live reload", "s"),
    ("edit_to_live_tilt_local_s", "edit-to-live, tilt up -- --target=local", "s"),
    ("edit_to_live_tilt_docker_s", "edit-to-live, tilt up -- --target=docker", "s"),
    ("edit_to_live_docker_rebuild_over_reload", "docker: rebuild ÷ live reload, edit-to-live", "×"),
    ("startup_inprocess_s", "example stack ready, in-process (fresh python)", "s"),
    ("startup_local_reload_s", "example stack ready, local with live reload", "s"),
    ("startup_docker_warm_s", "example stack ready, docker warm", "s"),
    ("startup_docker_cold_s", "example stack ready, docker cold (images rebuilt)", "s"),
]


def ratios_table(figures: dict[str, Any]) -> Table:
    rows = [
        [what, f"{figures[key]:.3g} {unit}".replace(" ×", "×")] for key, what, unit in _OTHER_RATIOS if key in figures
    ]
    return "Other ratios within this run", ["figure", "this run"], rows


def tables(document: dict[str, Any]) -> list[Table]:
    out = [targets_table(document["targets"]), ratios_table(document["ratios"])]
    sections = [
        ("inprocess", inprocess_table),
        ("tracing", tracing_table),
        ("http", wire_table),
        ("clients", clients_table),
        ("cache", cache_table),
        ("startup", startup_table),
        ("innerloop", innerloop_table),
        ("tilt", tilt_table),
    ]
    out += [make(document[key]) for key, make in sections if key in document]
    return out


def context_line(document: dict[str, Any]) -> str:
    m = document["machine"]
    packages = m["packages"]
    versions = ", ".join(
        f"{name} {packages[name]}" for name in ("mcp", "fastmcp", "uvicorn", "pydantic") if packages.get(name)
    )
    load = document["load_average"]
    return (
        f"{document['date']}, {document['mode']} run: {m['cores']} cores ({m['cpu']}), "
        f"{m.get('memory_gib') or '?'} GiB, Python {m['python']}, {versions}; "
        f"load average {load['start'][0]} at start, {load.get('end', ['?'])[0]} at end; "
        f"commit {str(m['git'].get('commit', '?'))[:10]}"
        + (" with uncommitted changes in devenv/" if m["git"].get("devenv_uncommitted") else "")
    )


def markdown(document: dict[str, Any]) -> str:
    parts = [f"# Benchmark results\n\n{context_line(document)}.\n"]
    parts += [render(table, markdown=True) + "\n" for table in tables(document)]
    chart = document.get("chart", {})
    if chart.get("path"):
        parts.append(f"Chart: `{chart['path']}`\n")
    elif chart.get("skipped"):
        parts.append(f"Chart skipped: {chart['skipped']}\n")
    return "\n".join(parts)


def write(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
