"""scripts/build-and-deploy.sh against FAKE ``docker``, ``kind`` and ``kubectl`` (tests/k8s/fakes.py).

These show the order of the commands, what is applied and what happens when a step fails.
They do not show that the images build or that a cluster accepts the manifests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT
from .fakes import World, fake_env, install_fakes

SERVICES = sorted(p.parent.name.replace("_", "-") for p in (ROOT / "services").glob("*/service.py"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what the script reads (scripts, k8s, Dockerfile, services/*/service.py), outside any git repo."""
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    for script in ("build-and-deploy.sh", "setup-from-env.sh", "set-registry.sh"):
        shutil.copy2(ROOT / "scripts" / script, root / "scripts" / script)
    shutil.copytree(ROOT / "k8s", root / "k8s", ignore=shutil.ignore_patterns("generated"))
    for service in SERVICES:
        package = root / "services" / service.replace("-", "_")
        package.mkdir(parents=True)
        (package / "service.py").write_text("")
    (root / "Dockerfile").write_text("# not read by the fake docker\n")
    (root / ".env").write_text("REDIS_PASSWORD=from-dot-env\nAPI_TOKEN=tok-abcdef\n")
    return root


@pytest.fixture
def world(tmp_path: Path, kubectl: str) -> World:
    w = install_fakes(tmp_path / "world")
    w.set_scenario()
    return w


def deploy(project: Path, world: World, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **fake_env(world), "DEVENV_IMAGE_TAG": "t1", **env}
    for key in ("DEVENV_REGISTRY", "DEVENV_OVERLAY", "DEVENV_KUBE_CONTEXT", "DEVENV_KIND_CLUSTER"):
        if key not in env:
            full_env.pop(key, None)
    return subprocess.run(
        ["bash", str(project / "scripts" / "build-and-deploy.sh")],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def applied_manifest(world: World) -> list[dict]:
    """The objects of the last `kubectl apply -f <file>` that was not the Secret/ConfigMap one."""
    for call in reversed(world.calls("kubectl")):
        argv = call["argv"]
        if "apply" in argv and argv[-1].endswith("rendered.yaml"):
            return [d for d in yaml.safe_load_all(Path(argv[-1]).read_text()) if d]
    raise AssertionError("no manifest was applied")


def test_kind_order_build_load_config_apply_wait(project, world):
    world.add_cluster("devenv")
    proc = deploy(project, world)
    assert proc.returncode == 0, proc.stderr
    commands = [c.replace(str(project), "<project>") for c in world.commands()]
    builds = [
        f"docker build --build-arg SERVICE={s} --tag devenv/{s}:t1 --file <project>/Dockerfile <project>"
        for s in SERVICES
    ]
    loads = [f"kind load docker-image --name devenv devenv/{s}:t1" for s in SERVICES]
    assert commands[0] == "kind get clusters"
    assert commands[1 : 1 + len(builds)] == builds
    assert commands[1 + len(builds) : 1 + 2 * len(builds)] == loads
    rest = commands[1 + 2 * len(builds) :]
    ordered = [
        next(i for i, c in enumerate(rest) if "create secret generic devenv-secrets" in c),
        rest.index("kubectl kustomize <project>/k8s/generated/deploy"),  # k8s/overlays/dev with this run's images
        next(i for i, c in enumerate(rest) if "create namespace devenv" in c),
        next(i for i, c in enumerate(rest) if c.endswith("-f <project>/k8s/generated/configmap.yaml")),
        next(i for i, c in enumerate(rest) if c.endswith("apply -f <project>/k8s/generated/rendered.yaml")),
        next(i for i, c in enumerate(rest) if "rollout status statefulset/redis" in c),
    ]
    assert ordered == sorted(ordered), rest
    wrapper = yaml.safe_load((project / "k8s" / "generated" / "deploy" / "kustomization.yaml").read_text())
    assert wrapper["resources"] == ["../../overlays/dev"]
    waits = [c for c in rest if "rollout status" in c]
    assert waits == [
        f"kubectl --context kind-devenv rollout status {w} --namespace devenv --timeout 300s"
        for w in ["statefulset/redis", *(f"deployment/{s}" for s in SERVICES)]
    ]
    assert all(c.startswith("kubectl --context kind-devenv") for c in rest if " apply " in c)
    images = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in applied_manifest(world)
        if d["kind"] == "Deployment"
    }
    assert images == {s: f"devenv/{s}:t1" for s in SERVICES}
    secret = yaml.safe_load((project / "k8s" / "generated" / "secret.yaml").read_text())
    assert set(secret["data"]) == {"REDIS_PASSWORD", "DEVENV_STATE_SECRET", "API_TOKEN"}  # the first two generated


def test_registry_pushes_and_deploys_prod(project, world):
    proc = deploy(project, world, DEVENV_REGISTRY="registry.example.com/team/")
    assert proc.returncode == 0, proc.stderr
    commands = world.commands()
    assert not any(c.startswith("kind ") for c in commands)
    assert [c for c in commands if c.startswith("docker push")] == [
        f"docker push registry.example.com/team/devenv/{s}:t1" for s in SERVICES
    ]
    assert any(c.endswith("kustomize " + str(project / "k8s" / "generated" / "deploy")) for c in commands)
    wrapper = yaml.safe_load((project / "k8s" / "generated" / "deploy" / "kustomization.yaml").read_text())
    assert wrapper["resources"] == ["../../overlays/prod"]
    registry = yaml.safe_load((project / "k8s" / "overlays" / "prod" / "registry" / "kustomization.yaml").read_text())
    assert {i["name"]: f"{i['newName']}:{i.get('newTag', '<base tag>')}" for i in registry["images"]} == {
        **{f"devenv/{s}": f"registry.example.com/team/devenv/{s}:t1" for s in SERVICES},
        "redis": "registry.example.com/team/redis:<base tag>",  # mirrored, at the tag k8s/base pins
    }
    assert not any("--context" in c for c in commands), "with a registry the current context is used"
    deployments = [d for d in applied_manifest(world) if d["kind"] == "Deployment"]
    assert {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments} == {
        f"registry.example.com/team/devenv/{s}:t1" for s in SERVICES
    }
    assert any(d["kind"] == "Ingress" for d in applied_manifest(world))


def test_no_kind_cluster_is_a_clear_error_before_anything_is_built(project, world):
    proc = deploy(project, world)
    assert proc.returncode != 0
    assert "no kind cluster named devenv" in proc.stderr and "kind create cluster --name devenv" in proc.stderr
    assert not world.commands("docker")


def test_a_failed_rollout_fails_the_script_with_diagnostics(project, world):
    world.add_cluster("devenv")
    world.fail("kubectl", "rollout status deployment/inbox-agent", "error: deployment exceeded its progress deadline")
    proc = deploy(project, world)
    assert proc.returncode != 0
    assert "exceeded its progress deadline" in proc.stderr
    assert "deployment/inbox-agent did not roll out" in proc.stderr
    assert "--- pods:" in proc.stderr
    assert not any("deployment/notifications" in c for c in world.commands() if "rollout" in c), "waits stop there"


def test_a_failed_build_stops_before_anything_is_applied(project, world):
    world.add_cluster("devenv")
    world.fail("docker", "SERVICE=file-system", "failed to solve: process did not complete successfully")
    proc = deploy(project, world)
    assert proc.returncode != 0
    assert "failed to solve" in proc.stderr
    assert not any(" apply " in c for c in world.commands())


def test_kind_missing_names_the_binary(project, world, tmp_path):
    (world.bin_dir / "kind").unlink()
    if shutil.which("kind", path=fake_env(world)["PATH"]):
        pytest.skip("a real kind is installed on this machine")
    proc = deploy(project, world)
    assert proc.returncode != 0
    assert "kind not found on PATH" in proc.stderr
