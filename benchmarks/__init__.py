"""devenv's benchmark suite: figures, never pass/fail tests.

``python -m benchmarks`` measures, in one run on this machine (see README.md):

1. in-process call overhead: a direct call, ``MCPClient`` in-process, the official SDK's
   in-memory ``mcp.Client`` and FastMCP's, for a trivial tool and a nested pydantic argument;
2. the wire: sequential p50/p99 and throughput at 1, 16 and 64 connections for devenv's
   ``POST /mcp`` and ``POST /tools/{name}``, the SDK's stateless server and a bare FastAPI floor;
3. clients over HTTP: ``MCPClient`` against the SDK's ``Client``, same server;
4. the inner loop: a file write to the first answer that shows it, local and docker;
5. start-up of the example stack per target;
6. the result cache: hit against miss, memory and Redis.

``--quick`` is the CI smoke run. Results go to ``benchmarks/results/``.
"""


class BenchmarkError(RuntimeError):
    """A candidate did not answer correctly or did not start: its timings would mean nothing."""
