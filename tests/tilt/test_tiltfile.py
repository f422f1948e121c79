"""The Tiltfile, evaluated by starlark-pyo3 with Tilt's builtins recorded (tests/tilt/tilt_stub.py).

Tilt cannot run here; this checks what the Tiltfile declares (images, live update steps,
resources, port-forwards, the YAML it deploys) with the parameters of Tilt's API. It does not
show that Tilt builds, syncs or reloads anything.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
import starlark

from devenv.tools import Registry

from .tilt_stub import evaluate

ROOT = Path(__file__).resolve().parents[2]
TILTFILE = ROOT / "Tiltfile"
SERVICES = Registry("services").names()


def declared_port(service: str) -> int:
    """``port=`` of ``Service(...)`` in services/<package>/service.py, read without importing it."""
    tree = ast.parse((ROOT / "services" / service.replace("-", "_") / "service.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Service":
            return next(k.value.value for k in node.keywords if k.arg == "port")
    raise AssertionError(f"{service} declares no port")


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl not found on PATH: the stub's kustomize() runs `kubectl kustomize`")
    return path


@pytest.fixture(scope="module")
def tilt_env(tmp_path_factory) -> dict[str, str]:
    """setup-from-env.sh, as the Tiltfile's local() runs it, reads and writes only in a temporary folder."""
    folder = tmp_path_factory.mktemp("tilt")
    (folder / ".env").write_text("REDIS_PASSWORD=tilt-test\nDEVENV_LOG_LEVEL=DEBUG\n")
    return {"ENV_FILE": str(folder / ".env"), "OUT_DIR": str(folder / "generated")}


@pytest.fixture(scope="module")
def everything(kubectl, tilt_env):
    return evaluate(TILTFILE, [], local_env=tilt_env, kubectl=kubectl)


def test_only_the_kind_context_is_allowed(everything):
    assert everything.one("allow_k8s_contexts")["contexts"] in ("kind-devenv", ["kind-devenv"])


def test_a_docker_build_per_service_from_the_dev_stage(everything):
    builds = {b["ref"]: b for b in everything.all("docker_build")}
    assert set(builds) == {f"devenv/{s}" for s in SERVICES}
    for service in SERVICES:
        build = builds[f"devenv/{service}"]
        assert build["context"] == "."
        assert build["dockerfile"] == "Dockerfile"
        assert (ROOT / build["dockerfile"]).is_file()
        assert build["target"] == "dev"
        assert build["build_args"] == {"SERVICE": service}


def test_live_update_syncs_the_code_and_reinstalls_on_pyproject(everything):
    for build in everything.all("docker_build"):
        steps = build["live_update"]
        syncs = {s["local_path"].rstrip("/"): s["remote_path"].rstrip("/") for s in steps if s["step"] == "sync"}
        assert syncs["devenv"] == "/app/devenv"
        assert syncs["services"] == "/app/services"
        assert syncs["pyproject.toml"] == "/app/pyproject.toml", "a run trigger must be a synced file"
        runs = [s for s in steps if s["step"] == "run"]
        (install,) = [r for r in runs if "pyproject.toml" in r["trigger"]]
        assert "pip install" in install["cmd"]
        assert "touch /app/devenv/__init__.py" in install["cmd"], "the reloader must restart on the new dependencies"
        kinds = [s["step"] for s in steps]
        # Tilt's rule: fall_back_on first, then syncs, then runs.
        assert kinds == sorted(kinds, key=["fall_back_on", "sync", "run"].index)
        for local_path in syncs:
            assert (ROOT / local_path).exists(), local_path


def test_the_dev_overlay_is_deployed(everything):
    assert everything.one("kustomize")["pathToDir"] == "k8s/overlays/dev"
    objects = everything.k8s_objects()
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("Deployment", s) for s in SERVICES} <= kinds
    assert ("StatefulSet", "redis") in kinds
    assert ("Secret", "devenv-secrets") in kinds and ("ConfigMap", "devenv-env") in kinds


def test_the_secret_comes_from_env_without_echoing_it(everything):
    (local,) = [c for c in everything.all("local") if "setup-from-env.sh" in c["command"]]
    assert "--stdout" in local["command"]
    assert local["echo_off"] is True and local["quiet"] is True
    assert everything.one("watch_file", file_path=".env")


def test_only_tilt_relaxes_the_read_only_root_filesystem(everything, kubectl):
    """live_update writes into the container; the dev overlay itself keeps the root read-only."""
    for obj in everything.k8s_objects():
        if obj["kind"] == "Deployment":
            sc = obj["spec"]["template"]["spec"]["containers"][0]["securityContext"]
            assert sc["readOnlyRootFilesystem"] is False
            assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}


def test_a_resource_per_service_with_port_forward_labels_and_deps(everything):
    resources = {r["workload"]: r for r in everything.all("k8s_resource")}
    workloads = {o["metadata"]["name"] for o in everything.k8s_objects() if o["kind"] in ("Deployment", "StatefulSet")}
    assert set(resources) <= workloads, "k8s_resource of a workload that is not deployed"
    assert resources["redis"]["labels"]
    local_ports = []
    for service in SERVICES:
        resource = resources[service]
        (forward,) = resource["port_forwards"]
        local, remote = (int(p) for p in str(forward).split(":"))
        assert local == declared_port(service), f"{service}: forward on the port it uses locally"
        assert remote == 8080
        local_ports.append(local)
        assert "redis" in resource["resource_deps"]
        assert resource["labels"]
    assert len(set(local_ports)) == len(local_ports)
    assert set(resources["inbox-agent"]["resource_deps"]) >= {"jd-classifier", "content-classifier", "file-system"}


def test_every_image_is_used_by_a_deployed_container(everything):
    images = {
        c["image"].rsplit(":", 1)[0]
        for o in everything.k8s_objects()
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    for build in everything.all("docker_build"):
        assert build["ref"] in images, f"Tilt would warn: {build['ref']} is built but not used"


def test_unit_tests_run_on_change(everything):
    tests = everything.one("local_resource", name="unit-tests")
    assert "pytest tests/unit" in tests["cmd"]
    assert {"devenv", "services", "tests/unit"} <= set(tests["deps"])
    assert tests["allow_parallel"] is True
    assert tests["labels"]


@pytest.mark.parametrize(
    "args",
    [
        ["--services=jd-classifier,notifications"],
        ["--services", "jd-classifier", "--services", "notifications"],
        ["--services= notifications , jd-classifier,jd-classifier"],
    ],
)
def test_services_flag_narrows_what_is_declared(kubectl, tilt_env, args):
    some = evaluate(TILTFILE, args, local_env=tilt_env, kubectl=kubectl)
    chosen = {"jd-classifier", "notifications"}
    assert {b["ref"] for b in some.all("docker_build")} == {f"devenv/{s}" for s in chosen}
    assert {r["workload"] for r in some.all("k8s_resource")} == chosen | {"redis"}
    deployed = {o["metadata"]["name"] for o in some.k8s_objects() if o["kind"] in ("Deployment", "Service")}
    assert deployed == chosen | {f"{s}-service" for s in chosen} | {"redis-service"}
    assert some.one("local_resource", name="unit-tests")


def test_inbox_agent_alone_waits_for_redis_only(kubectl, tilt_env):
    alone = evaluate(TILTFILE, ["--services=inbox-agent"], local_env=tilt_env, kubectl=kubectl)
    assert alone.one("k8s_resource", workload="inbox-agent")["resource_deps"] == ["redis"]


def test_an_unknown_service_fails_the_tiltfile(kubectl, tilt_env):
    with pytest.raises(starlark.StarlarkError, match="unknown service .nope. in --services"):
        evaluate(TILTFILE, ["--services=jd-classifier,nope"], local_env=tilt_env, kubectl=kubectl)


def test_the_stub_rejects_what_tilt_would(tmp_path):
    """The checks above can fail: a parameter Tilt does not have is an error, as in Tilt."""
    bad = tmp_path / "Tiltfile"
    bad.write_text("k8s_resource('x', port_forward=['8000:8080'])\n")
    with pytest.raises(starlark.StarlarkError, match="unexpected keyword argument 'port_forward'"):
        evaluate(bad, [])
    bad.write_text("docker_build('x', '.', live_update=[sync('a')])\n")
    with pytest.raises(starlark.StarlarkError, match="remote_path"):
        evaluate(bad, [])
