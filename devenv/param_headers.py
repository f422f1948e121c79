"""``x-mcp-header``: tool arguments that MCP 2026-07-28 clients mirror into ``Mcp-Param-*`` headers.

A tool marks an argument in its input schema, e.g. ``Annotated[str, Field(json_schema_extra=
{"x-mcp-header": "Region"})]``; a client then sends ``Mcp-Param-Region: <value>`` so a load
balancer can route on it, and the server checks the header against the body (``-32020`` when
they disagree). The annotations are read once per tool when the app is built; one the spec
forbids is a ``ConfigError`` naming the tool, so a bad schema never reaches a client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["Binding", "bindings_for"]

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 field-name token (1*tchar)
_PRIMITIVES = {"string", "integer", "boolean"}


@dataclass(frozen=True, slots=True)
class Binding:
    """One marked argument: where it sits in the arguments and which header mirrors it."""

    path: tuple[str, ...]
    header: str  # lower-case, as Starlette's headers are looked up
    kind: str  # "string" | "integer" | "boolean"

    @property
    def argument(self) -> str:
        return ".".join(self.path)

    def value_in(self, arguments: Any) -> Any:
        """The argument's value, or None when it is absent (or null: the client omits the header)."""
        node = arguments
        for key in self.path:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node

    def matches(self, header: str, value: Any) -> bool:
        """The decoded header against the body value; integers compare numerically (``42.0`` == ``42``)."""
        if self.kind == "boolean" or isinstance(value, bool):
            return isinstance(value, bool) and header == ("true" if value else "false")
        if self.kind == "integer" and isinstance(value, (int, float)):
            try:
                return float(header) == value
            except ValueError:
                return False
        return isinstance(value, str) and header == value


def bindings_for(tool: str, schema: Any) -> list[Binding]:
    """The ``x-mcp-header`` bindings of one input schema, checked against the spec's constraints."""
    bindings: list[Binding] = []
    _walk(tool, schema, (), True, bindings)
    seen: set[str] = set()
    for binding in bindings:
        if binding.header in seen:
            raise ConfigError(f"tool {tool!r}: x-mcp-header {binding.header[10:]!r} is used twice (case-insensitively)")
        seen.add(binding.header)
    return bindings


def _walk(tool: str, node: Any, path: tuple[str, ...], reachable: bool, out: list[Binding]) -> None:
    """Visit every subschema; ``reachable`` is whether only ``properties`` keys lead here from the root."""
    if isinstance(node, list):
        for item in node:
            _walk(tool, item, path, False, out)
        return
    if not isinstance(node, dict):
        return
    if "x-mcp-header" in node:
        out.append(_binding(tool, node, path, reachable))
    for key, child in node.items():
        if key == "properties" and isinstance(child, dict):
            for name, sub in child.items():
                _walk(tool, sub, (*path, name), reachable, out)
        elif isinstance(child, (dict, list)):
            _walk(tool, child, (*path, key), False, out)


def _binding(tool: str, node: dict[str, Any], path: tuple[str, ...], reachable: bool) -> Binding:
    name = node["x-mcp-header"]
    where = f"tool {tool!r}, argument {'.'.join(path) or '(root)'!r}"
    if not reachable or not path:
        raise ConfigError(f"{where}: x-mcp-header may only mark a property reached through 'properties' alone")
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise ConfigError(f"{where}: x-mcp-header {name!r} must be a non-empty HTTP token (RFC 9110)")
    kind = node.get("type")
    if kind not in _PRIMITIVES:
        raise ConfigError(f"{where}: x-mcp-header needs type string, integer or boolean, not {kind!r}")
    return Binding(path=path, header=f"mcp-param-{name.lower()}", kind=kind)
