"""Completion for prompt and resource-template arguments (MCP ``completion/complete``).

Declared next to the prompt or template: ``complete={"language": ["python", "go"]}`` offers
the listed values that start with what the user typed; a callable
``(value, arguments) -> list[str]`` computes them (``arguments``: those already filled in).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["MAX_VALUES", "Completer", "completers"]

#: The most values one completion answer may carry (the spec's limit).
MAX_VALUES = 100

Completer = Callable[[str, dict[str, str]], Iterable[str]]


def _from_values(values: list[str]) -> Completer:
    def complete(value: str, arguments: dict[str, str]) -> list[str]:
        typed = value.lower()
        return [v for v in values if v.lower().startswith(typed)]

    return complete


def completers(owner: str, complete: Mapping[str, Any] | None, arguments: Iterable[str]) -> dict[str, Completer]:
    """Check ``complete=`` against the owner's arguments and turn each entry into a ``Completer``."""
    if not complete:
        return {}
    if not isinstance(complete, Mapping):
        raise ConfigError(f"{owner}: complete= maps argument names to values or a function, got {complete!r}")
    known = set(arguments)
    result: dict[str, Completer] = {}
    for name, source in complete.items():
        if name not in known:
            raise ConfigError(f"{owner}: complete= names {name!r}, which is not one of its arguments {sorted(known)}")
        if inspect.iscoroutinefunction(source):
            raise ConfigError(f"{owner}: complete[{name!r}] must be a plain function; completion does not await")
        if callable(source):
            result[name] = source
        elif isinstance(source, (list, tuple)) and all(isinstance(v, str) for v in source):
            result[name] = _from_values(list(source))
        else:
            raise ConfigError(f"{owner}: complete[{name!r}] must be a list of strings or a function, got {source!r}")
    return result


def run_completer(owner: str, completer: Completer | None, value: Any, arguments: Any) -> dict[str, Any]:
    """The MCP ``completion`` object; ``ValueError`` names a malformed request."""
    if not isinstance(value, str):
        raise ValueError(f'"argument.value" must be a string, got {value!r}')
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict) or not all(isinstance(v, str) for v in arguments.values()):
        raise ValueError('"context.arguments" must be an object of strings')
    if completer is None:
        return {"values": [], "total": 0, "hasMore": False}
    values = list(completer(value, arguments))
    if not all(isinstance(v, str) for v in values):
        raise TypeError(f"{owner}: a completer must return strings, got {values[:3]!r}")
    return {"values": values[:MAX_VALUES], "total": len(values), "hasMore": len(values) > MAX_VALUES}
