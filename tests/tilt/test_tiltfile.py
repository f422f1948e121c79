"""The Tiltfile as the real Tilt reads it: ``tilt alpha tiltfile-result`` (Tilt's own JSON).

No cluster exists here, so the kind target is checked by what Tilt would build, sync, deploy
and forward; the local target also runs for real (test_local_target.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .binary import ROOT
from .conftest import Result, TiltfileError

CATALOGUE = json.loads(
    subprocess.run(
        [sys.executable, "-m", "devenv.cli", "services", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
)
SERVICES = {s["name"]: s for s in CATALOGUE}

# What a clean load prints on stderr with --verbose; anything else (a warning) fails the test.
QUIET_LINES = (
    "Loading Tiltfile at:",
    "Falling back to `kubectl kustomize`",
    "Running: kubectl kustomize",
    "Successfully loaded Tiltfile",
)


def noise(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(QUIET_LINES)]


@pytest.fixture(scope="module")
def kind(evaluate) -> Result:
    return evaluate()


@pytest.fixture(scope="module")
def local(evaluate) -> Result:
    return evaluate("--", "--target=local")


# -- kind (the default target) -------------------------------------------------------------------


def test_loads_with_no_error_and_no_warning(kind, local):
    assert kind["Error"] is None and local["Error"] is None
    assert noise(kind) == [] and noise(local) == []


def test_the_warning_check_can_fail(tmp_path, tilt, tilt_env):
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: p, image: other/image}]}\n"
    (tmp_path / "Tiltfile").write_text(f"k8s_yaml(blob({pod!r}))\ndocker_build('unused/image', '.')\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    proc = subprocess.run(
        [str(tilt), "alpha", "tiltfile-result", "--verbose"], cwd=tmp_path, env={**os.environ, **tilt_env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    result = Result(json.loads(proc.stdout))
    result.stderr = proc.stderr
    assert any("unused/image" in line for line in noise(result))


def test_resources_come_from_the_catalogue(kind):
    assert kind.names() == set(SERVICES) | {"redis", "unit-tests", "uncategorized"}


def test_one_dev_image_per_service_used_by_its_deployment(kind):
    for name in SERVICES:
        manifest = kind.manifest(name)
        (image,) = manifest["ImageTargets"]
        assert image["selector"] == f"devenv/{name}"
        build = image["BuildDetails"]
        assert build["target"] == "dev" and build["context"] == str(ROOT)
        assert build["args"] == [f"SERVICE={name}"]
        (deployment,) = [o for o in kind.objects(name) if o["kind"] == "Deployment"]
        assert deployment["metadata"]["name"] == name
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"].split(":")[0] == f"devenv/{name}"


def test_base_image_is_passed_as_the_kind_target_does(evaluate):
    result = evaluate(env={"DEVENV_BASE_IMAGE": "devenv-base:bookworm"})
    for name in SERVICES:
        (image,) = result.manifest(name)["ImageTargets"]
        assert sorted(image["BuildDetails"]["args"]) == ["BASE_IMAGE=devenv-base:bookworm", f"SERVICE={name}"]


def test_live_update_syncs_code_and_rebuilds_on_dependencies(kind):
    for name in SERVICES:
        (image,) = kind.manifest(name)["ImageTargets"]
        spec = image["LiveUpdateSpec"]
        syncs = {s["localPath"]: s["containerPath"] for s in spec["syncs"]}
        assert syncs == {"devenv": "/app/devenv/", "services": "/app/services/"}
        # pyproject.toml: a full rebuild, never a pip install inside a Pod with no egress.
        assert spec["stopPaths"] == ["pyproject.toml"]
        assert not spec.get("execs")


def test_readme_edits_rebuild_nothing_but_builds_keep_it(kind):
    (watch,) = kind["WatchSettings"]["Ignores"]
    assert watch["LocalPath"] == str(ROOT) and watch["Patterns"] == ["README.md"]
    (image,) = kind.manifest("jd-classifier")["ImageTargets"]
    patterns = [p for ignore in image["BuildDetails"]["contextIgnores"] for p in ignore.get("patterns") or []]
    assert "!README.md" in patterns, "the wheel's metadata needs README.md in the build context"


def test_port_forwards_on_each_services_own_port_with_links(kind):
    for name, service in SERVICES.items():
        deploy = kind.manifest(name)["DeployTarget"]
        (forward,) = deploy["portForwardTemplateSpec"]["forwards"]
        assert (forward["localPort"], forward["containerPort"]) == (service["port"], 8080)
        links = {link["Name"]: (link["URL"]["Host"], link["URL"]["Path"]) for link in deploy["Links"]}
        assert links == {
            "docs": (f"localhost:{service['port']}", "/docs"),
            "mcp": (f"localhost:{service['port']}", "/mcp"),
        }


def test_dependencies_follow_the_call_graph(kind):
    for name, service in SERVICES.items():
        assert kind.manifest(name)["ResourceDependencies"] == ["redis", *service["calls"]]
    assert SERVICES["inbox-agent"]["calls"], "the example stack has a caller"


def test_labels_group_the_resources(kind):
    assert {name: kind.manifest(name)["Labels"] for name in [*SERVICES, "redis", "unit-tests"]} == {
        **{name: {"services": "services"} for name in SERVICES},
        "redis": {"infra": "infra"},
        "unit-tests": {"tests": "tests"},
    }


def test_volumes_are_grouped_with_their_service(kind):
    claims = {
        name: {o["metadata"]["name"] for o in kind.objects(name) if o["kind"] == "PersistentVolumeClaim"}
        for name in [*SERVICES, "uncategorized"]
    }
    assert claims.pop("uncategorized") == set()
    assert claims["file-system"] and claims["inbox-agent"]  # the vault and the unsorted inbox
    for name in claims:
        for obj in kind.objects(name):
            if obj["kind"] == "PersistentVolumeClaim":
                assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == name


def test_unit_tests_run_on_change(kind):
    tests = kind.manifest("unit-tests")["DeployTarget"]
    assert tests["UpdateCmdSpec"]["args"][-1].endswith("-m pytest tests/unit -q -p no:cacheprovider")
    assert set(tests["Deps"]) == {str(ROOT / d) for d in ("devenv", "services", "tests/unit", "pyproject.toml")}
    assert tests["AllowParallel"] is True


@pytest.mark.parametrize("venv", [True, False])
def test_the_tests_python_is_found_when_they_run(kind, tmp_path, venv):
    """The same command picks .venv/bin/python when it exists and python3 from PATH when not."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = '#!/bin/sh\necho {} "$@"\n'
    (bin_dir / "python3").write_text(fake.format("path-python3"))
    (bin_dir / "python3").chmod(0o755)
    if venv:
        (tmp_path / ".venv" / "bin").mkdir(parents=True)
        (tmp_path / ".venv" / "bin" / "python").write_text(fake.format("venv-python"))
        (tmp_path / ".venv" / "bin" / "python").chmod(0o755)
    args = kind.manifest("unit-tests")["DeployTarget"]["UpdateCmdSpec"]["args"]
    out = subprocess.run(
        args, cwd=tmp_path, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, capture_output=True, text=True, check=True
    ).stdout
    assert out.split()[0] == ("venv-python" if venv else "path-python3")
    assert out.split()[1:4] == ["-m", "pytest", "tests/unit"]


# -- selecting services --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["jd-classifier", "notifications"],  # Tilt's own way: positional names
        ["notifications", "jd-classifier", "jd-classifier"],
        ["--", "--services=jd-classifier,notifications"],
        ["--", "--services", "jd-classifier", "--services", "notifications"],
        ["--", "--services= notifications , jd-classifier,jd-classifier"],
        ["jd-classifier", "--", "--services=notifications"],
    ],
)
def test_selection_narrows_what_is_declared(evaluate, args):
    some = evaluate(*args)
    assert some.names() == {"jd-classifier", "notifications", "redis", "unit-tests", "uncategorized"}
    images = {i["selector"] for m in some["Manifests"] for i in m["ImageTargets"] or []}
    assert images == {"devenv/jd-classifier", "devenv/notifications"}
    deployed = {
        o["metadata"]["name"] for m in some["Manifests"] if m["Name"] != "unit-tests" for o in some.objects(m["Name"])
    }
    assert "inbox-agent" not in deployed and "unsorted" not in deployed and "vault" not in deployed


def test_a_caller_alone_waits_for_redis_only(evaluate):
    assert evaluate("inbox-agent").manifest("inbox-agent")["ResourceDependencies"] == ["redis"]


@pytest.mark.parametrize("args", [["jd-classifier", "nope"], ["--", "--services=jd-classifier,nope"]])
def test_an_unknown_service_fails_with_the_choices(evaluate, args):
    with pytest.raises(TiltfileError) as failed:
        evaluate(*args)
    choices = ", ".join(sorted(SERVICES))
    assert f'Error in fail: unknown service "nope"; choose from {choices}' in str(failed.value)


def test_an_unknown_target_fails_with_the_choices(evaluate):
    with pytest.raises(TiltfileError, match='unknown target "moon" in --target; choose from kind, local'):
        evaluate("--", "--target=moon")


# -- the context guard, as Tilt really applies it ------------------------------------------------


def test_a_non_local_context_is_refused(evaluate):
    with pytest.raises(TiltfileError) as refused:
        evaluate(context="prod-eu")
    assert "Refusing to run 'local' because prod-eu might be a production kube context." in str(refused.value)
    assert "allow_k8s_contexts('prod-eu')" in str(refused.value)


def test_any_kind_context_is_allowed_not_only_kind_devenv(evaluate):
    """allow_k8s_contexts('kind-devenv') adds to Tilt's own list of local clusters; it narrows nothing."""
    assert evaluate(context="kind-other")["Error"] is None


def test_the_local_target_runs_on_any_context(evaluate):
    """Nothing in it talks to Kubernetes, so a production context is no reason to refuse."""
    assert evaluate("--", "--target=local", context="prod-eu").manifest("jd-classifier")


# -- local (no cluster) ------------------------------------------------------------------------------


def test_local_target_serves_each_service_with_reload(local):
    assert local.names() == set(SERVICES) | {"unit-tests"}
    for name, service in SERVICES.items():
        manifest = local.manifest(name)
        assert manifest["ImageTargets"] is None
        serve = manifest["DeployTarget"]["ServeCmd"]
        assert serve["Argv"][:2] == ["sh", "-c"]
        assert serve["Argv"][2].endswith(
            f"-m devenv.cli serve {name} --host 127.0.0.1 --port {service['port']} --reload"
        )
        assert serve["Dir"] == str(ROOT)
        env = dict(e.split("=", 1) for e in serve["Env"])
        assert env["K8S_MODE"] == "true" and env["DEVENV_SERVICES"].split(",") == sorted(SERVICES)
        for other, declared in SERVICES.items():
            assert env["DEVENV_URL_" + other.upper().replace("-", "_")] == f"http://127.0.0.1:{declared['port']}"


def test_local_target_probes_ready_and_links_docs_and_mcp(local):
    for name, service in SERVICES.items():
        deploy = local.manifest(name)["DeployTarget"]
        probe = deploy["ReadinessProbe"]
        assert probe["httpGet"] == {"path": "/ready", "port": service["port"], "host": "127.0.0.1"}
        assert {link["Name"]: link["URL"]["Path"] for link in deploy["Links"]} == {"docs": "/docs", "mcp": "/mcp"}


def test_local_target_keeps_labels_and_dependencies(local):
    for name, service in SERVICES.items():
        manifest = local.manifest(name)
        assert manifest["Labels"] == {"services": "services"}
        assert (manifest["ResourceDependencies"] or []) == service["calls"]
    assert local.manifest("unit-tests")["Labels"] == {"tests": "tests"}


def test_local_target_selection(evaluate):
    some = evaluate("inbox-agent", "file-system", "--", "--target=local")
    assert some.names() == {"inbox-agent", "file-system", "unit-tests"}
    assert some.manifest("inbox-agent")["ResourceDependencies"] == ["file-system"]
    env = dict(e.split("=", 1) for e in some.manifest("inbox-agent")["DeployTarget"]["ServeCmd"]["Env"])
    assert env["DEVENV_SERVICES"] == "file-system,inbox-agent"


def test_unit_tests_can_be_left_out(evaluate):
    assert "unit-tests" not in evaluate("--", "--target=local", "--unit-tests=false").names()
    assert "unit-tests" not in evaluate("--", "--unit-tests=false").names()


def test_a_service_without_a_port_fails_by_name(evaluate, tmp_path):
    package = tmp_path / "portless"
    (package / "quiet").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "quiet" / "__init__.py").write_text("")
    (package / "quiet" / "service.py").write_text(
        "from devenv import Service\n\nservice = Service('quiet')\n\n\n"
        "@service.tool\ndef hello() -> str:\n    return 'hi'\n"
    )
    env = {"DEVENV_SERVICES_PACKAGE": "portless", "PYTHONPATH": str(tmp_path)}
    with pytest.raises(TiltfileError, match='service "quiet" declares no port: give it Service'):
        evaluate("--", "--target=local", env=env)
