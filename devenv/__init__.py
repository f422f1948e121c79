"""devenv: one MCP tool function, in-process in a test or over HTTP in a Pod; flip ``K8S_MODE``.

Exports resolve lazily so that ``devenv --help`` does not pay for pydantic, httpx or FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Cache": "cache",
    "MemoryCache": "cache",
    "RedisCache": "cache",
    "cache_from_env": "cache",
    "MCPClient": "client",
    "Audio": "content",
    "Content": "content",
    "EmbeddedResource": "content",
    "Image": "content",
    "Message": "content",
    "ResourceLink": "content",
    "Text": "content",
    "Context": "context",
    "InputChannel": "context",
    "Settings": "config",
    "get_settings": "config",
    "CapabilityMissing": "errors",
    "ConfigError": "errors",
    "DevenvError": "errors",
    "InvalidArguments": "errors",
    "PromptNotFound": "errors",
    "ProtocolError": "errors",
    "RequestFailed": "errors",
    "ResourceNotFound": "errors",
    "ServiceNotFound": "errors",
    "ServiceUnavailable": "errors",
    "ToolError": "errors",
    "ToolNotFound": "errors",
    "Registry": "tools",
    "Service": "tools",
    "Tool": "tools",
    "default_registry": "tools",
    "create_app": "server",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'devenv' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .cache import Cache, MemoryCache, RedisCache, cache_from_env
    from .client import MCPClient
    from .config import Settings, get_settings
    from .content import Audio, Content, EmbeddedResource, Image, Message, ResourceLink, Text
    from .context import Context, InputChannel
    from .errors import (
        CapabilityMissing,
        ConfigError,
        DevenvError,
        InvalidArguments,
        PromptNotFound,
        ProtocolError,
        RequestFailed,
        ResourceNotFound,
        ServiceNotFound,
        ServiceUnavailable,
        ToolError,
        ToolNotFound,
    )
    from .server import create_app
    from .tools import Registry, Service, Tool, default_registry
