"""What every stack target shares: the ``Stack`` contract, a service's status, ``StackError``.

A target brings a set of services up somewhere (local processes, containers, a kind
cluster), says where each one answers, and takes them down again, from this process or
from another one (``devenv down`` in a second terminal). Importing this module is cheap.
"""

from __future__ import annotations

import abc
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

from ..errors import DevenvError

__all__ = ["HEALTHY", "STOPPED", "ServiceStatus", "Stack", "StackError", "TargetUnavailable", "env_exports"]

HEALTHY = "healthy"
STOPPED = "stopped"


class StackError(DevenvError):
    """A stack could not be brought up, found or taken down; the message says which service and why."""


class TargetUnavailable(StackError):
    """The target cannot run on this machine: a binary or an engine is missing (``kind`` not found)."""


@dataclass(frozen=True)
class ServiceStatus:
    """One service of a stack. ``health`` is ``healthy``, ``stopped``, ``unreachable`` or ``unhealthy: ...``."""

    name: str
    url: str
    pid: int | None
    health: str
    port: int | None = None
    log: str | None = None

    @property
    def running(self) -> bool:
        return self.health != STOPPED

    @property
    def healthy(self) -> bool:
        return self.health == HEALTHY


class Stack(abc.ABC):
    """The contract of a target. ``with stack:`` takes the stack down on exit, even after an error."""

    target: str

    @abc.abstractmethod
    def up(self, services: list[str] | None = None, wait: bool = True, timeout: float = 30) -> dict[str, str]:
        """Start ``services`` (default: every service of the registry); return ``endpoints()``.

        With ``wait``, return only once each one answers ``GET /health``, else raise
        ``StackError`` (and stop what was started).
        """

    @abc.abstractmethod
    def down(self) -> list[str]:
        """Stop the stack and forget it; return the names of the services that were running."""

    @abc.abstractmethod
    def endpoints(self) -> dict[str, str]:
        """Service name → base URL, e.g. ``{"jd-classifier": "http://127.0.0.1:8101"}``; empty if no stack."""

    @abc.abstractmethod
    def status(self) -> list[ServiceStatus]:
        """Each recorded service with its pid and health (probed now); empty if no stack."""

    @abc.abstractmethod
    def logs(self, service: str) -> str:
        """What the service wrote to stdout and stderr."""

    def is_running(self) -> bool:
        return any(s.running for s in self.status())

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()


def env_exports(endpoints: Mapping[str, str]) -> list[str]:
    """Shell ``export`` lines that point a remote-mode client at ``endpoints``: ``eval $(devenv env)``."""
    from ..discovery import env_var_for  # imports the registry; kept off the CLI's start-up path

    lines = ["export K8S_MODE=true", f"export DEVENV_SERVICES={shlex.quote(','.join(sorted(endpoints)))}"]
    lines += [f"export {env_var_for(name)}={shlex.quote(url)}" for name, url in sorted(endpoints.items())]
    return lines
