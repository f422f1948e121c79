"""The wire comparison as a PNG: throughput at each concurrency level, and sequential latency.

Needs matplotlib (the ``bench`` extra); without it the run records why there is no chart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def wire_png(results: dict[str, Any], path: Path, subtitle: str) -> dict[str, Any]:
    """Draw ``results`` (the ``http`` section) to ``path``; what happened, for the JSON."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return {"skipped": f"matplotlib is not installed ({exc}); `pip install -e '.[bench]'`"}
    measured = {key: r for key, r in results.items() if "throughput" in r}
    if not measured:
        return {"skipped": "no wire figures in this run"}
    levels = sorted({int(c) for r in measured.values() for c in r["throughput"]})
    labels = [r["label"] for r in measured.values()]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [3, 2]})

    width = 0.8 / len(levels)
    for i, level in enumerate(levels):
        medians, low, high = [], [], []
        for r in measured.values():
            entry = r["throughput"].get(str(level))
            medians.append(entry["median"] if entry else 0)
            low.append(entry["median"] - entry["min"] if entry else 0)
            high.append(entry["max"] - entry["median"] if entry else 0)
        xs = [x + (i - (len(levels) - 1) / 2) * width for x in range(len(measured))]
        left.bar(xs, medians, width, yerr=[low, high], capsize=2, label=f"{level} concurrent")
    left.set_xticks(range(len(measured)), labels, rotation=25, ha="right", fontsize=8)
    left.set_ylabel("requests per second (median run; bars: min–max)")
    left.set_title("Throughput, one uvicorn worker")
    left.legend(fontsize=8)
    left.grid(axis="y", alpha=0.3)

    xs = list(range(len(measured)))
    p50 = [r["sequential_us"]["p50"] / 1000 for r in measured.values()]
    p99 = [r["sequential_us"]["p99"] / 1000 for r in measured.values()]
    right.bar([x - 0.2 for x in xs], p50, 0.4, label="p50")
    right.bar([x + 0.2 for x in xs], p99, 0.4, label="p99")
    right.set_xticks(xs, labels, rotation=25, ha="right", fontsize=8)
    right.set_ylabel("milliseconds")
    right.set_title("Sequential latency, one keep-alive connection")
    right.legend(fontsize=8)
    right.grid(axis="y", alpha=0.3)

    figure.suptitle(f"tools/call over HTTP — {subtitle}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return {"path": str(path)}
