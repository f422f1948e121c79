"""The official SDK's server with ``log_level="WARNING"``: its default logs a line per request."""

from ..tool import sdk_server

app = sdk_server("WARNING").streamable_http_app(json_response=True, stateless_http=True)
