"""Targets that bring a stack of services up and down: ``local`` now; ``docker`` and ``kind`` later.

Every target implements ``Stack``: ``up()``, ``down()``, ``endpoints()``, ``status()``,
``logs()``. ``get_stack("local", ...)`` picks one by name, as ``devenv up --target`` does.
"""

from __future__ import annotations

from typing import Any

from .base import ServiceStatus, Stack, StackError, TargetUnavailable, env_exports
from .local import LocalStack

__all__ = ["TARGETS", "LocalStack", "ServiceStatus", "Stack", "StackError", "TargetUnavailable", "env_exports", "get_stack"]

TARGETS: dict[str, type[Stack]] = {"local": LocalStack}
PLANNED_TARGETS = ("docker", "kind")


def get_stack(target: str = "local", **options: Any) -> Stack:
    """The stack of ``target``; ``options`` go to its constructor (e.g. ``state_dir``, ``reload``)."""
    cls = TARGETS.get(target)
    if cls is None:
        later = " (not available yet)" if target in PLANNED_TARGETS else ""
        raise StackError(f"unknown target {target!r}{later}; available: {', '.join(TARGETS)}")
    return cls(**options)
