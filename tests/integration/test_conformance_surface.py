"""The official conformance suite's server-surface scenarios against `devenv serve conformance`.

One run of the suite per revision (`--requirements 2025-11-25` and `2026-07-28`); every scenario
about rich content, progress, logging, resources, prompts and completion must pass at the
revisions that have it. (The wire's own scenarios are tests/integration/test_conformance.py's.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devenv.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
SURFACE = [
    "completion-complete",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-error",
    "tools-call-with-progress",
    "resources-list",
    "resources-read-text",
    "resources-read-binary",
    "resources-templates-read",
    "prompts-list",
    "prompts-get-simple",
    "prompts-get-with-args",
    "prompts-get-embedded-resource",
    "prompts-get-with-image",
]
ONLY = {
    "2025-11-25": ["tools-call-with-logging", "logging-set-level"],  # removed in 2026-07-28
    "2026-07-28": ["sep-2164-resource-not-found"],  # new in 2026-07-28
}


@pytest.fixture(scope="module")
def conformance_url(tmp_path_factory):
    port = free_port()
    log = (tmp_path_factory.mktemp("conformance-surface") / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devenv.cli", "serve", "conformance", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"devenv serve conformance did not come up; see {log.name}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.mark.parametrize("revision", ["2025-11-25", "2026-07-28"])
def test_surface_scenarios_pass(conformance_url, revision):
    if shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("npm not found: the conformance suite needs it (node 20 + npm install node@22)")
        pytest.skip("npm not found: the conformance suite needs node 20 + npm")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "conformance.sh"), conformance_url, "--requirements", revision],
        capture_output=True,
        text=True,
        timeout=900,
    )
    outcome = {name: mark for mark, name in re.findall(r"^([✓✗]) ([a-z0-9-]+): ", result.stdout, re.MULTILINE)}
    expected = SURFACE + ONLY[revision]
    missing = [s for s in expected if s not in outcome]
    failed = [s for s in expected if outcome.get(s) == "✗"]
    tail = result.stdout[result.stdout.rfind("=== SUMMARY") :]
    assert not missing, f"the suite did not run {missing}:\n{tail}\n{result.stderr[-2000:]}"
    assert not failed, f"failed at {revision}: {failed}\n{tail}"
