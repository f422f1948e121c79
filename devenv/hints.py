"""What to do when a service cannot be reached: the text ``ServiceUnavailable`` carries.

The HTTP transport asks :func:`first_contact_failure` when its very first connection to a
service fails. A connection that is refused, or a name that does not resolve, before this
client ever reached the service is a stack that is not there (never started, stopped, or a
stale ``eval $(devenv env)``): waiting cannot fix it, so the call fails at once with a hint.
Once a service has answered, the same errors are a restart in progress and the transport
keeps retrying as before (the reloader and Kubernetes keep the gap short).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["CRASHED_HEADER", "first_contact_failure"]

#: Set by ``devenv.reloader.crash_app`` on its 503s: the service's import failed; retrying cannot help.
CRASHED_HEADER = "x-devenv-crashed"

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_REFUSED = {errno.ECONNREFUSED, errno.ECONNRESET}


def _os_errors(exc: BaseException | None) -> list[OSError]:
    """Every OSError behind an httpx error: causes, contexts and the members of exception groups
    (anyio's "All connection attempts failed" carries one error per address it tried)."""
    found, stack, seen = [], [exc], set()
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError):
            found.append(current)
        stack += [current.__cause__, current.__context__, *getattr(current, "exceptions", ())]
    return found


def first_contact_failure(
    service: str, url: str, exc: BaseException, environ: Mapping[str, str] | None = None
) -> str | None:
    """The reason to fail with at once (it says what to do), or None if this error may pass by retrying."""
    from .discovery import env_var_for

    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    where = f"{host}:{port}" if port else host
    var = env_var_for(service)
    causes = _os_errors(exc)
    text = str(exc)
    unresolved = (
        any(isinstance(c, socket.gaierror) for c in causes)
        or "Name or service not known" in text
        or ("name resolution" in text.lower())
    )
    if unresolved:
        return (
            f"the name {host!r} does not resolve. K8S_MODE=true means the services run in a Kubernetes "
            f"cluster and this runs in it too; {host!r} is the in-cluster Service name. Outside the cluster, "
            f"start a stack with `devenv up -d` and point this shell at it with `eval $(devenv env)` "
            f"(or set {var}), or unset K8S_MODE to run the tools in-process"
        )
    refused = any(c.errno in _REFUSED for c in causes) or "Connection refused" in text
    if not refused:
        return None
    if host in _LOOPBACK:
        origin = f"{var}={env[var]}" if env.get(var) else url
        return (
            f"nothing listens at {where}. A local stack was expected there ({origin}, as `eval $(devenv env)` "
            f"sets it): start it with `devenv up` (or `devenv up -d`), check it with `devenv status`, and if "
            f"its ports changed run `eval $(devenv env)` again"
        )
    return (
        f"nothing listens at {where} (connection refused). Check that {service!r} runs there "
        f"(`devenv status`, or `kubectl get pods` in the cluster) and that {var} or DEVENV_URL_TEMPLATE "
        f"points at it (`eval $(devenv env)` for a stack started with `devenv up`)"
    )
