"""The kind target's control flow, against FAKE ``kind``, ``kubectl`` and ``docker`` (tests/k8s/fakes.py).

The fakes record every call and act out a scenario (a cluster that exists, a step that fails);
``kubectl kustomize`` and ``kubectl create --dry-run=client`` are passed to the real kubectl,
and a fake ``kubectl port-forward`` answers GET /health itself. So these tests show which
commands KindStack runs, in which order, with which kubeconfig, and how it cleans up after a
failure. They do NOT show that it works against kind: tests/k8s/test_real_kind.py runs the real
kind (from PATH or ../shared/third_party).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devenv.errors import ServiceNotFound
from devenv.stack import KindStack, StackError, TargetUnavailable
from devenv.stack.local import _pid_alive
from tests.k8s.fakes import World, fake_env, install_fakes

ROOT = Path(__file__).resolve().parents[2]
TWO = ["jd-classifier", "notifications"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """What KindStack reads from the project (the overlay, the setup script), without the developer's .env."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "k8s", root / "k8s", ignore=shutil.ignore_patterns("generated"))
    (root / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "setup-from-env.sh", root / "scripts" / "setup-from-env.sh")
    (root / "Dockerfile").write_text("# not read by the fake docker\n")
    return root


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    real_kubectl = shutil.which("kubectl")
    if real_kubectl is None:
        pytest.skip("kubectl not found on PATH: the fakes hand `kubectl kustomize` to the real one")
    w = install_fakes(tmp_path / "world")
    w.set_scenario()
    for key, value in fake_env(w, real_kubectl).items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (home / "user-kubeconfig").write_text("# the user's own kubeconfig\n")
    monkeypatch.setenv("KUBECONFIG", str(home / "user-kubeconfig"))
    for key in ("DEVENV_KIND_CLUSTER", "DEVENV_BASE_IMAGE", "DEVENV_STATE_DIR", "DEVENV_PROJECT_DIR"):
        monkeypatch.delenv(key, raising=False)
    yield w
    for pid in w.forward_pids():  # only the fake port-forwards this test started
        if _pid_alive(pid, None):
            os.kill(pid, signal.SIGKILL)


def stack_for(tmp_path: Path, project: Path, **options) -> KindStack:
    return KindStack(state_dir=tmp_path / "state", project_dir=project, **options)


def alive_forwards(world: World) -> list[int]:
    return [pid for pid in world.forward_pids() if _pid_alive(pid, None)]


def tag_of(world: World, service: str) -> str:
    (image,) = [i for i in world.images if i.startswith(f"devenv/{service}:")]
    return image.split(":", 1)[1]


# -- create, reuse, delete ------------------------------------------------------------------------


def test_creates_a_missing_cluster_and_deletes_it_on_down(tmp_path, project, world):
    stack = stack_for(tmp_path, project)
    urls = stack.up(TWO)
    kubeconfig = tmp_path / "state" / "kubeconfig"
    assert set(urls) == set(TWO)
    assert all(re.fullmatch(r"http://127\.0\.0\.1:\d+", u) for u in urls.values())
    assert world.clusters == ["devenv-stack"]
    commands = world.commands()
    assert commands[:2] == ["kind get clusters", f"kind create cluster --name=devenv-stack --kubeconfig={kubeconfig}"]
    assert [s.health for s in stack.status()] == ["healthy", "healthy"]
    assert stack.endpoints() == urls
    assert sorted(stack.down()) == sorted(TWO)
    assert world.commands()[-1] == f"kind delete cluster --name=devenv-stack --kubeconfig={kubeconfig}"
    assert world.clusters == []
    assert alive_forwards(world) == []
    assert stack.status() == [] and stack.endpoints() == {}
    assert not kubeconfig.exists()


def test_reuses_an_existing_cluster_and_leaves_it_on_down(tmp_path, project, world):
    world.add_cluster("devenv-stack")
    stack = stack_for(tmp_path, project)
    stack.up(TWO)
    kubeconfig = tmp_path / "state" / "kubeconfig"
    assert world.commands()[:2] == ["kind get clusters", "kind get kubeconfig --name=devenv-stack"]
    assert not any("create cluster" in c for c in world.commands())
    assert "FAKE kubeconfig of kind cluster devenv-stack" in kubeconfig.read_text()
    assert kubeconfig.stat().st_mode & 0o077 == 0
    stack.down()
    assert not any("delete cluster" in c for c in world.commands())
    assert world.clusters == ["devenv-stack"]
    assert alive_forwards(world) == []


def test_keep_cluster_keeps_a_cluster_it_created(tmp_path, project, world):
    stack = stack_for(tmp_path, project, keep_cluster=True, cluster_name="mine")
    stack.up(TWO)
    assert world.clusters == ["mine"]
    stack.down()
    assert world.clusters == ["mine"]
    assert not any("delete cluster" in c for c in world.commands())


def test_down_from_another_process_stops_the_forwards_and_deletes_what_up_created(tmp_path, project, world):
    stack_for(tmp_path, project).up(TWO)
    assert len(alive_forwards(world)) == 2
    other = stack_for(tmp_path, project)  # as `devenv down` would, with only the state dir in common
    assert sorted(other.down()) == sorted(TWO)
    assert alive_forwards(world) == []
    assert world.clusters == []


def test_a_second_up_while_running_is_refused(tmp_path, project, world):
    stack = stack_for(tmp_path, project)
    stack.up(TWO)
    with pytest.raises(StackError, match="already running"):
        stack_for(tmp_path, project).up(TWO)
    stack.down()


# -- images, manifests, config ----------------------------------------------------------------------


def test_images_are_built_loaded_and_deployed_with_a_unique_tag(tmp_path, project, world):
    world.add_cluster("devenv-stack")
    stack = stack_for(tmp_path, project)
    stack.up(TWO)
    first = tag_of(world, "jd-classifier")
    assert tag_of(world, "notifications") == first
    for service in TWO:
        image = f"devenv/{service}:{first}"
        assert f"docker build --build-arg SERVICE={service} --tag {image}" in " ".join(world.commands("docker"))
        assert f"kind load docker-image --name devenv-stack {image}" in world.commands("kind")
    manifests = [d for d in yaml.safe_load_all((tmp_path / "state" / "manifests.yaml").read_text()) if d]
    images = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in manifests
        if d["kind"] == "Deployment"
    }
    assert images == {s: f"devenv/{s}:{first}" for s in TWO}
    stack.down()
    stack.up(TWO)
    second = [i for i in world.images if i.startswith("devenv/jd-classifier:")][-1].split(":", 1)[1]
    assert second != first, "the same tag twice would not roll the Pods"
    stack.down()


def test_only_the_chosen_services_are_deployed(tmp_path, project, world):
    stack = stack_for(tmp_path, project)
    stack.up(["jd-classifier"])
    manifests = [d for d in yaml.safe_load_all((tmp_path / "state" / "manifests.yaml").read_text()) if d]
    names = {(d["kind"], d["metadata"]["name"]) for d in manifests}
    assert {n for k, n in names if k == "Deployment"} == {"jd-classifier"}
    assert ("StatefulSet", "redis") in names and ("Service", "redis-service") in names
    assert ("PersistentVolumeClaim", "vault") not in names, "file-system's volume goes with file-system"
    assert ("NetworkPolicy", "default-deny-all") in names
    waited = [c.split()[3] for c in world.commands() if c.startswith("kubectl rollout status")]
    assert waited == ["statefulset/redis", "deployment/jd-classifier"]
    forwarded = [c for c in world.commands() if " port-forward " in c]
    assert len(forwarded) == 1 and "service/jd-classifier-service" in forwarded[0]
    assert len([c for c in world.commands("docker") if c.startswith("docker build")]) == 1
    stack.down()


def test_apply_order_namespace_then_secret_then_manifests_then_rollouts_then_forwards(tmp_path, project, world):
    stack = stack_for(tmp_path, project)
    stack.up(TWO)
    commands = world.commands("kubectl")
    state = tmp_path / "state"

    def first(pattern: str) -> int:
        return next(i for i, c in enumerate(commands) if pattern in c)

    steps = [
        first("kubectl kustomize"),
        first("kubectl apply -f -"),  # the namespace
        first(f"-f {state}/generated/secret.yaml -f {state}/generated/configmap.yaml"),
        first(f"kubectl apply -f {state}/manifests.yaml"),
        first("rollout status statefulset/redis"),
        first("rollout status deployment/jd-classifier"),
        first("rollout status deployment/notifications"),
        first("port-forward --namespace devenv --address 127.0.0.1 service/jd-classifier-service :8080"),
        first("port-forward --namespace devenv --address 127.0.0.1 service/notifications-service :8080"),
    ]
    assert steps == sorted(steps), commands
    (namespace_apply,) = [c for c in world.calls("kubectl") if c["argv"] == ["apply", "-f", "-"]]
    assert [d["kind"] for d in yaml.safe_load_all(namespace_apply["stdin"])] == ["Namespace"]
    stack.down()


def test_the_kubeconfig_is_isolated(tmp_path, project, world):
    stack = stack_for(tmp_path, project)
    stack.up(TWO)
    stack.down()
    kubeconfig = str(tmp_path / "state" / "kubeconfig")
    for call in world.calls():
        if call["program"] in ("kind", "kubectl"):
            assert call["kubeconfig"] == kubeconfig, call["argv"]
    for command in world.commands("kind"):
        if "create cluster" in command or "delete cluster" in command:
            assert f"--kubeconfig={kubeconfig}" in command
    assert not (Path(os.environ["HOME"]) / ".kube").exists()
    assert (Path(os.environ["HOME"]) / "user-kubeconfig").read_text() == "# the user's own kubeconfig\n"


def test_env_and_dotenv_become_the_secret_and_configmap(tmp_path, project, world):
    (project / ".env").write_text("API_TOKEN=from-dotenv\nDEVENV_LOG_LEVEL=INFO\nVAULT_ROOT=./vault\n")
    stack = stack_for(tmp_path, project, env={"DEVENV_LOG_LEVEL": "DEBUG", "WEBHOOK_SECRET": "hook-value-9f3"})
    stack.up(TWO)
    generated = tmp_path / "state" / "generated"
    secret = yaml.safe_load((generated / "secret.yaml").read_text())
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["API_TOKEN"] == "from-dotenv" and data["WEBHOOK_SECRET"] == "hook-value-9f3"
    assert re.fullmatch(r"[0-9a-f]{48}", data["REDIS_PASSWORD"]), "none given, none in the cluster: generated"
    config = yaml.safe_load((generated / "configmap.yaml").read_text())["data"]
    assert config == {"DEVENV_LOG_LEVEL": "DEBUG"}, "env over .env; VAULT_ROOT is the manifests' business"
    assert not list(generated.glob(".input.*")), "the combined env file is removed"
    assert "hook-value-9f3" not in " ".join(world.commands()), "a secret value reached a command line"
    stack.down()
    assert not (generated / "secret.yaml").exists(), "the Secret does not outlive the stack"


def test_the_clusters_redis_password_is_kept(tmp_path, project, world):
    world.add_cluster("devenv-stack")
    world.set_scenario(existing_redis_password_b64=base64.b64encode(b"already-there").decode())
    stack = stack_for(tmp_path, project)
    stack.up(TWO)
    secret = yaml.safe_load((tmp_path / "state" / "generated" / "secret.yaml").read_text())
    assert base64.b64decode(secret["data"]["REDIS_PASSWORD"]).decode() == "already-there"
    assert not any("rollout restart" in c for c in world.commands())
    stack.down()


def test_a_new_redis_password_restarts_redis(tmp_path, project, world):
    world.add_cluster("devenv-stack")
    world.set_scenario(existing_redis_password_b64=base64.b64encode(b"old-password").decode())
    stack = stack_for(tmp_path, project, env={"REDIS_PASSWORD": "new-password"})
    stack.up(TWO)
    commands = world.commands("kubectl")
    restart = next(i for i, c in enumerate(commands) if c.startswith("kubectl rollout restart statefulset/redis"))
    assert restart < next(i for i, c in enumerate(commands) if "rollout status statefulset/redis" in c)
    stack.down()


def test_logs_come_from_the_pods(tmp_path, project, world):
    stack = stack_for(tmp_path, project)
    stack.up(TWO)
    assert "FAKE log line" in stack.logs("jd-classifier")
    assert any("logs --namespace devenv --selector app.kubernetes.io/name=jd-classifier" in c for c in world.commands())
    with pytest.raises(StackError, match="services of the stack"):
        stack.logs("file-system")
    stack.down()


def test_a_dead_port_forward_is_reported_stopped(tmp_path, project, world):
    stack = stack_for(tmp_path, project)
    stack.up(TWO)
    record = json.loads((tmp_path / "state" / "state.json").read_text())["services"]["notifications"]
    os.killpg(record["pid"], signal.SIGKILL)
    os.waitpid(record["pid"], 0)
    health = {s.name: s.health for s in stack.status()}
    assert health == {"jd-classifier": "healthy", "notifications": "stopped"}
    assert stack.down() == ["jd-classifier"]
    assert world.clusters == []


# -- failures -------------------------------------------------------------------------------------------


FAILURES = [
    ("kind", "create cluster", "ERROR: failed to create cluster: boom-create"),
    ("docker", "SERVICE=notifications", "ERROR: failed to solve: boom-build"),
    ("kind", "load docker-image", "ERROR: boom-load"),
    ("kubectl", "manifests.yaml", "error: boom-apply"),
    ("kubectl", "rollout status deployment/notifications", "error: deployment exceeded its progress deadline"),
    ("kubectl", "service/notifications-service", "error: boom-forward"),
]


@pytest.mark.parametrize(("program", "args", "stderr"), FAILURES, ids=[f[1] for f in FAILURES])
def test_a_failing_step_is_a_stack_error_with_its_stderr_and_leaves_nothing(
    tmp_path, project, world, program, args, stderr
):
    world.fail(program, args, stderr)
    stack = stack_for(tmp_path, project)
    with pytest.raises(StackError) as failure:
        stack.up(TWO, timeout=20)
    assert stderr in str(failure.value)
    assert alive_forwards(world) == []
    assert stack.endpoints() == {}
    assert world.clusters == [], "a cluster this up created is deleted again"
    if args == "rollout status deployment/notifications":
        assert "--- pods:" in str(failure.value) and "--- logs:" in str(failure.value)
    if args == "create cluster":
        assert not any("delete cluster" in c for c in world.commands()), "it never existed"


def test_a_failing_step_on_a_reused_cluster_leaves_the_cluster(tmp_path, project, world):
    world.add_cluster("devenv-stack")
    world.fail("kubectl", "rollout status deployment/jd-classifier", "error: timed out waiting")
    with pytest.raises(StackError, match="timed out waiting"):
        stack_for(tmp_path, project).up(TWO, timeout=20)
    assert world.clusters == ["devenv-stack"]
    assert not any("delete cluster" in c for c in world.commands())


def test_a_service_answering_as_another_fails_the_health_wait(tmp_path, project, world):
    world.set_scenario(health_answers_as={"notifications": "someone-else"})
    with pytest.raises(StackError, match=r"GET /health of notifications \(unhealthy: the port answers as"):
        stack_for(tmp_path, project).up(TWO, timeout=3)
    assert alive_forwards(world) == []


def test_a_service_without_a_manifest_fails_before_any_build(tmp_path, project, world):
    (project / "k8s/base/services/notifications.yaml").unlink()
    with pytest.raises(
        StackError,
        match=r"service 'notifications' has no manifest .*k8s/base/services/notifications.yaml.*devenv generate",
    ):
        stack_for(tmp_path, project).up(["jd-classifier", "notifications"])
    assert world.commands() == []


def test_an_unknown_service_fails_before_any_command(tmp_path, project, world):
    with pytest.raises(ServiceNotFound):
        stack_for(tmp_path, project).up(["no-such-service"])
    assert world.commands() == []


def test_kind_missing_is_target_unavailable_naming_it(tmp_path, project, world, monkeypatch):
    (world.bin_dir / "kind").unlink()
    if shutil.which("kind"):
        pytest.skip("a real kind is installed on this machine")
    with pytest.raises(TargetUnavailable, match="kind not found on PATH: install kind") as failure:
        stack_for(tmp_path, project).up(TWO)
    assert isinstance(failure.value, StackError)
    assert world.commands() == []


def test_get_stack_makes_a_kind_stack_with_the_usual_options(tmp_path):
    # In a fresh interpreter: the registry as shipped, not as another test may have patched it.
    code = (
        "from devenv.stack import KindStack, get_stack\n"
        f"s = get_stack('kind', state_dir={str(tmp_path / 's')!r}, env={{'A': 'b'}}, reload=True, keep_cluster=True)\n"
        "assert type(s) is KindStack, type(s)\n"
        "print(s.cluster_name, s.status(), s.endpoints(), s.down())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DEVENV_KIND_CLUSTER"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["devenv-stack", "[]", "{}", "[]"]
    assert not (tmp_path / "s").exists(), "reading an absent stack creates nothing"


def test_the_cluster_name_can_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DEVENV_KIND_CLUSTER", "from-env")
    assert KindStack(tmp_path / "s").cluster_name == "from-env"
    assert KindStack(tmp_path / "s", cluster_name="given").cluster_name == "given"
