"""The kind target against the real kind: from PATH, else the copy built from upstream in
../shared/third_party (unpacked into .cache/kind/ by tests/third_party.py).

Where kind can create a cluster, ``test_real_kind`` deploys jd-classifier and calls it. Where it
cannot (these machines: the node image ``kindest/node`` can be neither pulled nor built), that test
skips with kind's own error, and ``test_a_failed_cluster_creation_is_reported_and_leaves_nothing``
shows what the kind target does with a real kind failure. One attempt serves both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from devenv.stack import KindStack, StackError, TargetUnavailable
from tests.third_party import ToolNotFound, find_tool

from .conftest import ROOT

KIND_SHA256 = "9ff0f609c2343f8543455d5c9cb579f6de56100fcf1a2e87dd33fa2202fe973a"  # shared/third_party/README.md
#: kind's own words when it cannot get its node image (pull or local build).
NO_NODE_IMAGE = ("failed to pull image", "Ensuring node image")


def _require_or_skip(reason: str) -> None:
    if os.environ.get("DEVENV_REQUIRE_KIND"):
        pytest.fail(f"DEVENV_REQUIRE_KIND is set but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def kind() -> Path:
    try:
        return find_tool("kind", KIND_SHA256)
    except ToolNotFound as exc:
        _require_or_skip(str(exc))
        raise


@pytest.fixture(scope="module")
def on_path(kind: Path):
    """PATH with that kind first: the kind target looks its binaries up there."""
    if shutil.which("docker") is None:
        _require_or_skip("docker not found on PATH: kind runs its nodes as Docker containers")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{kind.parent}{os.pathsep}{os.environ['PATH']}")
        yield kind


@pytest.fixture(scope="module")
def attempt(on_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real ``up`` of jd-classifier: (stack, urls) or (stack, the StackError)."""
    stack = KindStack(
        tmp_path_factory.mktemp("kind") / "state", cluster_name=f"devenv-test-{os.getpid()}", project_dir=ROOT
    )
    try:
        outcome: dict[str, str] | StackError = stack.up(["jd-classifier"], timeout=600)
    except TargetUnavailable:  # a StackError too, but no kind failure (no kubectl, say): not caught
        raise
    except StackError as exc:
        outcome = exc
    yield stack, outcome
    stack.down()


def clusters(kind: Path) -> list[str]:
    proc = subprocess.run([str(kind), "get", "clusters"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_the_kind_binary_runs_and_talks_to_docker(on_path):
    proc = subprocess.run([str(on_path), "version"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("kind v"), proc.stdout + proc.stderr
    clusters(on_path)  # lists (or says "No kind clusters found.") through the Docker engine


def test_a_bad_cluster_config_is_refused_by_kind_before_any_node(on_path, tmp_path):
    """kind validates a cluster config itself; the same binary the kind target would run."""
    config = tmp_path / "kind.yaml"
    config.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: captain\n")
    proc = subprocess.run(
        [str(on_path), "create", "cluster", "--name", f"devenv-bad-{os.getpid()}", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "captain" in proc.stderr, proc.stderr
    assert f"devenv-bad-{os.getpid()}" not in clusters(on_path)


def test_a_failed_cluster_creation_is_reported_and_leaves_nothing(attempt, on_path):
    stack, outcome = attempt
    if not isinstance(outcome, StackError):
        pytest.skip("kind created a cluster here: there is no real failure to report (test_real_kind ran instead)")
    message = str(outcome)
    assert message.startswith(f"creating kind cluster '{stack.cluster_name}': `kind create cluster"), message
    assert "ERROR: failed to create cluster" in message, "kind's own error is carried"
    assert stack.cluster_name not in clusters(on_path)
    names = subprocess.run(
        ["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, timeout=60
    ).stdout.split()
    assert f"{stack.cluster_name}-control-plane" not in names, "no node container is left behind"
    assert stack.status() == [] and stack.endpoints() == {}


def test_real_kind(attempt, on_path):
    """A cluster, jd-classifier deployed, one tool call through the port-forward."""
    stack, outcome = attempt
    if isinstance(outcome, StackError):
        if not any(words in str(outcome) for words in NO_NODE_IMAGE):
            raise outcome  # a failure that is not this machine's: a bug to see
        error = next((line for line in str(outcome).splitlines() if "ERROR:" in line), str(outcome))
        _require_or_skip(f"kind cannot create a cluster here (no kindest/node image): {error.strip()}")
    response = httpx.post(f"{outcome['jd-classifier']}/tools/find_category", json={"query": "tax"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "11"
