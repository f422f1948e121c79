"""devenv's benchmark suite: figures, never pass/fail tests.

``python -m benchmarks`` measures, in one run on this machine:

- in-process call overhead of a trivial tool: a direct call, ``MCPClient`` in-process,
  and the official SDK's in-memory ``mcp.Client``;
- ``POST /mcp`` tools/call over HTTP: sequential p50/p99 latency and throughput at 16
  connections, for devenv's ``create_app``, the official SDK's stateless server, and a
  bare FastAPI endpoint as the floor (each alone, in its own uvicorn process).

``--quick`` is the CI smoke run. Results go to ``benchmarks/results/latest.json``.
"""


class BenchmarkError(RuntimeError):
    """A candidate did not answer correctly or did not start: its timings would mean nothing."""
