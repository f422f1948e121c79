"""The one exception tree of devenv.

Every mode raises the same classes, so code written against in-process calls keeps
working when ``K8S_MODE=true`` sends the same call over HTTP::

    DevenvError
     ├── ConfigError            a setting is missing or malformed
     ├── ServiceNotFound        no service of that name is known
     ├── ToolNotFound           the service has no tool of that name
     ├── ResourceNotFound       no resource or resource template of the service matches the URI
     ├── PromptNotFound         the service has no prompt of that name
     ├── InvalidArguments       arguments do not match the tool's input schema (names the fields)
     ├── ToolError              the tool raised: its exception type and message
     ├── CapabilityMissing      the call needs a client capability the client did not declare
     ├── ServiceUnavailable     the service could not be reached (names the service and URL)
     └── ProtocolError          the peer broke MCP / JSON-RPC, or answered with an error we cannot map
          └── RequestFailed     raised by a tool: fail the request with this JSON-RPC error
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CapabilityMissing",
    "ConfigError",
    "DevenvError",
    "InvalidArguments",
    "PromptNotFound",
    "ProtocolError",
    "RequestFailed",
    "ResourceNotFound",
    "ServiceNotFound",
    "ServiceUnavailable",
    "ToolError",
    "ToolNotFound",
]


class DevenvError(Exception):
    """Root of every error devenv raises on purpose."""


class ConfigError(DevenvError):
    """A setting is missing or malformed."""


class ServiceNotFound(DevenvError):
    def __init__(self, service: str, known: list[str] | None = None) -> None:
        self.service = service
        self.known = known or []
        hint = f"; known services: {', '.join(self.known)}" if self.known else ""
        super().__init__(f"unknown service {service!r}{hint}")


class ToolNotFound(DevenvError):
    def __init__(self, service: str, tool: str, known: list[str] | None = None) -> None:
        self.service = service
        self.tool = tool
        self.known = known or []
        hint = f"; its tools: {', '.join(self.known)}" if self.known else ""
        super().__init__(f"service {service!r} has no tool {tool!r}{hint}")


class ResourceNotFound(DevenvError):
    def __init__(self, service: str, uri: str) -> None:
        self.service = service
        self.uri = uri
        super().__init__(f"service {service!r} has no resource {uri!r}")


class PromptNotFound(DevenvError):
    def __init__(self, service: str, prompt: str, known: list[str] | None = None) -> None:
        self.service = service
        self.prompt = prompt
        self.known = known or []
        hint = f"; its prompts: {', '.join(self.known)}" if self.known else ""
        super().__init__(f"service {service!r} has no prompt {prompt!r}{hint}")


class InvalidArguments(DevenvError):
    """``errors`` is a list of ``{"field": "a.b", "message": "...", "type": "..."}``."""

    def __init__(self, tool: str, errors: list[dict[str, Any]]) -> None:
        self.tool = tool
        self.errors = errors
        detail = "; ".join(f"{e['field'] or '(arguments)'}: {e['message']}" for e in errors)
        super().__init__(f"invalid arguments for {tool!r}: {detail}")

    @property
    def fields(self) -> list[str]:
        return [e["field"] for e in self.errors]


class ToolError(DevenvError):
    """The tool itself raised. ``error_type`` is the class name of what it raised."""

    def __init__(self, tool: str, error_type: str, message: str, traceback: str | None = None) -> None:
        self.tool = tool
        self.error_type = error_type
        self.message = message
        self.traceback = traceback
        super().__init__(f"tool {tool!r} failed: {error_type}: {message}")


class CapabilityMissing(DevenvError):
    """A tool asked its client for input (``method``) the client cannot give: it did not declare
    ``capability``. At MCP 2026-07-28 this is the JSON-RPC error -32021."""

    def __init__(self, method: str, capability: str, why: str = "the client did not declare it") -> None:
        self.method = method
        self.capability = capability
        super().__init__(f"{method} needs the client capability {capability!r}: {why}")


class ServiceUnavailable(DevenvError):
    def __init__(self, service: str, url: str, reason: str) -> None:
        self.service = service
        self.url = url
        self.reason = reason
        super().__init__(f"service {service!r} is unavailable at {url}: {reason}")


class ProtocolError(DevenvError):
    def __init__(self, message: str, code: int | None = None, data: Any = None) -> None:
        self.code = code
        self.data = data
        super().__init__(message if code is None else f"{message} (JSON-RPC {code})")


class RequestFailed(ProtocolError):
    """Raised by a tool to fail the request itself with a JSON-RPC error (``code``, message,
    ``data``) instead of reporting a tool error (an ``isError`` result) to the model. In a task
    it is what makes the task ``failed``. The caller gets it back as a ``ProtocolError`` with
    this ``code`` in every mode."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"a JSON-RPC error code is an integer, got {code!r}")
        super().__init__(message, code, data)
        self.message = message
