"""conformance: the fixtures of the official MCP conformance suite, as an example of every server feature."""
