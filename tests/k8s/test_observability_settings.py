"""Observability settings in the overlays: the namespace Prometheus is admitted from, the OTLP endpoint.

The overlays are rendered by the real ``kubectl kustomize``: as shipped, and from a copy whose
``prometheus-namespace`` was changed the way the README says.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devenv.kit.check import check_project
from tests.kit.test_check import make_project

from .conftest import of_kind, render, with_registry
from .test_manifests import SERVICES, Peer, allowed, workload_peers

SETTING = "prometheus-namespace=monitoring"


def _prometheus(namespace: str) -> Peer:
    return Peer("prometheus", {"app.kubernetes.io/name": "prometheus"}, namespace)


def _scrapable(objects: list[dict], namespace: str) -> set[str]:
    """The workloads a Prometheus Pod in ``namespace`` may reach on the metrics port."""
    policies = of_kind(objects, "NetworkPolicy")
    return {
        name for name, peer in workload_peers(objects).items() if allowed(policies, _prometheus(namespace), peer, 8080)
    }


def _set_namespace(k8s: Path, overlay: str, namespace: str) -> Path:
    kustomization = k8s / "overlays" / overlay / "kustomization.yaml"
    text = kustomization.read_text()
    assert text.count(SETTING) == 1, f"{kustomization} should set {SETTING} once"
    kustomization.write_text(text.replace(SETTING, f"prometheus-namespace={namespace}"))
    return k8s / "overlays" / overlay


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_as_shipped_prometheus_is_admitted_from_monitoring_only(rendered, overlay):
    objects = rendered[overlay]
    assert _scrapable(objects, "monitoring") == set(SERVICES)
    assert _scrapable(objects, "observability") == set()
    # the setting is for kustomize only: no ConfigMap of that name reaches the cluster
    assert "devenv-monitoring" not in {o["metadata"]["name"] for o in of_kind(objects, "ConfigMap")}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_overlays_setting_moves_the_admitted_namespace(kubectl, tmp_path, overlay):
    k8s = with_registry(tmp_path)
    objects = render(_set_namespace(k8s, overlay, "observability"))
    assert _scrapable(objects, "observability") == set(SERVICES)
    assert _scrapable(objects, "monitoring") == set(), "the old namespace is no longer admitted"
    # only the Prometheus policy changed: the other policies still admit nobody from outside
    assert _scrapable(objects, "default") == set()


def test_devenv_check_names_a_setting_that_is_not_a_namespace_name(kubectl, tmp_path):
    project = make_project(tmp_path)  # the same copy of the project tests/kit checks
    assert [str(p) for p in check_project(project, kubectl=kubectl) if "namespace" in p.message] == []
    _set_namespace(project / "k8s", "dev", "Monitoring_NS")
    problems = [p for p in check_project(project, kubectl=kubectl) if "Monitoring_NS" in p.message]
    assert len(problems) == 1, problems
    assert problems[0].file == "k8s/overlays/dev/kustomization.yaml"
    assert re.search(r"mcp-services-ingress-prometheus.*not a namespace name", problems[0].message), problems[0]


def test_devenv_check_names_an_otlp_endpoint_tracing_would_refuse(tmp_path):
    project = make_project(tmp_path)
    kustomization = project / "k8s" / "overlays" / "dev" / "kustomization.yaml"
    text = kustomization.read_text()
    assert "      - DEVENV_LOG_LEVEL=DEBUG\n" in text
    kustomization.write_text(
        text.replace(
            "      - DEVENV_LOG_LEVEL=DEBUG\n",
            "      - DEVENV_LOG_LEVEL=DEBUG\n      - OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318\n",
        )
    )
    problems = [p for p in check_project(project) if "OTEL_EXPORTER_OTLP_ENDPOINT" in p.message]
    assert len(problems) == 1, problems
    assert "'collector:4318', which is not an http(s) URL" in problems[0].message
    assert problems[0].file == "k8s/overlays/dev/kustomization.yaml"
