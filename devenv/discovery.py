"""Service name → base URL, for remote mode.

In order: ``$DEVENV_URL_<NAME>`` (``jd-classifier`` → ``DEVENV_URL_JD_CLASSIFIER``), then
``$DEVENV_URL_TEMPLATE`` with ``{service}``, ``{package}`` and ``{port}`` filled in, then
the in-cluster default ``http://<service>-service:8080`` (the Kubernetes Service name).

``$DEVENV_SERVICES`` (comma-separated), when set, is the whole catalogue: other names are
``ServiceNotFound`` up front, as in-process, instead of a DNS failure later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from .errors import ConfigError, ServiceNotFound
from .tools import Registry, default_registry

__all__ = ["env_var_for", "service_url"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def env_var_for(service: str) -> str:
    return "DEVENV_URL_" + service.upper().replace("-", "_")


def service_url(service: str, environ: Mapping[str, str] | None = None, registry: Registry | None = None) -> str:
    if not _NAME.match(service):
        raise ServiceNotFound(service)
    env = os.environ if environ is None else environ
    catalogue = [n.strip() for n in env.get("DEVENV_SERVICES", "").split(",") if n.strip()]
    if catalogue and service not in catalogue:
        raise ServiceNotFound(service, sorted(catalogue))
    explicit = env.get(env_var_for(service))
    if explicit:
        return explicit.rstrip("/")
    template = env.get("DEVENV_URL_TEMPLATE")
    if not template:
        return f"http://{service}-service:8080"
    fields: dict[str, object] = {"service": service, "package": service.replace("-", "_")}
    if "{port}" in template:
        port = (registry or default_registry()).get(service).port  # unknown name → ServiceNotFound
        if port is None:
            raise ConfigError(f"DEVENV_URL_TEMPLATE uses {{port}} but service {service!r} declares no port")
        fields["port"] = port
    try:
        return template.format(**fields).rstrip("/")
    except (AttributeError, KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"DEVENV_URL_TEMPLATE={template!r} is invalid: {exc!r}") from None
