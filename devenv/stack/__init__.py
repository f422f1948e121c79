"""Targets that bring a stack of services up and down: ``local``, ``docker`` and ``kind``.

Every target implements ``Stack``: ``up()``, ``down()``, ``endpoints()``, ``status()``,
``logs()``. ``get_stack("local", ...)`` picks one by name, as ``devenv up --target`` does.
"""

from __future__ import annotations

from typing import Any

from .base import ServiceStatus, Stack, StackError, TargetUnavailable, env_exports
from .docker import DockerStack
from .kind import KindStack
from .local import LocalStack

__all__ = [
    "TARGETS",
    "DockerStack",
    "KindStack",
    "LocalStack",
    "ServiceStatus",
    "Stack",
    "StackError",
    "TargetUnavailable",
    "env_exports",
    "get_stack",
]

TARGETS: dict[str, type[Stack]] = {"local": LocalStack, "docker": DockerStack, "kind": KindStack}


def get_stack(target: str = "local", **options: Any) -> Stack:
    """The stack of ``target``; ``options`` go to its constructor (e.g. ``state_dir``, ``reload``)."""
    cls = TARGETS.get(target)
    if cls is None:
        raise StackError(f"unknown target {target!r}; available: {', '.join(TARGETS)}")
    return cls(**options)
