"""pytest plugin (entry point ``pytest11``): fixtures for testing devenv services.

- ``mcp_client``: an ``MCPClient`` in whichever mode the environment says (``K8S_MODE``).
- ``serve_service``: serve a ``Service`` on a real loopback port; returns its base URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest


@pytest.fixture
def mcp_client() -> Iterator[Any]:
    from .client import MCPClient

    client = MCPClient()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def serve_service() -> Iterator[Callable[..., str]]:
    """``serve_service(service, settings=None) -> "http://127.0.0.1:<port>"``, stopped after the test."""
    from .server import create_app
    from .testing import serve_in_thread

    with ExitStack() as stack:

        def serve(service: Any, settings: Any = None) -> str:
            return stack.enter_context(serve_in_thread(create_app(service, settings)))

        yield serve
