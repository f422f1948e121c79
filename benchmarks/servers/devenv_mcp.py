"""devenv's server, exactly as ``create_app(service)`` builds it."""

from devenv.server import create_app

from ..tool import devenv_service

app = create_app(devenv_service())
