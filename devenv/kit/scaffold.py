"""``devenv new NAME``: a working service in one step (package, example tool, unit test, manifests).

Everything else the cluster path needs is generated from the new ``Service(...)``, so the
only file a team then edits by hand is the service's own ``service.py``.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from ..errors import ConfigError, DevenvError
from ..tools import Registry

__all__ = ["FIRST_PORT", "new_service"]

#: Ports ``devenv up`` gives the services start here (the examples use 8101-8105).
FIRST_PORT = 8101
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

SERVICE_PY = '''"""{name}: what this service does, in one line (clients see its instructions)."""

from __future__ import annotations

from devenv import Service

service = Service(
    "{name}",
    port={port},
    instructions="Call greet with a name to get a greeting.",
    # calls=("other-service",),  # services its tools call through MCPClient (NetworkPolicies follow)
    # secrets=("{env}_API_KEY",),  # keys of devenv-secrets it reads with service.secret(...)
    # settings=("{env}_LEVEL",),  # plain settings it reads; document both in .env.example
)


@service.tool(read_only=True)
def greet(name: str = "world") -> str:
    """Greet someone by name.

    Args:
        name: Who to greet.
    """
    return f"Hello, {{name}}!"
'''

TEST_PY = '''"""{name}: its tools called in-process, as a client would."""

from __future__ import annotations

from {package}.{module}.service import service


def test_greet_greets_by_name():
    assert service.tools["greet"].run({{"name": "Ada"}}) == "Hello, Ada!"


def test_greet_has_a_default():
    assert service.tools["greet"].run({{}}) == "Hello, world!"
'''


def validate_name(name: str, registry: Registry, root: Path, package: str) -> str:
    """The package (module) name for service ``name``, or a ``ConfigError`` saying what is wrong."""
    if not _NAME.match(name):
        raise ConfigError(
            f"{name!r} is not a valid service name:"
            " use lowercase words joined by '-', like 'weather' or 'jd-classifier'"
        )
    module = name.replace("-", "_")
    if keyword.iskeyword(module):
        raise ConfigError(
            f"{name!r} cannot be a service name: {module!r} is a Python keyword,"
            f" so {package}/{module}/ could not be imported"
        )
    if name in registry.names() or (root / package / module).exists():
        raise ConfigError(f"service {name!r} exists already ({package}/{module}/); choose another name")
    return module


def free_port(registry: Registry) -> int:
    ports = set()
    for name in registry.names():
        try:
            ports.add(registry.get(name).port)
        except (DevenvError, ImportError, SyntaxError):
            continue  # a broken neighbour is `devenv check`'s to report; it must not block a new service
    port = FIRST_PORT
    while port in ports:
        port += 1
    return port


def new_service(root: Path, name: str, package: str = "services", registry: Registry | None = None) -> list[str]:
    """Write the new service's package and unit test under ``root``; the paths written. Touches nothing on error."""
    registry = registry or Registry(package)
    module = validate_name(name, registry, root, package)
    port = free_port(registry)
    if not (root / package / "__init__.py").is_file():
        raise ConfigError(
            f"{root / package} is not a services package (no __init__.py); run devenv new in the project folder"
        )
    files = {
        f"{package}/{module}/__init__.py": "",
        f"{package}/{module}/service.py": SERVICE_PY.format(name=name, port=port, env=module.upper()),
        f"tests/unit/{package}/test_{module}.py": TEST_PY.format(name=name, package=package, module=module),
    }
    taken = [path for path in files if (root / path).exists()]
    if taken:
        raise ConfigError(f"{', '.join(taken)} exists already; remove it or choose another name")
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return list(files)
