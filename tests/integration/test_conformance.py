"""The official MCP conformance suite (npm @modelcontextprotocol/conformance) against `devenv serve`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devenv.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"]


@pytest.fixture(scope="module")
def served_mcp_url(tmp_path_factory):
    """A real `devenv serve jd-classifier` process, started the way a user starts it."""
    port = free_port()
    log = (tmp_path_factory.mktemp("conformance") / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devenv.cli", "serve", "jd-classifier", "--port", str(port)],
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
                pytest.fail(f"devenv serve did not come up; see {log.name}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_official_conformance_server_scenarios(served_mcp_url):
    if shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("npm not found: the conformance suite needs it (node 20 + npm install node@22)")
        pytest.skip("npm not found: the conformance suite needs node 20 + npm")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "conformance.sh"), served_mcp_url, *SCENARIOS],
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = result.stdout[result.stdout.rfind("=== conformance summary") :]
    assert result.returncode == 0, f"{summary}\n{result.stderr[-3000:]}"
    for scenario in SCENARIOS:
        assert f"PASS  {scenario}" in summary
