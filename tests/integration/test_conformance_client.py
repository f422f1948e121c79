"""The official conformance suite's client scenarios against scripts/conformance_client.py (MCPClient).

Scenarios: the ones at ``--requirements 2026-07-28`` that apply to a tools client. Left out:
the ``auth/*`` scenarios (OAuth flows; MCPClient sends a static bearer token and does no
OAuth) and ``json-schema-2020-12-preservation`` (not scored at 2026-07-28).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PINS = ROOT / "scripts" / "conformance"  # the pin scripts/conformance.sh uses
CACHE = ROOT / ".cache" / "conformance"  # and its install
SCENARIOS = [
    "tools_call",
    "request-metadata",
    "http-standard-headers",
    "http-custom-headers",
    "http-invalid-tool-headers",
    "json-schema-ref-no-deref",
    "sep-2322-client-request-state",
]


@pytest.fixture(scope="module")
def suite() -> list[str]:
    """``[node, cli]``, installed from the pinned lockfile (re-used while it is unchanged)."""
    if shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("npm not found: the conformance suite needs it (node 20 + npm install node@22)")
        pytest.skip("npm not found: the conformance suite needs node 20 + npm")
    node = CACHE / "node_modules" / "node" / "bin" / "node"
    cli = CACHE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    lock = (PINS / "package-lock.json").read_bytes()
    if not (cli.exists() and node.exists() and (CACHE / "package-lock.json").read_bytes() == lock):
        CACHE.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(PINS / name, CACHE / name)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=CACHE, check=True, timeout=600)
    return [str(node), str(cli)]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_client_scenario(suite, scenario, tmp_path):
    command = f"{sys.executable} {ROOT / 'scripts' / 'conformance_client.py'}"
    run = subprocess.run(
        [*suite, "client", "--command", command, "--scenario", scenario, "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    checks = [check for path in tmp_path.glob("*/checks.json") for check in json.loads(path.read_text())]
    failed = [f"{c['name']}: {c.get('errorMessage')}" for c in checks if c["status"] == "FAILURE"]
    assert checks, f"no checks recorded:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    assert not failed, "\n".join(failed)
    assert run.returncode == 0, run.stdout[-2000:]
    assert any(c["status"] == "SUCCESS" for c in checks)
