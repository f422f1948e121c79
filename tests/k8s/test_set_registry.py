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


def test_prod_without_a_registry_does_not_render_and_says_what_to_do(kubectl, tmp_path):
    """As committed (the placeholder component), kustomize's error is our sentence."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("generated"))
    committed = subprocess.run(
        ["git", "-C", str(ROOT), "show", "HEAD:k8s/overlays/prod/registry/kustomization.yaml"],
        capture_output=True,
        text=True,
    )
    if committed.returncode == 0:  # the placeholder, even where a registry has been chosen in the work tree
        (copy / "overlays/prod/registry/kustomization.yaml").write_text(committed.stdout)
    proc = subprocess.run([kubectl, "kustomize", str(copy / "overlays/prod")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert (
        "NO IMAGE REGISTRY CHOSEN for k8s/overlays/prod. Run:"
        " DEVENV_REGISTRY=registry.example.com/team bash scripts/set-registry.sh" in proc.stderr
    ), proc.stderr
    assert proc.stdout == "", "nothing is rendered"


def test_set_registry_writes_the_overlays_component_by_default(kubectl, tmp_path):
    """The script's default place is the component the prod overlay includes, in its own checkout."""
    project = tmp_path / "project"
    shutil.copytree(K8S, project / "k8s", ignore=shutil.ignore_patterns("generated"))
    (project / "scripts").mkdir()
    shutil.copy2(SCRIPT, project / "scripts" / "set-registry.sh")
    shutil.copytree(ROOT / "services", project / "services", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVENV_")}
    env.update(DEVENV_REGISTRY="registry.example.com/team", DEVENV_IMAGE_TAG="v9")
    proc = subprocess.run(
        ["bash", str(project / "scripts" / "set-registry.sh")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([kubectl, "kustomize", str(project / "k8s/overlays/prod")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    images = {
        d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in yaml.safe_load_all(out.stdout)
        if d and d["kind"] == "Deployment"
    }
    assert images and all(i.startswith("registry.example.com/team/devenv/") and i.endswith(":v9") for i in images)


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
