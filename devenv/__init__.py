"""devenv: one MCP tool function, in-process in a test or over HTTP in a Pod; flip ``K8S_MODE``."""

from .cache import Cache, MemoryCache, RedisCache, cache_from_env
from .client import MCPClient
from .config import Settings, get_settings
from .errors import (
    ConfigError,
    DevenvError,
    InvalidArguments,
    ProtocolError,
    ServiceNotFound,
    ServiceUnavailable,
    ToolError,
    ToolNotFound,
)
from .tools import Registry, Service, Tool, default_registry

__version__ = "0.1.0"

__all__ = [
    "Cache",
    "ConfigError",
    "DevenvError",
    "InvalidArguments",
    "MCPClient",
    "MemoryCache",
    "ProtocolError",
    "RedisCache",
    "Registry",
    "Service",
    "ServiceNotFound",
    "ServiceUnavailable",
    "Settings",
    "Tool",
    "ToolError",
    "ToolNotFound",
    "__version__",
    "cache_from_env",
    "default_registry",
    "get_settings",
]
