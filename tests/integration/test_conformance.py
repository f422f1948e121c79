"""The official MCP conformance suite (npm @modelcontextprotocol/conformance, pinned in
scripts/conformance/) against real `devenv serve` processes, at both revisions.

- `jd-classifier` is a tools-only service, so the suite's requirement sets are run whole and
  judged scenario by scenario: the scenarios about the wire must pass outright; in the ones
  that also probe fixtures jd-classifier does not have (the suite's `test_*` diagnostic tools,
  prompts, resources) every check passes except the named fixture probes, and those must fail
  for exactly that reason.
- `conformance` serves the suite's fixtures: every scenario of both sets passes except the
  ones listed in CONFORMANCE_GAPS (features devenv does not have yet), so a regression in any
  other scenario, or a gap closing without the list being updated, fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from devenv.testing import serve_process

ROOT = Path(__file__).resolve().parents[2]

# Scenarios that must pass outright against a tools-only service.
PASS = {
    "2026-07-28": [
        "tools-list",
        "dns-rebinding-protection",
        "http-header-validation",
        "server-sse-multiple-streams",
        "input-required-result-unsupported-methods",
        "input-required-result-validate-input",
    ],
    "2025-11-25": [
        "server-initialize",
        "ping",
        "tools-list",
        "dns-rebinding-protection",
        "server-sse-multiple-streams",
        "server-session-lifecycle",
    ],
}
# Scenarios that pass except for checks needing fixtures jd-classifier does not have: check id ->
# a fragment of the suite's reason, so a wire failure in the same check cannot hide behind it.
FIXTURE_PROBES = {
    "2026-07-28": {
        "server-stateless": {
            "sep-2575-server-rejects-undeclared-capability": "test_missing_capability",
            "sep-2575-missing-capability-http-400": "test_missing_capability",
            "sep-2575-http-server-no-independent-requests-on-stream": "test_streaming_elicitation",
            "sep-2575-server-no-log-without-loglevel": "test_logging_tool",
        },
        "caching": {
            "sep-2549-prompts-list-caching-hints": "-32601",
            "sep-2549-resources-list-caching-hints": "-32601",
            "sep-2549-resources-templates-list-caching-hints": "-32601",
        },
    },
    "2025-11-25": {},
}


# What the `conformance` service does not pass yet, and why (see README, "Conformance").
CONFORMANCE_GAPS = {
    "2026-07-28": set(),  # every scenario, the tasks extension's included
    "2025-11-25": set(),  # sessions carry server-to-client requests and subscriptions
}


def serve(service: str, tmp_path_factory):
    """A real `devenv serve SERVICE` process, started the way a user starts it; its /mcp URL."""
    log = tmp_path_factory.mktemp("conformance") / f"serve-{service}.log"
    with serve_process(service, log=log, cwd=ROOT) as served:
        yield f"{served.url}/mcp"


@pytest.fixture(scope="module")
def served_mcp_url(tmp_path_factory):
    yield from serve("jd-classifier", tmp_path_factory)


@pytest.fixture(scope="module")
def conformance_mcp_url(tmp_path_factory):
    yield from serve("conformance", tmp_path_factory)


def run_requirements(url: str, revision: str, out: Path) -> tuple[str, dict[str, list[dict]]]:
    """Run `conformance.sh URL --requirements REVISION`; the suite's output and checks per scenario."""
    if shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("npm not found: the conformance suite needs it (node 20 + npm install node@22)")
        pytest.skip("npm not found: the conformance suite needs node 20 + npm")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "conformance.sh"), url, "--requirements", revision],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "CONFORMANCE_RESULTS": str(out)},
    )
    checks: dict[str, list[dict]] = {}
    for folder in out.iterdir():  # server-<scenario>-<ISO time>
        scenario = re.sub(r"-\d{4}-\d{2}-\d{2}T.*$", "", folder.name.removeprefix("server-"))
        checks[scenario] = json.loads((folder / "checks.json").read_text())
    assert checks, f"the suite ran no scenario:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout, checks


def failures(scenario_checks: list[dict]) -> dict[str, str]:
    return {c["id"]: c.get("errorMessage") or "" for c in scenario_checks if c["status"] == "FAILURE"}


@pytest.mark.parametrize("revision", ["2026-07-28", "2025-11-25"])
def test_official_conformance_suite_against_the_conformance_service(conformance_mcp_url, tmp_path, revision):
    stdout, checks = run_requirements(conformance_mcp_url, revision, tmp_path)
    failing = {scenario for scenario, results in checks.items() if failures(results)}
    gaps = CONFORMANCE_GAPS[revision]
    summary = stdout[stdout.rfind("Total:") :]
    assert failing - gaps == set(), {s: failures(checks[s]) for s in failing - gaps}
    assert gaps - failing == set(), f"these pass now: take them off CONFORMANCE_GAPS\n{summary}"
    assert len(checks) >= {"2026-07-28": 50, "2025-11-25": 33}[revision], summary


@pytest.mark.parametrize("revision", ["2026-07-28", "2025-11-25"])
def test_official_conformance_suite_against_a_tools_only_service(served_mcp_url, tmp_path, revision):
    stdout, checks = run_requirements(served_mcp_url, revision, tmp_path)
    problems = []
    for scenario in PASS[revision]:
        if scenario not in checks:
            problems.append(f"{scenario}: not run")
        elif failed := failures(checks[scenario]):
            problems.append(f"{scenario}: {failed}")
    for scenario, allowed in FIXTURE_PROBES[revision].items():
        failed = failures(checks.get(scenario, []))
        passed = [c for c in checks.get(scenario, []) if c["status"] == "SUCCESS"]
        if not passed:
            problems.append(f"{scenario}: no check passed")
        for check, message in failed.items():
            if check not in allowed or allowed[check] not in message:
                problems.append(f"{scenario}/{check}: {message}")
    summary = stdout[stdout.rfind("Total:") :]
    assert not problems, "\n".join(problems) + "\n" + summary
