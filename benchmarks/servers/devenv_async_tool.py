"""devenv's server with ``async def echo``: the difference to devenv_mcp is the worker-thread hop."""

from devenv.server import create_app

from ..tool import devenv_async_service

app = create_app(devenv_async_service())
