"""``devenv check`` over the real repository, and over a copy where each piece of a new service goes missing.

The copy is a real project (services/, k8s/, tests/unit/services/, .env.example) in a temporary
folder; ``devenv new``, ``devenv generate`` and ``devenv check`` run there as a user runs them,
with the real ``kubectl kustomize`` rendering the overlays.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devenv.kit.check import check_project
from devenv.kit.scaffold import free_port
from devenv.tools import Registry

ROOT = Path(__file__).resolve().parents[2]
DEVENV = [sys.executable, "-c", "from devenv.cli import main; main()"]
#: The port `devenv new` gives the next service: the first one no service here declares.
PORT = free_port(Registry("services"))


def needs_kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("DEVENV_REQUIRE_KUBECTL"):
            pytest.fail("kubectl not found on PATH, and DEVENV_REQUIRE_KUBECTL is set", pytrace=False)
        pytest.skip("kubectl not found on PATH (devenv check renders the overlays with kubectl kustomize)")
    return path


def test_the_repository_is_consistent():
    """The same check as `devenv check`, over this repository: CI fails on any inconsistency."""
    needs_kubectl()
    problems = check_project(ROOT)
    assert not problems, "\n".join(map(str, problems))


def devenv(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVENV_", "K8S_MODE"))}
    return subprocess.run([*DEVENV, *args], cwd=project, capture_output=True, text=True, env=env, timeout=300)


def make_project(tmp: Path) -> Path:
    project = tmp / "project"
    project.mkdir()
    for folder in ("services", "k8s", "scripts", "tests/unit/services"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("generated", "__pycache__"))
    for init in ("tests/__init__.py", "tests/unit/__init__.py"):
        (project / init).write_text("")
    shutil.copy2(ROOT / ".env.example", project / ".env.example")
    return project


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A project copy right after `devenv new weather`: the pristine state every case starts from."""
    needs_kubectl()
    project = make_project(tmp_path_factory.mktemp("kit"))
    proc = devenv(project, "new", "weather")
    assert proc.returncode == 0, proc.stderr
    return project


@pytest.fixture
def project(made: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(made, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def problems(project: Path) -> str:
    proc = devenv(project, "check")
    assert proc.returncode == 1, f"devenv check found nothing:\n{proc.stdout}{proc.stderr}"
    return proc.stderr


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_a_new_service_is_consistent_and_in_the_catalogue(made):
    proc = devenv(made, "check")
    assert proc.returncode == 0, proc.stderr
    assert "consistent" in proc.stdout
    catalogue = devenv(made, "services", "--json")
    assert catalogue.returncode == 0, catalogue.stderr
    assert '"name": "weather"' in catalogue.stdout and f'"port": {PORT}' in catalogue.stdout


def test_a_new_service_is_in_both_overlays_with_its_budget(made):
    kubectl = needs_kubectl()
    env = {**os.environ, "DEVENV_REGISTRY": "registry.test.invalid/team", "DEVENV_IMAGE_TAG": "t1"}
    subprocess.run(["bash", str(made / "scripts/set-registry.sh")], check=True, env=env, capture_output=True)
    rendered = {}
    for overlay in ("dev", "prod"):
        out = subprocess.run(
            [kubectl, "kustomize", str(made / "k8s/overlays" / overlay)], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        rendered[overlay] = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out.stdout) if d}
    for overlay, replicas, image in (
        ("dev", 1, "devenv/weather:dev"),
        ("prod", 2, "registry.test.invalid/team/devenv/weather:t1"),
    ):
        objects = rendered[overlay]
        assert ("Service", "weather-service") in objects, overlay
        deployment = objects[("Deployment", "weather")]
        assert deployment["spec"]["replicas"] == replicas, overlay
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image, overlay
    assert ("PodDisruptionBudget", "weather") in rendered["prod"]
    assert ("PodDisruptionBudget", "weather") not in rendered["dev"]


def test_the_new_unit_test_passes(made):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/services/test_weather.py"],
        cwd=made,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


# Each piece of the new service removed or broken, and the sentence `devenv check` must say.
CASES = {
    "manifest": (
        lambda p: (p / "k8s/base/services/weather.yaml").unlink(),
        "service 'weather' has no manifest: k8s/base/services/weather.yaml is missing",
    ),
    "base list entry": (
        lambda p: edit(p / "k8s/base/services/kustomization.yaml", "- weather.yaml\n", ""),
        "k8s/base/services/kustomization.yaml is out of date",
    ),
    "dev overlay entry": (
        lambda p: edit(
            p / "k8s/overlays/dev/services/kustomization.yaml", "- name: devenv/weather\n  newTag: dev\n", ""
        ),
        "'weather' runs devenv/weather, not the devenv/weather:dev that kind loads",
    ),
    "prod replicas entry": (
        lambda p: edit(p / "k8s/overlays/prod/services/kustomization.yaml", "- name: weather\n  count: 2\n", ""),
        "k8s/overlays/prod/services/kustomization.yaml is out of date",
    ),
    "disruption budget": (
        lambda p: edit(p / "k8s/overlays/prod/services/pdb.yaml", "  name: weather\n", "  name: weather-renamed\n"),
        "k8s/overlays/prod/services/pdb.yaml is out of date",
    ),
    "kubernetes service name": (
        lambda p: edit(p / "k8s/base/services/weather.yaml", "name: weather-service", "name: weather-svc"),
        "the Kubernetes Service of 'weather' must be named 'weather-service', which MCPClient resolves"
        " (found weather-svc)",
    ),
    "unit test": (
        lambda p: (p / "tests/unit/services/test_weather.py").unlink(),
        "service 'weather' has no unit test: write tests/unit/services/test_weather.py",
    ),
    "tool docstring": (
        lambda p: edit(p / "services/weather/service.py", '    """Greet someone by name.', '    """'),
        "tool 'weather/greet' has no description in its docstring",
    ),
    "call policy": (
        lambda p: edit(
            p / "services/weather/service.py", f"    port={PORT},", f'    port={PORT},\n    calls=("jd-classifier",),'
        ),
        "no NetworkPolicy lets 'weather' call 'jd-classifier' on TCP 8080",
    ),
    "undeclared call": (
        lambda p: edit(
            p / "services/weather/service.py",
            '    return f"Hello',
            '    MCPClient().call("notifications/notify", {})\n    return f"Hello',
        ),
        "services/weather/service.py calls 'notifications' through MCPClient but does not declare it",
    ),
    "undocumented secret": (
        lambda p: edit(
            p / "services/weather/service.py",
            f"    port={PORT},",
            f'    port={PORT},\n    secrets=("WEATHER_API_KEY",),',
        ),
        ".env.example does not document WEATHER_API_KEY, a secret services/weather/service.py reads",
    ),
    "undeclared setting": (
        lambda p: edit(
            p / "services/weather/service.py",
            '    return f"Hello',
            '    os.environ.get("WEATHER_UNITS")\n    return f"Hello',
        ),
        "services/weather/service.py reads WEATHER_UNITS from the environment, but services/weather/service.py"
        " declares it neither in settings=(...) nor in secrets=(...)",
    ),
    "port clash": (
        lambda p: edit(p / "services/weather/service.py", f"port={PORT}", "port=8101"),
        "services/jd_classifier/service.py and services/weather/service.py both use port 8101",
    ),
    "broken manifest": (
        lambda p: (p / "k8s/base/kustomization.yaml").write_text("resources: [\n"),
        "`kubectl kustomize k8s/overlays/dev` fails: ",
    ),
    "leftover manifest": (
        lambda p: (shutil.rmtree(p / "services/weather"), (p / "tests/unit/services/test_weather.py").unlink()),
        "k8s/base/services/weather.yaml belongs to no service under services/",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_check_names_the_missing_piece(project, case):
    breaks, sentence = CASES[case]
    breaks(project)
    assert sentence in problems(project)


def test_generate_repairs_what_it_owns(project):
    (project / "k8s/base/services/weather.yaml").unlink()
    edit(project / "k8s/overlays/dev/services/kustomization.yaml", "- name: devenv/weather\n  newTag: dev\n", "")
    proc = devenv(project, "generate")
    assert proc.returncode == 0, proc.stderr
    assert "k8s/base/services/weather.yaml" in proc.stdout
    assert devenv(project, "check").returncode == 0
    assert "up to date" in devenv(project, "generate").stdout  # reproducible: a second run writes nothing


def test_without_kubectl_check_says_what_it_skipped(made):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVENV_")}
    env["PATH"] = str(Path(sys.executable).parent)  # the venv's bin: no kubectl there
    proc = subprocess.run([*DEVENV, "check"], cwd=made, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "kubectl not found on PATH, so the rendered overlays were not checked" in proc.stderr


def test_generate_removes_the_manifest_of_a_removed_service(project):
    shutil.rmtree(project / "services/weather")
    (project / "tests/unit/services/test_weather.py").unlink()
    proc = devenv(project, "generate")
    assert proc.returncode == 0, proc.stderr
    assert not (project / "k8s/base/services/weather.yaml").exists()
    assert "weather" not in (project / "k8s/overlays/dev/services/kustomization.yaml").read_text()
    assert devenv(project, "check").returncode == 0
