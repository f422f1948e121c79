from __future__ import annotations

from typing import Any

__all__ = ["Transport"]


class Transport:
    """The contract every transport meets. Results are JSON values; failures are ``DevenvError``s."""

    def call_tool(self, service: str, tool: str, arguments: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def acall_tool(self, service: str, tool: str, arguments: dict[str, Any]) -> Any:
        raise NotImplementedError

    def list_tools(self, service: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def alist_tools(self, service: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
