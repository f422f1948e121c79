"""Prompts: message templates a service offers, declared with ``@service.prompt()``.

The function's parameters are the prompt's arguments (MCP prompt arguments are strings;
one without a default is required), its docstring the description and its ``Args:``
section the arguments' descriptions. It returns a ``str`` (one user message), a content
value (``Text``, ``Image``, ``EmbeddedResource`` ...), a ``Message``, or a list of these.
A parameter of type ``Context`` is not an argument: it gets the request's Context (to ask the
client for input, as a tool does).
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread

from ._portal import run_sync
from .completion import Completer, completers, run_completer
from .config import redact
from .content import Content, Message
from .context import Context
from .errors import CapabilityMissing, ConfigError, InvalidArguments, ToolError

__all__ = ["Prompt"]

_PROMPT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")


def _is_str(annotation: Any) -> bool:
    if annotation is str or annotation is inspect.Parameter.empty:
        return True
    args = typing.get_args(annotation)
    return bool(args) and all(a in (str, type(None)) for a in args) and str in args


class Prompt:
    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        complete: Mapping[str, Any] | None = None,
    ) -> None:
        from .tools import _is_context, _split_docstring  # one reader for tools and prompts

        self.fn = fn
        self.name = name or fn.__name__
        if not _PROMPT_NAME.match(self.name):
            raise ConfigError(f"prompt name {self.name!r} must match {_PROMPT_NAME.pattern}")
        summary, arg_docs = _split_docstring(inspect.getdoc(fn) or "")
        self.title = title
        self.description = description or summary or None
        self.is_async = inspect.iscoroutinefunction(fn)
        hints = typing.get_type_hints(fn)
        self.arguments: list[dict[str, Any]] = []
        self._required: set[str] = set()
        self.context_param: str | None = None
        for param in inspect.signature(fn).parameters.values():
            if _is_context(hints.get(param.name)) and self.context_param is None:
                self.context_param = param.name
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise ConfigError(f"prompt {self.name!r}: parameter {param.name!r} must be a named parameter")
            if not _is_str(hints.get(param.name, param.empty)):
                raise ConfigError(
                    f"prompt {self.name!r}: parameter {param.name!r} must be a str (MCP prompt arguments are strings)"
                )
            required = param.default is param.empty
            entry: dict[str, Any] = {"name": param.name, "required": required}
            if param.name in arg_docs:
                entry["description"] = arg_docs[param.name]
            self.arguments.append(entry)
            if required:
                self._required.add(param.name)
        self._names = [a["name"] for a in self.arguments]
        self.completers: dict[str, Completer] = completers(f"prompt {self.name!r}", complete, self._names)

    def definition(self) -> dict[str, Any]:
        """The entry in prompts/list."""
        entry: dict[str, Any] = {"name": self.name}
        if self.title:
            entry["title"] = self.title
        if self.description:
            entry["description"] = self.description
        entry["arguments"] = self.arguments
        return entry

    def validate(self, arguments: Any) -> dict[str, str]:
        """Raw JSON arguments, checked: an object of strings, every required one, no unknown ones."""
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise InvalidArguments(
                self.name, [{"field": "", "message": "arguments must be a JSON object", "type": "dict_type"}]
            )
        errors = [
            {"field": key, "message": "unknown argument", "type": "extra_forbidden"}
            for key in arguments
            if key not in self._names
        ]
        errors += [
            {"field": key, "message": "a prompt argument must be a string", "type": "string_type"}
            for key, value in arguments.items()
            if key in self._names and not isinstance(value, str)
        ]
        errors += [
            {"field": key, "message": "required argument is missing", "type": "missing"}
            for key in self._names
            if key in self._required and key not in arguments
        ]
        if errors:
            raise InvalidArguments(self.name, errors)
        return arguments

    def complete(self, argument: str, value: Any, arguments: Any) -> dict[str, Any]:
        return run_completer(f"prompt {self.name!r}", self.completers.get(argument), value, arguments)

    def render(self, arguments: Any, *, context: Context | None = None) -> dict[str, Any]:
        """The prompts/get result (the function runs here, in this thread)."""
        args = self._with_context(self.validate(arguments), context)
        try:
            value = run_sync(self.fn(**args)) if self.is_async else self.fn(**args)
        except CapabilityMissing:
            raise
        except Exception as exc:
            raise self._failure(exc) from exc
        return self.result(value)

    async def arender(
        self, arguments: Any, *, thread_sync: bool = True, context: Context | None = None
    ) -> dict[str, Any]:
        args = self._with_context(self.validate(arguments), context)
        try:
            if self.is_async:
                value = await self.fn(**args)
            elif thread_sync:
                value = await anyio.to_thread.run_sync(lambda: self.fn(**args))
            else:
                value = self.fn(**args)
        except CapabilityMissing:
            raise
        except Exception as exc:
            raise self._failure(exc) from exc
        return self.result(value)

    def _with_context(self, args: dict[str, str], context: Context | None) -> dict[str, Any]:
        return args if self.context_param is None else {**args, self.context_param: context or Context()}

    def result(self, value: Any) -> dict[str, Any]:
        items = value if isinstance(value, (list, tuple)) else [value]
        try:
            messages = [_message(item).to_json() for item in items]
        except (TypeError, ValueError) as exc:
            raise ToolError(self.name, "ResultError", f"prompt {self.name!r} returned {exc}") from exc
        result: dict[str, Any] = {"messages": messages}
        if self.description:
            result["description"] = self.description
        return result

    def _failure(self, exc: Exception) -> ToolError:
        return ToolError(self.name, type(exc).__name__, redact(str(exc)))


def _message(item: Any) -> Message:
    if isinstance(item, Message):
        return item
    if isinstance(item, (str, Content)):
        return Message("user", item)
    raise TypeError(f"{type(item).__name__}, not a str, a Content value or a Message")
