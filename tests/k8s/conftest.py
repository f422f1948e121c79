"""Render the kustomize overlays once per session with the real ``kubectl kustomize`` (no cluster needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = {"base": K8S / "base", "dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
NAMESPACE = "devenv"


def kubectl_path() -> str:
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("DEVENV_REQUIRE_KUBECTL"):
            pytest.fail("kubectl not found on PATH, and DEVENV_REQUIRE_KUBECTL is set", pytrace=False)
        pytest.skip("kubectl not found on PATH: install kubectl (kubectl kustomize renders the manifests)")
    return path


def render(path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run([kubectl_path(), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="session")
def kubectl() -> str:
    return kubectl_path()


#: The registry the tests choose for the prod overlay (scripts/set-registry.sh), and the tag.
TEST_REGISTRY = "registry.test.invalid/team"
TEST_TAG = "t1"


def with_registry(tmp: Path) -> Path:
    """A copy of k8s/ whose prod overlay has its registry chosen by the real scripts/set-registry.sh."""
    shutil.copytree(K8S, tmp / "k8s", ignore=shutil.ignore_patterns("generated"))
    env = {**os.environ, "DEVENV_REGISTRY": TEST_REGISTRY, "DEVENV_IMAGE_TAG": TEST_TAG}
    out = tmp / "k8s" / "overlays" / "prod" / "registry"
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "set-registry.sh"), "--out", str(out)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return tmp / "k8s"


@pytest.fixture(scope="session")
def rendered(kubectl: str, tmp_path_factory) -> dict[str, list[dict[str, Any]]]:
    """Overlay name ("base", "dev", "prod") → its rendered objects (prod with a registry chosen)."""
    k8s = with_registry(tmp_path_factory.mktemp("k8s"))
    paths = {**OVERLAYS, "prod": k8s / "overlays" / "prod"}
    return {name: render(path) for name, path in paths.items()}


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def by_name(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in of_kind(objects, kind)}
