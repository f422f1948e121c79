"""Example MCP tool services, one package each: ``services/<name>/service.py`` defines ``service``."""
