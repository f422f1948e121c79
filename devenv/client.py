"""MCPClient: call any tool by ``"service/tool"``; where it runs is the environment's business.

``K8S_MODE`` unset or false → the handler runs in this process. ``K8S_MODE=true`` → the
same call is an MCP ``tools/call`` over HTTP to the URL ``devenv.discovery`` resolves.
"""

from __future__ import annotations

from typing import Any, Literal

from .config import get_settings
from .tools import Registry, Service, default_registry
from .transports.base import Transport
from .transports.inprocess import InProcessTransport

__all__ = ["MCPClient"]

Mode = Literal["auto", "inprocess", "http"]


def split_uri(uri: str) -> tuple[str, str]:
    service, sep, tool = uri.partition("/")
    if not (sep and service and tool) or "/" in tool:
        raise ValueError(f"a tool is named 'service/tool', like 'jd-classifier/find_category'; got {uri!r}")
    return service, tool


class MCPClient:
    """Calls tools by URI. Use one client for many calls: it pools connections.

    ``mode="auto"`` (the default) reads ``K8S_MODE`` once, when the client is made.
    ``services=[...]`` (in-process) serves just those services, handy in unit tests.
    Over HTTP: ``timeout`` (``DEVENV_TIMEOUT``) bounds a whole call, retries included;
    ``retries`` (``DEVENV_RETRIES``) applies to idempotent tools only; the bearer token is
    ``auth_token`` or ``DEVENV_AUTH_TOKEN`` / ``DEVENV_AUTH_TOKEN_FILE``.
    """

    def __init__(
        self,
        *,
        mode: Mode = "auto",
        transport: Transport | None = None,
        services: list[Service] | None = None,
        registry: Registry | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        headers: dict[str, str] | None = None,
        auth_token: str | None = None,
    ) -> None:
        if mode not in ("auto", "inprocess", "http"):
            raise ValueError(f"mode must be 'auto', 'inprocess' or 'http', got {mode!r}")
        if transport is None:
            settings = get_settings()
            if mode == "auto":
                mode = "http" if settings.k8s_mode else "inprocess"
            if mode == "http":
                from .transports.http import HTTPTransport  # httpx loads only when going remote

                transport = HTTPTransport(
                    timeout=timeout or settings.timeout,
                    retries=settings.retries if retries is None else retries,
                    headers=headers,
                    auth_token=auth_token or settings.auth_token,
                )
            else:
                if registry is None:
                    registry = Registry(None, services) if services is not None else default_registry()
                transport = InProcessTransport(registry)
        self.transport = transport
        self.mode = "inprocess" if isinstance(transport, InProcessTransport) else "http"

    def __repr__(self) -> str:
        return f"MCPClient(mode={self.mode!r})"

    def call(self, uri: str, arguments: dict[str, Any] | None = None) -> Any:
        """Call ``"service/tool"`` with JSON ``arguments`` and return its JSON result."""
        service, tool = split_uri(uri)
        return self.transport.call_tool(service, tool, arguments or {})

    async def acall(self, uri: str, arguments: dict[str, Any] | None = None) -> Any:
        service, tool = split_uri(uri)
        return await self.transport.acall_tool(service, tool, arguments or {})

    def list_tools(self, service: str) -> list[dict[str, Any]]:
        """The service's tools as MCP ``tools/list`` describes them."""
        return self.transport.list_tools(service)

    async def alist_tools(self, service: str) -> list[dict[str, Any]]:
        return await self.transport.alist_tools(service)

    def close(self) -> None:
        self.transport.close()

    async def aclose(self) -> None:
        await self.transport.aclose()

    def __enter__(self) -> MCPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> MCPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
