"""``devenv check``: every place that repeats a ``Service(...)`` declaration, checked against it.

Each problem is one sentence that names the file to fix. Most files are generated (``devenv
generate``), so the usual fix is to run it; the checks on the rendered manifests still catch
what a hand-written patch or a hand edit broke.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import DevenvError
from ..tools import Registry, Service, _split_docstring
from .manifests import GENERATED_MARK, generated_files, image_of, leftovers, service_manifest_path
from .policy import allows

__all__ = ["Problem", "check_project", "load_services"]

GENERATE = "run `.venv/bin/devenv generate`"
_ENV_READ = re.compile(
    r"os\.(?:environ\.get|getenv)\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']|os\.environ\[\s*[\"']([A-Z][A-Z0-9_]*)[\"']"
)
_CALL = re.compile(r"\.a?call\(\s*[\"']([a-z][a-z0-9-]*)/")
_ENV_DOC = r"^\s*#?\s*{key}="
SERVICE_PORT = 8080


@dataclass(frozen=True)
class Problem:
    file: str
    message: str

    def __str__(self) -> str:
        return self.message


def package_dir(package: str, name: str) -> str:
    return f"{package}/{name.replace('-', '_')}"


def unit_test_path(package: str, name: str) -> str:
    return f"tests/unit/{package}/test_{name.replace('-', '_')}.py"


def load_services(root: Path, package: str = "services") -> tuple[list[Service], list[Problem]]:
    """The services under ``root/package``, and a problem for each that cannot be imported."""
    registry = Registry(package)
    services, problems = [], []
    for name in registry.names():
        source = f"{package_dir(package, name)}/service.py"
        try:
            services.append(registry.get(name))
        except (DevenvError, ImportError, SyntaxError) as exc:
            problems.append(Problem(source, f"{source} cannot be loaded ({type(exc).__name__}: {exc}); fix it first"))
    return services, problems


def _declarations(root: Path, package: str, services: list[Service]) -> list[Problem]:
    problems = []
    names = {s.name for s in services}
    by_port: dict[int, list[Service]] = {}
    for s in services:
        source = f"{package_dir(package, s.name)}/service.py"
        if s.port is not None:
            by_port.setdefault(s.port, []).append(s)
        for callee in s.calls:
            if callee not in names:
                problems.append(
                    Problem(
                        source,
                        f"{source}: service '{s.name}' calls '{callee}', which is no service here; fix calls=(...)",
                    )
                )
        text = (root / source).read_text() if (root / source).is_file() else ""
        for callee in sorted(set(_CALL.findall(text)) - set(s.calls)):
            problems.append(
                Problem(
                    source,
                    f"{source} calls '{callee}' through MCPClient but does not declare it: add it to calls=(...)"
                    " (its NetworkPolicy follows)",
                )
            )
        declared = set(s.secrets) | set(s.settings)
        for py in sorted((root / package_dir(package, s.name)).glob("*.py")):
            for match in _ENV_READ.finditer(py.read_text()):
                key = match[1] or match[2]
                if key not in declared:
                    shown = py.relative_to(root)
                    problems.append(
                        Problem(
                            str(shown),
                            f"{shown} reads {key} from the environment, but {source} declares it neither in"
                            " settings=(...) nor in secrets=(...); declare it",
                        )
                    )
        for tool in s.tools.values():
            if not _split_docstring(inspect.getdoc(tool.fn) or "")[0]:
                problems.append(
                    Problem(
                        source,
                        f"{source}: tool '{s.name}/{tool.name}' has no description in its docstring;"
                        " write one (it is what clients see)",
                    )
                )
        test = unit_test_path(package, s.name)
        if not (root / test).is_file():
            problems.append(Problem(test, f"service '{s.name}' has no unit test: write {test}"))
    for port, group in sorted(by_port.items()):
        if len(group) > 1:
            files = " and ".join(f"{package_dir(package, s.name)}/service.py" for s in group)
            problems.append(
                Problem(files.split(" and ")[-1], f"{files} both use port {port}: give each service its own port")
            )
    return problems


def _env_example(root: Path, package: str, services: list[Service]) -> list[Problem]:
    path = root / ".env.example"
    text = path.read_text() if path.is_file() else ""
    problems = []
    for s in services:
        source = f"{package_dir(package, s.name)}/service.py"
        for kind, keys in (("secret", s.secrets), ("setting", s.settings)):
            for key in keys:
                if not re.search(_ENV_DOC.format(key=re.escape(key)), text, re.MULTILINE):
                    problems.append(
                        Problem(
                            ".env.example",
                            f".env.example does not document {key}, a {kind} {source} reads:"
                            f" add a commented `# {key}=` line saying what it is",
                        )
                    )
    return problems


def _generated(root: Path, package: str, services: list[Service]) -> list[Problem]:
    expected = generated_files(services, package)
    problems = []
    for path, text in expected.items():
        target = root / path
        service = next((s.name for s in services if service_manifest_path(s.name) == path), None)
        if not target.is_file():
            what = f"service '{service}' has no manifest: {path} is missing" if service else f"{path} is missing"
            problems.append(Problem(path, f"{what}; {GENERATE}"))
        elif target.read_text() != text:
            why = "edited by hand" if not target.read_text().startswith(GENERATED_MARK) else "out of date"
            problems.append(
                Problem(
                    path,
                    f"{path} is {why} (it is generated from the Service(...) declarations;"
                    f" customise with a kustomize patch instead); {GENERATE}",
                )
            )
    for path in leftovers(root, expected):
        problems.append(Problem(path, f"{path} belongs to no service under {package}/; {GENERATE} (it removes it)"))
    return problems


def _render(kubectl: str, path: Path, shown: str) -> tuple[list[dict[str, Any]] | None, Problem | None]:
    proc = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit status {proc.returncode}"
        quoted = re.search(r'err="(.*)"\s*$', reason)  # klog's `E1202 ... "command failed" err="..."`
        reason = quoted[1].replace('\\"', '"') if quoted else reason
        return None, Problem(shown, f"`kubectl kustomize {shown}` fails: {reason}; fix the file it names")
    try:
        return [d for d in yaml.safe_load_all(proc.stdout) if d], None
    except yaml.YAMLError as exc:
        return None, Problem(shown, f"`kubectl kustomize {shown}` printed YAML that does not parse: {exc}")


def _rendered(kubectl: str, root: Path, services: list[Service]) -> list[Problem]:
    problems = []
    with tempfile.TemporaryDirectory(prefix="devenv-check-") as tmp:
        # The prod overlay needs a registry; a throwaway one, so the check never depends on DEVENV_REGISTRY.
        k8s = Path(tmp) / "k8s"
        shutil.copytree(root / "k8s", k8s, ignore=shutil.ignore_patterns("generated"), symlinks=True)
        registry = k8s / "overlays" / "prod" / "registry"  # over the placeholder, or the team's choice
        registry.mkdir(parents=True, exist_ok=True)
        images = [{"name": image_of(s.name), "newName": f"registry.check.invalid/{image_of(s.name)}"} for s in services]
        (registry / "kustomization.yaml").write_text(
            yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component", "images": images})
        )
        for overlay in ("k8s/overlays/dev", "k8s/overlays/prod"):
            objects, problem = _render(kubectl, Path(tmp) / overlay, overlay)
            if problem:
                problems.append(problem)
                continue
            problems += _objects(objects, overlay, services)
    return problems


def _objects(objects: list[dict[str, Any]], overlay: str, services: list[Service]) -> list[Problem]:
    problems = []
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    k8s_services = [o for o in objects if o["kind"] == "Service"]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    labels = {}
    for s in services:
        manifest = service_manifest_path(s.name)
        deployment = deployments.get(s.name)
        if deployment is None:
            problems.append(
                Problem(manifest, f"{overlay} has no Deployment '{s.name}': {manifest} must define it; {GENERATE}")
            )
            continue
        labels[s.name] = deployment["spec"]["template"]["metadata"].get("labels", {})
        want = f"{s.name}-service"
        selecting = [
            k for k in k8s_services if (k["spec"].get("selector") or {}).get("app.kubernetes.io/name") == s.name
        ]
        names = sorted(k["metadata"]["name"] for k in selecting)
        if want not in names:
            found = f" (found {', '.join(names)})" if names else ""
            problems.append(
                Problem(
                    manifest,
                    f"{overlay}: the Kubernetes Service of '{s.name}' must be named '{want}',"
                    f" which MCPClient resolves{found}; fix {manifest}",
                )
            )
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        if overlay.endswith("dev") and image != f"{image_of(s.name)}:dev":
            problems.append(
                Problem(
                    "k8s/overlays/dev/services/kustomization.yaml",
                    f"{overlay}: '{s.name}' runs {image}, not the {image_of(s.name)}:dev that kind loads; {GENERATE}",
                )
            )
        if overlay.endswith("prod") and not image.startswith("registry.check.invalid/"):
            problems.append(
                Problem(
                    "k8s/overlays/prod/kustomization.yaml",
                    f"{overlay}: '{s.name}' runs {image}, not an image from DEVENV_REGISTRY (scripts/set-registry.sh)",
                )
            )
    for s in services:
        for callee in s.calls:
            if (
                s.name in labels
                and callee in labels
                and not allows(policies, labels[s.name], labels[callee], SERVICE_PORT)
            ):
                problems.append(
                    Problem(
                        service_manifest_path(s.name),
                        f"{overlay}: no NetworkPolicy lets '{s.name}' call '{callee}' on TCP {SERVICE_PORT}"
                        f" (declared in its calls); {GENERATE}"
                        f" ({service_manifest_path(s.name)}, {service_manifest_path(callee)})",
                    )
                )
    return problems


def check_project(root: Path, package: str = "services", *, kubectl: str | None = None) -> list[Problem]:
    """Every inconsistency between the services' declarations and the files that repeat them."""
    services, problems = load_services(root, package)
    problems += _declarations(root, package, services)
    problems += _env_example(root, package, services)
    problems += _generated(root, package, services)
    kubectl = kubectl or shutil.which("kubectl")
    if kubectl and (root / "k8s").is_dir():
        problems += _rendered(kubectl, root, services)
    return problems
