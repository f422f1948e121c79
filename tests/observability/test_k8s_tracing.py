"""The tracing component: off unless an overlay adds it; on, every service gets the OTel variables
and may reach a collector's OTLP/HTTP port, nothing more. Rendered by the real ``kubectl kustomize``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from devenv import tracing
from tests.k8s.conftest import K8S, by_name, of_kind, render
from tests.k8s.test_manifests import SERVICES, Peer, allowed, container, deployments, workload_peers

TRACING = K8S / "components" / "tracing"
COLLECTOR = Peer("collector", {"app.kubernetes.io/name": "otel-collector"}, "observability")


def _overlay(folder: Path, *, components: list[Path], merge: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    kustomization: dict = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "devenv",  # as in the overlays, which set it for everything they render
        "resources": [os.path.relpath(K8S / "overlays" / "dev", folder)],
        "components": [os.path.relpath(c, folder) for c in components],
    }
    if merge:  # what a user writes to point the services at their own collector
        kustomization["configMapGenerator"] = [{"name": "devenv-config", "behavior": "merge", "literals": merge}]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return folder


def _config(objects: list[dict], deployment: dict) -> dict[str, str]:
    """The settings a service's container gets from devenv-config (whatever its content hash)."""
    (name,) = [r["configMapRef"]["name"] for r in container(deployment)["envFrom"] if "devenv-config" in str(r)]
    return by_name(objects, "ConfigMap")[name]["data"]


def test_off_by_default_no_otel_variable_and_no_way_to_a_collector():
    objects = render(K8S / "overlays" / "dev")
    for deployment in deployments(objects).values():
        assert not [k for k in _config(objects, deployment) if k.startswith("OTEL_")]
    policies = of_kind(objects, "NetworkPolicy")
    for name, peer in workload_peers(objects).items():
        assert not allowed(policies, peer, COLLECTOR, 4318), name


ENDPOINT = "http://tempo.tracing.svc:4318"


def test_switched_on_every_service_exports_to_the_collector_and_says_which_pod_it_is(tmp_path):
    merge = [f"OTEL_EXPORTER_OTLP_ENDPOINT={ENDPOINT}"]
    objects = render(_overlay(tmp_path / "traced", components=[TRACING], merge=merge))
    for deployment in deployments(objects).values():
        config = _config(objects, deployment)
        assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == ENDPOINT  # the overlay's collector
        assert config["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        env = {e["name"]: e for e in container(deployment)["env"]}
        assert env["K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert "k8s.pod.name=$(K8S_POD_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
        assert list(env).index("K8S_POD_NAME") < list(env).index("OTEL_RESOURCE_ATTRIBUTES")  # $(...) needs order
    assert tracing._endpoint_problem(ENDPOINT) is None  # what devenv.tracing accepts at start-up
    policies = of_kind(objects, "NetworkPolicy")
    for name, peer in workload_peers(objects).items():
        assert allowed(policies, peer, COLLECTOR, 4318) is (name in SERVICES), name
        assert not allowed(policies, peer, COLLECTOR, 4317), "only OTLP/HTTP, the protocol devenv speaks"
        assert not allowed(policies, peer, COLLECTOR, 8080), name


def test_the_component_alone_names_no_collector_so_nothing_exports(tmp_path):
    objects = render(_overlay(tmp_path / "half", components=[TRACING]))
    for deployment in deployments(objects).values():
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in _config(objects, deployment)


@pytest.mark.parametrize("extra", ["otel"])
def test_the_images_install_the_extra_the_docker_target_fetches_wheels_for(extra):
    """The Dockerfile's EXTRAS default and the docker target's IMAGE_EXTRAS name the same groups."""
    import re
    import tomllib

    from devenv.stack.docker import IMAGE_EXTRAS

    dockerfile = (K8S.parent / "Dockerfile").read_text()
    (default,) = re.findall(r"^ARG EXTRAS=(\S*)$", dockerfile, re.MULTILINE)
    assert tuple(default.split(",")) == IMAGE_EXTRAS
    optional = tomllib.loads((K8S.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extra in IMAGE_EXTRAS and optional[extra]
