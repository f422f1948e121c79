"""The prod overlay's registry: one setting (DEVENV_REGISTRY) through kustomize `images:`, never Docker Hub."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import K8S, ROOT, with_registry

SCRIPT = ROOT / "scripts" / "set-registry.sh"


def run(out: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DEVENV_")}
    full.update(env)
    return subprocess.run(["bash", str(SCRIPT), "--out", str(out)], capture_output=True, text=True, env=full)


def test_prod_without_a_registry_does_not_render_and_says_where(kubectl, tmp_path):
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("generated"))
    proc = subprocess.run([kubectl, "kustomize", str(copy / "overlays/prod")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "k8s/generated/registry" in proc.stderr
    text = (K8S / "overlays/prod/kustomization.yaml").read_text()
    assert "DEVENV_REGISTRY=registry.example.com/team scripts/set-registry.sh" in text, "the overlay says what to do"


def test_a_registry_names_every_image(kubectl, tmp_path):
    k8s = with_registry(tmp_path)
    out = subprocess.run([kubectl, "kustomize", str(k8s / "overlays/prod")], capture_output=True, text=True, check=True)
    images = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in yaml.safe_load_all(out.stdout)
        if d and d["kind"] == "Deployment"
    }
    assert images and all(i == f"registry.test.invalid/team/devenv/{n}:t1" for n, i in images.items()), images


def test_a_registry_names_the_redis_image_too(kubectl, tmp_path):
    k8s = with_registry(tmp_path)
    out = subprocess.run([kubectl, "kustomize", str(k8s / "overlays/prod")], capture_output=True, text=True, check=True)
    (redis,) = [d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "StatefulSet"]
    assert redis["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.test.invalid/team/redis:7.2-alpine"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DEVENV_REGISTRY is not set: name the registry the prod images come from"),
        ({"DEVENV_REGISTRY": "Registry With Spaces"}, "DEVENV_REGISTRY=Registry With Spaces is not a registry name"),
        (
            {"DEVENV_REGISTRY": "reg.test/x", "DEVENV_IMAGE_TAG": "bad tag"},
            "DEVENV_IMAGE_TAG=bad tag is not a valid image tag",
        ),
    ],
)
def test_bad_settings_are_clear_errors_and_write_nothing(tmp_path, env, message):
    proc = run(tmp_path / "registry", **env)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert not (tmp_path / "registry").exists()


def test_the_tag_defaults_to_the_commit(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    proc = run(tmp_path / "registry", DEVENV_REGISTRY="reg.test/team/")
    assert proc.returncode == 0, proc.stderr
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    component = yaml.safe_load((tmp_path / "registry/kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    ours = [i for i in component["images"] if i["name"].startswith("devenv/")]
    assert {i["newTag"] for i in ours} == {commit.stdout.strip()}
    assert {i["newName"] for i in ours} == {f"reg.test/team/devenv/{i['name'][7:]}" for i in ours}
