"""The kustomize manifests: they render, validate against the official schemas, and say what the issue asks.

Rendered with the real ``kubectl kustomize``; validated offline with kubernetes-validate's
strict schemas (unknown fields are errors). No cluster is involved, so none of this shows
that the objects run; it shows that an API server of that version would accept them and
that they are wired together (names, labels, ports, references) as the services expect.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, all_versions
from packaging.version import Version

from devenv.discovery import service_url
from devenv.tools import Registry

from .conftest import NAMESPACE, OVERLAYS, ROOT, by_name, of_kind

# The oldest version the manifests must work on (the issue: 1.33 or newer), and the newest
# schemas kubernetes-validate ships, so that a field removed since 1.33 is caught as well.
MIN_KUBERNETES = "1.33"
LATEST_KUBERNETES = ".".join(sorted(all_versions(), key=Version)[-1].split(".")[:2])
VERSIONS = sorted({MIN_KUBERNETES, LATEST_KUBERNETES}, key=Version)

SERVICES = Registry("services").names()
CONFIG_SERVICE_NAME = "app.kubernetes.io/name"
EXTERNAL_REFERENCES = {"Secret": {"devenv-secrets", "devenv-mcp-tls"}, "ConfigMap": {"devenv-env"}}


def calls_made_by(service: str) -> set[str]:
    """The services ``service`` calls through MCPClient, read from its source (``mcp.call("x/tool", ...)``)."""
    source = (ROOT / "services" / service.replace("-", "_") / "service.py").read_text()
    return set(re.findall(r"\.a?call\(\s*\"([a-z][a-z0-9-]*)/", source))


def deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return by_name(objects, "Deployment")


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']}: one container expected"
    return containers[0]


# -- rendering and schemas ---------------------------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_each_overlay_renders(rendered, overlay):
    objects = rendered[overlay]
    assert objects, f"{overlay} renders nothing"
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "Deployment", "Service", "StatefulSet", "ConfigMap", "NetworkPolicy"} <= kinds


def test_the_schema_versions_are_1_33_or_newer():
    assert all(Version(v) >= Version("1.33") for v in VERSIONS)
    assert MIN_KUBERNETES in VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_every_object_validates_strictly(rendered, overlay, version):
    problems = []
    for obj in rendered[overlay]:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            validated = kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except SchemaNotFoundError as exc:  # no schema is a failure, never a silent pass
            problems.append(f"{name}: {exc.message}")
        else:
            assert validated == version
    assert not problems, f"{overlay} against Kubernetes {version}:\n" + "\n".join(problems)


def test_strict_validation_rejects_a_misspelt_field(rendered):
    """The check above can fail: an unknown field (a typo) is an error in strict mode."""
    deployment = copy.deepcopy(deployments(rendered["dev"])["jd-classifier"])
    probe = container(deployment).pop("readinessProbe")
    container(deployment)["readynessProbe"] = probe
    with pytest.raises(kubernetes_validate.ValidationError, match="readynessProbe"):
        kubernetes_validate.validate(deployment, MIN_KUBERNETES, strict=True)


# -- every Deployment ----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_one_deployment_and_service_per_service_and_no_other(rendered, overlay):
    objects = rendered[overlay]
    mcp = {o["metadata"]["name"] for o in of_kind(objects, "Deployment")}
    assert mcp == set(SERVICES)
    services = by_name(objects, "Service")
    for name in SERVICES:
        assert f"{name}-service" in services


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_deployments_roll_safely_and_probe_health(rendered, overlay):
    for name, deployment in deployments(rendered[overlay]).items():
        strategy = deployment["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate", name
        assert strategy["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}, name
        c = container(deployment)
        assert c["readinessProbe"]["httpGet"]["path"] == "/ready", name
        assert c["livenessProbe"]["httpGet"]["path"] == "/health", name
        assert c["startupProbe"]["httpGet"]["path"] == "/health", name
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert ports[c[probe]["httpGet"]["port"]] == 8080, f"{name} {probe} probes another port"


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_deployments_have_requests_and_limits(rendered, overlay):
    for name, deployment in deployments(rendered[overlay]).items():
        resources = container(deployment)["resources"]
        for bound in ("requests", "limits"):
            assert set(resources[bound]) >= {"cpu", "memory"}, f"{name}: {bound}"


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_deployments_run_locked_down(rendered, overlay):
    for name, deployment in deployments(rendered[overlay]).items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 1001, f"{name}: the image's user is uid 1001"
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        sc = container(deployment)["securityContext"]
        assert sc["runAsNonRoot"] is True, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"] == {"drop": ["ALL"]}, name
        assert "privileged" not in sc or sc["privileged"] is False, name
        mounts = {m["mountPath"] for m in container(deployment)["volumeMounts"]}
        assert "/tmp" in mounts, f"{name}: a read-only root filesystem needs a writable /tmp"


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_pods_are_scraped_by_prometheus(rendered, overlay):
    for name, deployment in deployments(rendered[overlay]).items():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == "8080", name
        assert annotations["prometheus.io/path"] == "/metrics", name


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_env_comes_from_configmaps_and_secrets_only_as_declared_files(rendered, overlay):
    objects = rendered[overlay]
    configmaps = by_name(objects, "ConfigMap")
    registry = Registry("services")
    for name, deployment in deployments(objects).items():
        c = container(deployment)
        config_refs = [s["configMapRef"]["name"] for s in c["envFrom"] if "configMapRef" in s]
        generated = [ref for ref in config_refs if ref.startswith("devenv-config-")]
        assert generated and generated[0] in configmaps, f"{name}: the generated devenv-config is not referenced"
        assert not [s for s in c["envFrom"] if "secretRef" in s], f"{name}: the whole Secret must not become env"
        assert not [e for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})], name
        # The secrets: one projected volume of exactly devenv's own (Redis's password, the requestState
        # secret, the auth token if the Secret holds one) and the declared keys, as files.
        volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "secrets")
        keys = [i["key"] for src in volume["projected"]["sources"] for i in src["secret"]["items"]]
        own = ["REDIS_PASSWORD", "DEVENV_STATE_SECRET", "DEVENV_AUTH_TOKEN"]
        assert sorted(keys) == sorted([*own, *registry.get(name).secrets]), name
        assert {m["mountPath"] for m in c["volumeMounts"] if m["name"] == "secrets"} == {"/etc/devenv/secrets"}
        config = configmaps[generated[0]]["data"]
        assert config["REDIS_URL"] == "redis://redis-service:6379/0", "no password in the URL"
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["REDIS_PASSWORD_FILE"] == "/etc/devenv/secrets/REDIS_PASSWORD", name
        assert {k for k in env if k.endswith("_FILE")} >= {f"{k}_FILE" for k in registry.get(name).secrets}, name


def test_redis_password_never_on_a_command_line_or_in_env(rendered):
    redis = by_name(rendered["base"], "StatefulSet")["redis"]
    c = container(redis)
    assert "REDIS_PASSWORD" not in " ".join(c.get("args", [])), "a command line is visible in ps"
    assert "$(REDIS_PASSWORD)" not in " ".join(c["command"])
    assert not c.get("env"), "the password must come from the mounted file, not the environment"
    assert "requirepass $(cat /etc/redis-secret/REDIS_PASSWORD)" in c["command"][-1]
    assert c["command"][-1].lstrip().startswith("exec redis-server -"), "redis-server stays PID 1 and reads stdin"
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/redis-secret")
    volume = next(v for v in redis["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "devenv-secrets"


def test_replicas_one_in_dev_two_in_prod(rendered):
    for name, deployment in deployments(rendered["dev"]).items():
        assert deployment["spec"]["replicas"] == 1, name
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(rendered["prod"], "HorizontalPodAutoscaler")}
    for name, deployment in deployments(rendered["prod"]).items():
        if name in hpas:  # the HPA owns the count; a count in the manifest would reset it on each apply
            assert "replicas" not in deployment["spec"], name
            assert hpas[name]["spec"]["minReplicas"] == 2, name
        else:
            assert deployment["spec"]["replicas"] == 2, name


# -- names: what MCPClient resolves --------------------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_service_names_are_what_mcpclient_resolves(rendered, overlay):
    objects = rendered[overlay]
    services = by_name(objects, "Service")
    for name, deployment in deployments(objects).items():
        url = service_url(name, environ={})  # in the cluster: no DEVENV_URL_* and no template
        assert url == f"http://{name}-service:8080"
        svc = services[f"{name}-service"]
        assert svc["spec"]["type"] == "ClusterIP"
        assert svc["metadata"]["namespace"] == NAMESPACE
        port = svc["spec"]["ports"][0]
        assert port["port"] == 8080
        assert port["targetPort"] == "http"
        assert {p["name"] for p in container(deployment)["ports"]} == {"http"}
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items(), f"{name}-service selects no Pod of {name}"
        assert deployment["spec"]["selector"]["matchLabels"] == {CONFIG_SERVICE_NAME: name}


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_everything_is_in_the_devenv_namespace(rendered, overlay):
    namespaces = of_kind(rendered[overlay], "Namespace")
    assert [n["metadata"]["name"] for n in namespaces] == [NAMESPACE]
    assert namespaces[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in rendered[overlay]:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_every_reference_resolves(rendered, overlay):
    """ConfigMaps, PVCs and Services named anywhere exist in the render, or are the external ones."""
    objects = rendered[overlay]
    present = {kind: set(by_name(objects, kind)) for kind in ("ConfigMap", "PersistentVolumeClaim", "Service")}
    for workload in [*of_kind(objects, "Deployment"), *of_kind(objects, "StatefulSet")]:
        pod = workload["spec"]["template"]["spec"]
        wname = workload["metadata"]["name"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        for c in pod["containers"]:
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in claims, f"{wname}: no volume {mount['name']}"
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    ref = source["configMapRef"]
                    assert ref["name"] in present["ConfigMap"] or ref["name"] in EXTERNAL_REFERENCES["ConfigMap"]
                    if ref["name"] in EXTERNAL_REFERENCES["ConfigMap"]:
                        assert ref.get("optional") is True, f"{wname}: {ref['name']} comes from .env and may be absent"
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in EXTERNAL_REFERENCES["Secret"]
        for volume in volumes.values():
            if "configMap" in volume:
                assert volume["configMap"]["name"] in present["ConfigMap"], f"{wname}: {volume}"
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in present["PersistentVolumeClaim"]
            secrets = [volume["secret"]["secretName"]] if "secret" in volume else []
            secrets += [
                src["secret"]["name"] for src in volume.get("projected", {}).get("sources", []) if "secret" in src
            ]
            for name in secrets:
                assert name in EXTERNAL_REFERENCES["Secret"] | {"devenv-auth"}, f"{wname}: unknown Secret {name}"
        if workload["kind"] == "StatefulSet":
            assert workload["spec"]["serviceName"] in present["Service"]


# -- secrets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_no_secret_is_rendered_only_referenced(rendered, overlay):
    assert of_kind(rendered[overlay], "Secret") == []
    text = yaml.safe_dump_all(rendered[overlay])
    assert "devenv-secrets" in text
    for line in (ROOT / "k8s").rglob("*"):
        if line.is_file() and "generated" not in line.parts:
            assert "kind: Secret" not in line.read_text(), f"{line} holds a Secret; secrets are never committed"


def test_generated_folder_is_git_ignored():
    import subprocess

    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("k8s/generated/secret.yaml", "k8s/generated/redis-password", ".env"):
        proc = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", path])
        assert proc.returncode == 0, f"{path} is not git-ignored"


# -- Redis and the JD structure ----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_redis_is_a_statefulset_with_a_volume_and_aof(rendered, overlay):
    redis = by_name(rendered[overlay], "StatefulSet")["redis"]
    c = container(redis)
    script = c["command"][-1]
    assert "--appendonly yes" in script and "--dir /data" in script
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {claim["metadata"]["name"]: "/data", "password": "/etc/redis-secret"}
    assert c["readinessProbe"] and c["livenessProbe"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    service = by_name(rendered[overlay], "Service")["redis-service"]
    assert redis["spec"]["serviceName"] == "redis-service"
    assert service["spec"]["ports"][0]["port"] == 6379
    assert service["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_jd_structure_is_a_configmap_from_jd_yaml(rendered, overlay):
    objects = rendered[overlay]
    (structure,) = [c for name, c in by_name(objects, "ConfigMap").items() if name.startswith("jd-structure-")]
    sample = ROOT / "services" / "jd_classifier" / "jd.yaml"
    assert structure["data"]["jd.yaml"] == sample.read_text(), (
        "k8s/base/jd-structure/jd.yaml differs from services/jd_classifier/jd.yaml: copy it over "
        "(kustomize cannot read a file outside k8s/base)"
    )
    (config,) = [c for name, c in by_name(objects, "ConfigMap").items() if name.startswith("devenv-config-")]
    path = Path(config["data"]["JD_STRUCTURE_PATH"])
    for name in ("jd-classifier", "content-classifier"):  # both load the structure
        deployment = deployments(objects)[name]
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        mounted = {m["mountPath"]: volumes[m["name"]] for m in container(deployment)["volumeMounts"]}
        assert mounted[str(path.parent)]["configMap"]["name"] == structure["metadata"]["name"], name


def test_jd_structure_copy_is_a_valid_structure(tmp_path, monkeypatch):
    from services.jd_classifier.structure import load_structure

    monkeypatch.setenv("JD_STRUCTURE_PATH", str(ROOT / "k8s" / "base" / "jd-structure" / "jd.yaml"))
    assert load_structure().categories()


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_data_folders_are_mounted_where_the_config_points(rendered, overlay):
    objects = rendered[overlay]
    (config,) = [c for name, c in by_name(objects, "ConfigMap").items() if name.startswith("devenv-config-")]
    for service, key in (("file-system", "VAULT_ROOT"), ("inbox-agent", "UNSORTED_ROOT")):
        deployment = deployments(objects)[service]
        mounts = {m["mountPath"] for m in container(deployment)["volumeMounts"]}
        assert config["data"][key] in mounts, f"{service}: {key} is not on a volume"
    assert config["data"]["K8S_MODE"] == "true"
    assert set(config["data"]["DEVENV_SERVICES"].split(",")) == set(SERVICES)


# -- network policies: the call graph and nothing else ----------------------------------------------


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present, value = expr["key"] in labels, labels.get(expr["key"])
        ok = {
            "In": present and value in expr.get("values", []),
            "NotIn": not present or value not in expr.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[expr["operator"]]
        if not ok:
            return False
    return True


class Peer:
    """A Pod as NetworkPolicy sees it: its labels and its namespace's labels."""

    def __init__(self, name: str, labels: dict[str, str], namespace: str) -> None:
        self.name = name
        self.labels = labels
        self.namespace = namespace
        self.namespace_labels = {"kubernetes.io/metadata.name": namespace}


def _peer_matches(rule_peer: dict[str, Any], peer: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in rule_peer:
        return False  # no ipBlocks are used; treat them as matching no Pod
    ns_ok = (
        _selects(rule_peer["namespaceSelector"], peer.namespace_labels)
        if "namespaceSelector" in rule_peer
        else peer.namespace == policy_namespace
    )
    pod_ok = _selects(rule_peer["podSelector"], peer.labels) if "podSelector" in rule_peer else True
    return ns_ok and pod_ok


def _port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in ports)


def allowed(policies: list[dict[str, Any]], src: Peer, dst: Peer, port: int, protocol: str = "TCP") -> bool:
    """Kubernetes' rule: the source's egress and the destination's ingress must both allow it."""

    def side(direction: str, owner: Peer, other: Peer) -> bool:
        selecting = [
            p
            for p in policies
            if p["metadata"]["namespace"] == owner.namespace
            and direction in p["spec"].get("policyTypes", ["Ingress"])
            and _selects(p["spec"]["podSelector"], owner.labels)
        ]
        if not selecting:
            return True  # not isolated in this direction
        key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        return any(
            _port_matches(rule, port, protocol)
            and (not rule.get(peers) or any(_peer_matches(x, other, p["metadata"]["namespace"]) for x in rule[peers]))
            for p in selecting
            for rule in p["spec"].get(key, [])
        )

    return side("Egress", src, dst) and side("Ingress", dst, src)


def workload_peers(objects: list[dict[str, Any]]) -> dict[str, Peer]:
    return {
        w["metadata"]["name"]: Peer(w["metadata"]["name"], w["spec"]["template"]["metadata"]["labels"], NAMESPACE)
        for w in [*of_kind(objects, "Deployment"), *of_kind(objects, "StatefulSet")]
    }


def test_the_call_graph_is_read_from_the_code():
    assert calls_made_by("inbox-agent") == {"jd-classifier", "content-classifier", "file-system", "notifications"}
    assert all(calls_made_by(name) == set() for name in SERVICES if name != "inbox-agent")


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_network_policies_allow_the_call_graph_and_nothing_else(rendered, overlay):
    objects = rendered[overlay]
    policies = of_kind(objects, "NetworkPolicy")
    default_deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")]
    assert default_deny and set(default_deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    peers = workload_peers(objects)
    expected = {(caller, callee, 8080) for caller in SERVICES for callee in calls_made_by(caller)}
    expected |= {(name, "redis", 6379) for name in SERVICES}  # the shared cache (REDIS_URL in every service)
    actual = {
        (src, dst, port)
        for src in peers
        for dst in peers
        for port in (8080, 6379)
        if src != dst and allowed(policies, peers[src], peers[dst], port)
    }
    assert actual == expected


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_dns_is_allowed_to_the_services_only(rendered, overlay):
    objects = rendered[overlay]
    policies = of_kind(objects, "NetworkPolicy")
    dns = Peer("coredns", {"k8s-app": "kube-dns"}, "kube-system")
    for name, peer in workload_peers(objects).items():
        for protocol in ("UDP", "TCP"):
            assert allowed(policies, peer, dns, 53, protocol) is (name in SERVICES), (name, protocol)
    stranger = Peer("elsewhere", {"app": "x"}, "default")
    for peer in workload_peers(objects).values():
        assert not allowed(policies, peer, stranger, 443), f"{peer.name} may reach the outside"
        assert not allowed(policies, stranger, peer, 8080), f"{peer.name} is reachable from another namespace"


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_prometheus_may_scrape_the_services(rendered, overlay):
    objects = rendered[overlay]
    prometheus = Peer("prometheus", {"app.kubernetes.io/name": "prometheus"}, "monitoring")
    for name, peer in workload_peers(objects).items():
        assert allowed(of_kind(objects, "NetworkPolicy"), prometheus, peer, 8080) is (name in SERVICES), name


# -- prod only --------------------------------------------------------------------------------------------


def test_prod_has_a_disruption_budget_per_service(rendered):
    objects = rendered["prod"]
    budgets = of_kind(objects, "PodDisruptionBudget")
    for name, deployment in deployments(objects).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if _selects(b["spec"]["selector"], labels)]
        assert len(covering) == 1, f"{name}: {len(covering)} PodDisruptionBudgets"
        assert covering[0]["spec"].get("minAvailable") == 1
    for overlay in ("base", "dev"):
        assert of_kind(rendered[overlay], "PodDisruptionBudget") == []


def test_prod_autoscales_content_classifier(rendered):
    (hpa,) = of_kind(rendered["prod"], "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "content-classifier",
    }
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 2
    assert any(m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
    target = deployments(rendered["prod"])["content-classifier"]
    assert container(target)["resources"]["requests"]["cpu"], "utilization needs a CPU request"


def test_prod_ingress_exposes_mcp_of_chosen_services_and_the_policy_lets_it_in(rendered):
    objects = rendered["prod"]
    (ingress,) = of_kind(objects, "Ingress")
    services = by_name(objects, "Service")
    backends = set()
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["path"] == "/mcp"
            backend = path["backend"]["service"]
            svc = services[backend["name"]]
            assert backend["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}
            backends.add(backend["name"].removesuffix("-service"))
    assert backends and backends < set(SERVICES), "some services, not all"
    assert "file-system" not in backends, "the tool that writes files stays internal"
    assert ingress["spec"]["tls"]
    controller = Peer("controller", {"app.kubernetes.io/name": "ingress-nginx"}, "ingress-nginx")
    policies = of_kind(objects, "NetworkPolicy")
    for name, peer in workload_peers(objects).items():
        assert allowed(policies, controller, peer, 8080) is (name in backends), name
    for overlay in ("base", "dev"):
        assert of_kind(rendered[overlay], "Ingress") == []


def test_prod_volumes_can_be_shared_by_two_replicas(rendered):
    for claim in of_kind(rendered["prod"], "PersistentVolumeClaim"):
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"], claim["metadata"]["name"]


def test_the_policy_check_notices_a_missing_and_an_extra_rule(rendered):
    """The graph check above can fail: without the inbox-agent's egress rule, or with an allow-all, it differs."""
    objects = rendered["dev"]
    peers = workload_peers(objects)
    policies = of_kind(objects, "NetworkPolicy")
    agent, classifier = peers["inbox-agent"], peers["jd-classifier"]
    assert allowed(policies, agent, classifier, 8080)
    without = [p for p in policies if p["metadata"]["name"] != "inbox-agent-egress-calls"]
    assert not allowed(without, agent, classifier, 8080)
    assert not allowed(policies, classifier, agent, 8080)
    allow_all = {
        "metadata": {"name": "allow-all", "namespace": NAMESPACE},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]},
    }
    assert allowed([*policies, allow_all], classifier, agent, 8080)


def test_prod_turns_bearer_auth_on_from_a_secret_and_dev_leaves_it_off(rendered):
    for name, deployment in deployments(rendered["prod"]).items():
        env = {e["name"]: e.get("value") for e in container(deployment)["env"]}
        assert env["DEVENV_AUTH_TOKEN_FILE"] == "/var/run/secrets/devenv/token", name
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["auth-token"]["secret"]["secretName"] == "devenv-auth", name
        mounts = {m["name"]: m for m in container(deployment)["volumeMounts"]}
        assert mounts["auth-token"] == {"name": "auth-token", "mountPath": "/var/run/secrets/devenv", "readOnly": True}
    for name, deployment in deployments(rendered["dev"]).items():
        assert "DEVENV_AUTH_TOKEN_FILE" not in {e["name"] for e in container(deployment)["env"]}, name
    assert not [o for o in rendered["prod"] if o["kind"] == "Secret" and o["metadata"]["name"] == "devenv-auth"]
