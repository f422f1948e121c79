"""Resources: data a service exposes by URI, static (``test://static-text``) or templated.

``@service.resource("jd://areas/{area}")`` registers a function whose parameters are the
template's variables (RFC 6570 level 1: ``{name}`` matches one path segment). What it
returns becomes the resource's contents: a ``str`` is text, ``bytes`` a base64 blob, and
anything else the JSON its return annotation serialises to (``application/json``).
"""

from __future__ import annotations

import base64
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

import anyio.to_thread
from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError

from ._portal import run_sync
from .completion import Completer, completers, run_completer
from .config import redact
from .errors import ConfigError, ToolError

__all__ = ["Resource"]

_VARIABLE = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class Resource:
    """One resource or resource template of a service."""

    def __init__(
        self,
        fn: Callable[..., Any],
        uri: str,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        complete: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(uri, str) or not _SCHEME.match(uri):
            raise ConfigError(f"resource URI {uri!r} needs a scheme, like 'jd://structure'")
        self.fn = fn
        self.uri = uri
        self.name = name or fn.__name__
        self.title = title
        self.description = description or (inspect.getdoc(fn) or "").split("\n\n")[0].strip() or None
        self.mime_type = mime_type
        self.is_async = inspect.iscoroutinefunction(fn)
        self.variables = _VARIABLE.findall(uri)
        for variable in self.variables:
            if not _NAME.match(variable):
                raise ConfigError(
                    f"resource template {uri!r}: {{{variable}}} is not a simple variable"
                    " (only {name} is supported, RFC 6570 level 1)"
                )
        if len(set(self.variables)) != len(self.variables):
            raise ConfigError(f"resource template {uri!r} repeats a variable")
        params = inspect.signature(fn).parameters
        if set(params) != set(self.variables):
            raise ConfigError(
                f"resource {uri!r}: the function's parameters {sorted(params)} must be"
                f" the template's variables {sorted(self.variables)}"
            )
        self.is_template = bool(self.variables)
        self._pattern = None
        if self.is_template:
            parts = _VARIABLE.split(uri)  # literal, variable, literal, ...
            regex = "".join(f"(?P<{part}>[^/?#]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts))
            self._pattern = re.compile(f"^{regex}$")
        elif complete:
            raise ConfigError(f"resource {uri!r}: complete= is for templates, which have arguments")
        self.completers: dict[str, Completer] = completers(f"resource template {uri!r}", complete, self.variables)
        returns = typing.get_type_hints(fn).get("return", Any)
        self._json = None if returns in (str, bytes) else TypeAdapter(returns)

    def definition(self) -> dict[str, Any]:
        """The entry in resources/list (static) or resources/templates/list (templates)."""
        entry: dict[str, Any] = {"uriTemplate" if self.is_template else "uri": self.uri, "name": self.name}
        if self.title:
            entry["title"] = self.title
        if self.description:
            entry["description"] = self.description
        if self.mime_type:
            entry["mimeType"] = self.mime_type
        return entry

    def match(self, uri: str) -> dict[str, str] | None:
        """The template's variables for ``uri``, or None when it is not this resource's."""
        if self._pattern is None:
            return {} if uri == self.uri else None
        found = self._pattern.match(uri)
        if found is None:
            return None
        variables = {k: unquote(v) for k, v in found.groupdict().items()}
        # A variable is one path segment, also once decoded: no %2F, no "." or ".." to climb with.
        if any("/" in v or v in (".", "..") for v in variables.values()):
            return None
        return variables

    def complete(self, argument: str, value: Any, arguments: Any) -> dict[str, Any]:
        return run_completer(f"resource template {self.uri!r}", self.completers.get(argument), value, arguments)

    # -- reading ------------------------------------------------------------------------------

    def read(self, uri: str, variables: dict[str, str]) -> dict[str, Any]:
        """The resources/read result for ``uri`` (the function runs here, in this thread)."""
        try:
            value = run_sync(self.fn(**variables)) if self.is_async else self.fn(**variables)
        except Exception as exc:
            raise self._failure(exc) from exc
        return self.contents(uri, value)

    async def aread(self, uri: str, variables: dict[str, str], *, thread_sync: bool = True) -> dict[str, Any]:
        """``read`` for async callers; a sync function goes to a worker thread unless ``thread_sync`` is off."""
        try:
            if self.is_async:
                value = await self.fn(**variables)
            elif thread_sync:
                value = await anyio.to_thread.run_sync(lambda: self.fn(**variables))
            else:
                value = self.fn(**variables)
        except Exception as exc:
            raise self._failure(exc) from exc
        return self.contents(uri, value)

    def contents(self, uri: str, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            item = {"uri": uri, "mimeType": self.mime_type or "text/plain", "text": value}
        elif isinstance(value, bytes):
            blob = base64.b64encode(value).decode()
            item = {"uri": uri, "mimeType": self.mime_type or "application/octet-stream", "blob": blob}
        else:
            adapter = self._json or TypeAdapter(type(value))
            try:
                text = adapter.dump_json(value, warnings="error").decode()
            except (PydanticSerializationError, ValueError, TypeError) as exc:
                message = redact(f"resource {self.uri!r} returned what its annotation cannot serialise: {exc}")
                raise ToolError(self.name, "ResultError", message) from exc
            item = {"uri": uri, "mimeType": self.mime_type or "application/json", "text": text}
        return {"contents": [item]}

    def _failure(self, exc: Exception) -> ToolError:
        return ToolError(self.name, type(exc).__name__, redact(str(exc)))
