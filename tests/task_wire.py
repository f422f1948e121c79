"""A minimal 2026-07-28 client for the tasks extension, for tests (MCPClient does not speak tasks).

Each call is one conformant POST: the `_meta` envelope and the headers that mirror the body.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx

V = "2026-07-28"
EXTENSION = "io.modelcontextprotocol/tasks"
WITH_TASKS = {"elicitation": {}, "extensions": {EXTENSION: {}}}
TERMINAL = ("completed", "failed", "cancelled")


class TaskWire:
    def __init__(self, base_url: str, capabilities: dict[str, Any] | None = None) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.capabilities = WITH_TASKS if capabilities is None else capabilities

    def close(self) -> None:
        self.http.close()

    def post(self, method: str, params: dict[str, Any], *, name: Any = None, **headers: str) -> httpx.Response:
        meta = {
            "io.modelcontextprotocol/protocolVersion": V,
            "io.modelcontextprotocol/clientCapabilities": self.capabilities,
            "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "1"},
        }
        sent = {"accept": "application/json, text/event-stream", "mcp-protocol-version": V, "mcp-method": method}
        if name is None:
            name = params.get("name") if method == "tools/call" else params.get("taskId")
        if isinstance(name, str):  # a value a header cannot carry travels Base64-encoded, as the spec says
            sent["mcp-name"] = name if name.isascii() else f"=?base64?{base64.b64encode(name.encode()).decode()}?="
        sent.update(headers)
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}
        return self.http.post("/mcp", json=body, headers=sent)

    def rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The JSON-RPC message (result or error) answering ``method``."""
        return self.post(method, params).json()

    def result(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        message = self.rpc(method, params)
        assert "result" in message, message
        return message["result"]

    def call(self, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.result("tools/call", {"name": tool, "arguments": arguments or {}})

    def get(self, task_id: str) -> dict[str, Any]:
        return self.result("tasks/get", {"taskId": task_id})

    def wait(self, task_id: str, status: str | tuple[str, ...] = TERMINAL, deadline: float = 30.0) -> dict[str, Any]:
        """Poll tasks/get until the task is in ``status`` (a generous deadline; not a timing check)."""
        wanted = (status,) if isinstance(status, str) else status
        end = time.monotonic() + deadline
        while True:
            task = self.get(task_id)
            if task["status"] in wanted:
                return task
            assert time.monotonic() < end, f"task {task_id} still {task['status']}, wanted {wanted}"
            time.sleep(0.05)
