"""A small service used by the unit tests of the runtime (not one of the examples)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from devenv import Service


class Point(BaseModel):
    x: int
    y: int


class Box(BaseModel):
    label: str
    corners: list[Point]


def make_service() -> Service:
    """A fresh service per test, so counters and caches never leak between tests."""
    service = Service("demo", instructions="Tools for testing devenv itself.")
    service.calls = {"slow_square": 0}  # type: ignore[attr-defined]

    @service.tool(read_only=True)
    def echo(text: str, times: Annotated[int, Field(ge=1, le=5)] = 1) -> str:
        """Repeat text.

        Args:
            text: what to repeat
            times: how often, 1 to 5
        """
        return text * times

    @service.tool(read_only=True, cache_ttl=60)
    def slow_square(n: int) -> int:
        """Square a number (cached)."""
        service.calls["slow_square"] += 1  # type: ignore[attr-defined]
        return n * n

    @service.tool
    async def make_box(label: str, corners: list[Point]) -> Box:
        """Build a box from points."""
        return Box(label=label, corners=corners)

    @service.tool(destructive=True)
    def fail(message: str) -> None:
        """Always raises ValueError."""
        raise ValueError(message)

    @service.tool
    def crash() -> int:
        """Raises a RuntimeError: a bug, not bad input."""
        raise RuntimeError("internal bug")

    @service.tool
    def wrong_type() -> int:
        """Returns something that is not an int."""
        return "not a number"  # type: ignore[return-value]

    return service
