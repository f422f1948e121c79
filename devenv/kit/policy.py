"""Whether rendered NetworkPolicies let one Pod reach another: what ``devenv check`` asks of each declared call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["allows", "selects"]


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a Pod's labels; ``{}`` selects all."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _port_ok(rule: Mapping[str, Any], port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") in (port, None) and p.get("protocol", "TCP") == "TCP" for p in ports)


def _peer_ok(peers: list[Mapping[str, Any]] | None, labels: Mapping[str, str]) -> bool:
    if peers is None:
        return True  # no from/to: every peer
    # Same-namespace peers only: a namespaceSelector peer names other namespaces.
    return any(
        "namespaceSelector" not in p and "ipBlock" not in p and selects(p.get("podSelector"), labels) for p in peers
    )


def _direction(
    policies: list[Mapping[str, Any]], pod: Mapping[str, str], peer: Mapping[str, str], port: int, kind: str
):
    field, peers_key = ("egress", "to") if kind == "Egress" else ("ingress", "from")
    applying = [p for p in policies if selects(p["spec"].get("podSelector"), pod) and kind in _types(p)]
    if not applying:
        return True  # no policy isolates the Pod in this direction
    return any(
        _peer_ok(rule.get(peers_key), peer) and _port_ok(rule, port)
        for policy in applying
        for rule in policy["spec"].get(field) or []
    )


def _types(policy: Mapping[str, Any]) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))


def allows(policies: list[Mapping[str, Any]], source: Mapping[str, str], target: Mapping[str, str], port: int) -> bool:
    """Whether TCP from a Pod labelled ``source`` to one labelled ``target`` (same namespace) gets through."""
    return _direction(policies, source, target, port, "Egress") and _direction(
        policies, target, source, port, "Ingress"
    )
