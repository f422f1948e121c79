"""devenv as ``devenv serve`` runs it: ``app_from_env``'s JSON logging (one line per call at INFO)."""

from devenv.config import get_settings
from devenv.logs import configure_logging
from devenv.server import create_app

from ..tool import devenv_service

settings = get_settings()
configure_logging(settings.log_level)
app = create_app(devenv_service(), settings)
