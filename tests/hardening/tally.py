"""What the hardening suite did, added up across its tests and printed at the end of the run.

``cases fuzzed``: requests made by schemathesis and hypothesis; ``faults injected``: SIGTERMs,
SIGKILLs and Redis outages caused on purpose; ``calls made`` / ``calls lost``: tool calls a
client made while its service was being restarted under it, and how many of them failed.
"""

from __future__ import annotations

import os
import threading
from collections import Counter

from hypothesis import HealthCheck, settings

__all__ = ["FUZZ", "FUZZ_EXAMPLES", "add", "counts"]

#: Examples per fuzzed operation or property. Small by default (CI's quick mode); raise it by hand:
#: DEVENV_FUZZ_EXAMPLES=1000 pytest tests/hardening -k "fuzz or properties"
FUZZ_EXAMPLES = max(1, int(os.environ.get("DEVENV_FUZZ_EXAMPLES", "100")))

#: Hypothesis settings of every fuzzing test: no example database on disk (no .hypothesis/ in the
#: work tree), no deadline (a loaded CI machine is slow), deterministic in quick mode so CI sees
#: the same cases every run, random when DEVENV_FUZZ_EXAMPLES is set by hand.
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    database=None,
    deadline=None,
    derandomize="DEVENV_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=list(HealthCheck),
)

_counts: Counter[str] = Counter()
_lock = threading.Lock()


def add(what: str, n: int = 1) -> None:
    with _lock:
        _counts[what] += n


def counts() -> dict[str, int]:
    with _lock:
        return dict(_counts)
