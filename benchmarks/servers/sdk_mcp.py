"""The official SDK's stateless JSON server, with its default settings (INFO logging through rich)."""

from ..tool import sdk_server

app = sdk_server().streamable_http_app(json_response=True, stateless_http=True)
