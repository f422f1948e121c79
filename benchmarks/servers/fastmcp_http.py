"""FastMCP's server with the same tools, over stateless Streamable HTTP answering JSON."""

from ..tool import fastmcp_server

app = fastmcp_server().http_app(json_response=True, stateless_http=True)
