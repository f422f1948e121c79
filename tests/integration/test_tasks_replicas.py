"""Tasks across replicas: two real `devenv serve conformance` processes sharing one real Redis,
as two Pods of a Deployment do. A task started on one is read, answered and cancelled on the
other; a task whose replica dies reads as failed on the survivor."""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import httpx
import pytest

from devenv.testing import serve_process
from tests.task_wire import TaskWire

ROOT = Path(__file__).resolve().parents[2]


class Replica:
    def __init__(self, redis_url: str, log: Path) -> None:
        self._running = contextlib.ExitStack()
        served = self._running.enter_context(
            serve_process("conformance", env={"REDIS_URL": redis_url}, log=log, cwd=ROOT)
        )
        self.url, self.proc = served.url, served.proc
        self.wire = TaskWire(self.url)

    def in_flight(self) -> int:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return int(float(re.search(r"^devenv_in_flight_requests\{[^}]*\} (\S+)$", text, re.M)[1]))

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        self._running.close()


@pytest.fixture(scope="module")
def replicas(redis_url, tmp_path_factory):
    logs = tmp_path_factory.mktemp("replicas")
    a = Replica(redis_url, logs / "a.log")
    b = Replica(redis_url, logs / "b.log")
    yield a, b
    for replica in (a, b):
        replica.wire.close()
        replica.stop()


def eventually(fn, what: str, deadline: float = 30.0):
    end = time.monotonic() + deadline
    while not (value := fn()):
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_a_task_started_on_one_replica_completes_and_reads_on_the_other(replicas):
    a, b = replicas
    created = a.wire.call("slow_compute", {"seconds": 0.5, "label": "shared"})
    assert created["resultType"] == "task"
    assert b.wire.get(created["taskId"])["taskId"] == created["taskId"]  # durable at once, on B too
    done = b.wire.wait(created["taskId"])
    assert done["status"] == "completed"
    assert done["result"]["content"] == [{"type": "text", "text": "computed shared in 0.5 s"}]


def test_a_task_cancelled_on_the_other_replica_stops_where_it_runs(replicas):
    a, b = replicas
    before = a.in_flight()
    task_id = a.wire.call("slow_compute", {"seconds": 600, "label": "to-cancel"})["taskId"]
    assert a.in_flight() == before + 1
    assert b.wire.get(task_id)["status"] == "working"
    assert b.wire.result("tasks/cancel", {"taskId": task_id}) == {
        "resultType": "complete",
        "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "conformance", "version": "0.1.0"}},
    }
    assert a.wire.get(task_id)["status"] == "cancelled"
    eventually(lambda: a.in_flight() == before, "replica A to stop the cancelled tool")  # its heartbeat saw the end
    assert b.wire.result("tasks/cancel", {"taskId": task_id})["resultType"] == "complete"  # twice: the same ack
    assert a.wire.get(task_id)["status"] == "cancelled"


def test_input_asked_on_one_replica_is_answered_on_the_other(replicas):
    a, b = replicas
    task_id = a.wire.call("confirm_delete", {"filename": "report.txt"})["taskId"]
    task = b.wire.wait(task_id, "input_required")
    [(key, request)] = task["inputRequests"].items()
    assert request["method"] == "elicitation/create" and "report.txt" in request["params"]["message"]
    b.wire.result(
        "tasks/update", {"taskId": task_id, "inputResponses": {key: {"action": "accept", "content": {"confirm": True}}}}
    )
    done = a.wire.wait(task_id)
    assert done["status"] == "completed" and done["result"]["content"][0]["text"] == "deleted report.txt"


def test_unknown_tasks_are_unknown_on_every_replica(replicas):
    for replica in replicas:
        assert replica.wire.rpc("tasks/get", {"taskId": "A" * 32})["error"]["code"] == -32602


def test_a_task_whose_replica_died_reads_as_failed_on_the_survivor(replicas, redis_url, tmp_path):
    _, b = replicas
    doomed = Replica(redis_url, tmp_path / "doomed.log")
    try:
        task_id = doomed.wire.call("slow_compute", {"seconds": 600, "label": "doomed"})["taskId"]
        assert b.wire.get(task_id)["status"] == "working"
    finally:
        doomed.wire.close()
        doomed.stop(kill=True)  # no goodbye: the heartbeat just stops
    task = b.wire.wait(task_id, deadline=60)
    assert task["status"] == "failed" and task["error"]["code"] == -32603
    assert "stopped" in task["statusMessage"]
