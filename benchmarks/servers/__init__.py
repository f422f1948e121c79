"""ASGI apps the wire benchmark launches, one per uvicorn process: ``benchmarks.servers.<name>:app``."""
