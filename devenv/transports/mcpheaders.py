"""The HTTP headers MCP 2026-07-28 mirrors from a request body (``Mcp-Name``, ``Mcp-Param-*``).

A tool marks an argument for mirroring with ``"x-mcp-header": "Region"`` on its property in
``inputSchema``; the client then sends ``Mcp-Param-Region: <value>``. Values that are not
plain printable ASCII (or that look like the sentinel) travel as ``=?base64?...?=``.
"""

from __future__ import annotations

import base64
import re
from typing import Any

__all__ = ["encode", "marked_parameters", "param_headers"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PLAIN = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")  # printable, no edge whitespace
_PRIMITIVE = ("string", "integer", "boolean")
_SAFE_INTEGER = 2**53 - 1


def encode(value: str) -> str:
    """A header value as the spec carries it: as is when plain ASCII, else the Base64 sentinel."""
    if value == "" or (_PLAIN.fullmatch(value) and not (value.startswith("=?base64?") and value.endswith("?="))):
        return value
    return "=?base64?" + base64.b64encode(value.encode()).decode("ascii") + "?="


def marked_parameters(schema: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """``[(property path, header name), ...]`` for a tool's ``inputSchema``.

    Raises ``ValueError`` naming the problem when a mark breaks the spec's rules (such a tool
    must be left out of ``tools/list``): not a token, a duplicate, on a non-primitive type,
    or not reachable from the root through ``properties`` alone.
    """
    found: list[tuple[tuple[str, ...], str]] = []
    _walk(schema, (), True, found)
    seen: set[str] = set()
    for _path, name in found:
        if name.lower() in seen:
            raise ValueError(f"x-mcp-header {name!r} is used twice (names are case-insensitive)")
        seen.add(name.lower())
    return found


def _walk(node: Any, path: tuple[str, ...], reachable: bool, found: list) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, path, False, found)
        return
    if not isinstance(node, dict):
        return
    if "x-mcp-header" in node:
        where = ".".join(path) or "the schema root"
        name = node["x-mcp-header"]
        if not reachable or not path:
            raise ValueError(f"x-mcp-header at {where} is not reachable through 'properties' alone")
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"x-mcp-header {name!r} at {where} is not an HTTP header name token")
        if node.get("type") not in _PRIMITIVE:
            raise ValueError(f"x-mcp-header at {where} is on type {node.get('type')!r}; only {_PRIMITIVE} may be")
        found.append((path, name))
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            for prop, sub in value.items():
                _walk(sub, path + (prop,), reachable, found)
        elif key != "x-mcp-header" and isinstance(value, (dict, list)):
            _walk(value, path, False, found)  # items, oneOf, $defs, ...: not a 'properties' chain


def param_headers(marked: list[tuple[tuple[str, ...], str]], arguments: dict[str, Any]) -> dict[str, str]:
    """``Mcp-Param-*`` headers for the marked arguments present (absent or null ones are left out)."""
    headers = {}
    for path, name in marked:
        value: Any = arguments
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            if abs(value) > _SAFE_INTEGER:
                raise ValueError(f"argument {'.'.join(path)} = {value} is outside the safe integer range")
            text = str(int(value))
        else:
            text = str(value)
        headers[f"mcp-param-{name}"] = encode(text)
    return headers
