"""The monitoring component, added to the dev overlay and rendered by the real ``kubectl kustomize``."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from tests.k8s.conftest import K8S, by_name, of_kind, render

MONITORING = K8S / "components" / "monitoring"


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    overlay = tmp_path_factory.mktemp("overlay")
    relative = {
        name: os.path.relpath(path, overlay) for name, path in (("dev", K8S / "overlays" / "dev"), ("mon", MONITORING))
    }
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "devenv",  # as in the overlays, which set it for everything they render
                "resources": [relative["dev"]],
                "components": [relative["mon"]],
            }
        )
    )
    return render(overlay)


def test_the_servicemonitor_selects_every_mcp_service_by_its_http_port(objects):
    (monitor,) = of_kind(objects, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "devenv"
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    selected = [s for s in of_kind(objects, "Service") if selector.items() <= s["metadata"]["labels"].items()]
    names = {s["metadata"]["name"] for s in selected}
    deployed = {
        d["metadata"]["name"] for d in of_kind(objects, "Deployment")
    }  # the MCP services (Redis is a StatefulSet)
    assert "jd-classifier" in deployed and names == {f"{n}-service" for n in deployed}
    for service in selected:
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # the rules select job="devenv"; the relabeling is what makes it so under the Operator
    assert {"action": "replace", "targetLabel": "job", "replacement": "devenv"} in endpoint["relabelings"]


def test_the_prometheusrule_is_the_plain_rules_file(objects):
    rule = by_name(objects, "PrometheusRule")["devenv"]
    assert rule["metadata"]["namespace"] == "devenv"
    assert rule["spec"]["groups"] == yaml.safe_load((MONITORING / "rules.yml").read_text())["groups"]


def test_the_dashboard_ships_as_a_configmap_for_grafanas_sidecar(objects):
    config = by_name(objects, "ConfigMap")["devenv-grafana-dashboard"]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["devenv-dashboard.json"])
    assert dashboard == json.loads((MONITORING / "devenv-dashboard.json").read_text())
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for needed in ("calls per second", "error", "p50", "cache hit", "in flight", "rejected", "memory", "restarts"):
        assert needed in titles, needed
