"""`devenv up --observe`: a real Prometheus scraping a real local stack; `devenv down` stops it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time

import httpx
import pytest

from devenv.stack.observe import stop_prometheus
from tests.observability.test_export import receiver  # noqa: F401 -- a fixture
from tests.unit.test_cli_local import DEVENV, devenv, gone, package, state_dir  # noqa: F401 -- fixtures

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None and not os.environ.get("CI"), reason="apt-get install prometheus"
)


def _prometheus_url(stdout: str) -> str:
    match = re.search(r"Prometheus: (http://127\.0\.0\.1:\d+)", stdout)
    assert match, stdout
    return match.group(1)


def _up(url: str, timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        reply = httpx.get(f"{url}/api/v1/query", params={"query": 'up{job="devenv"}'}, trust_env=False).json()
        up = {r["metric"]["service"]: r["value"][1] for r in reply["data"]["result"]}
        if len(up) == 2 or time.monotonic() > deadline:
            return up
        time.sleep(0.25)


def test_up_observe_runs_prometheus_on_the_stack_and_down_stops_it(package, state_dir, receiver, monkeypatch, request):  # noqa: F811
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.server_port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export within a moment, not 5 s
    result = devenv("up", "-d", "--no-reload", "--observe", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    url = _prometheus_url(result.stdout)
    assert "devenv's alert rules loaded" in result.stdout
    request.addfinalizer(lambda: stop_prometheus(state_dir))  # also when an assertion below fails
    pid = json.loads((state_dir / "prometheus" / "prometheus.json").read_text())["pid"]

    assert _up(url) == {"alpha": "1", "beta": "1"}
    rules = httpx.get(f"{url}/api/v1/rules", trust_env=False).json()["data"]["groups"]
    assert {r["name"] for g in rules for r in g["rules"]} >= {"DevenvServiceDown", "DevenvHighErrorRatio"}

    # The stack's services export their traces to the collector the environment names.
    exports = devenv("env", "--state-dir", str(state_dir)).stdout.splitlines()
    env = dict(line.removeprefix("export ").split("=", 1) for line in exports)
    answer = httpx.post(f"{env['DEVENV_URL_ALPHA']}/tools/answer", json={}, trust_env=False)
    assert answer.json() == "alpha"
    deadline = time.monotonic() + 20
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.1)
    assert receiver.requests, "the service exported no trace"
    resource = receiver.requests[0][1].resource_spans[0].resource
    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == "alpha"

    down = devenv("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert "stopped prometheus" in down.stdout
    deadline = time.monotonic() + 10
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(pid)


def test_up_observe_without_prometheus_says_how_to_get_it_and_leaves_nothing(package, state_dir, tmp_path):  # noqa: F811
    empty = tmp_path / "bin"  # a PATH with no prometheus on it (services start with sys.executable)
    empty.mkdir()
    command = [*DEVENV, "up", "-d", "--no-reload", "--observe", "--state-dir", str(state_dir)]
    env = {**os.environ, "PATH": str(empty)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "apt-get install prometheus" in result.stderr
    assert "the stack was stopped" in result.stderr
    assert not (state_dir / "state.json").exists()
