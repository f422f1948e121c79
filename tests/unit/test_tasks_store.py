"""The task state machine in the cache backend (devenv/tasks.py), on a MemoryCache and on a
real Redis: what tasks/get answers at each step, answers, cancels, expiry and a lost replica."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from devenv.cache import MemoryCache, RedisCache
from devenv.tasks import TaskStore, declares_extension, valid_task_id


@pytest.fixture(params=["memory", "redis"])
def cache(request):
    if request.param == "memory":
        yield MemoryCache()
    else:
        backend = RedisCache(request.getfixturevalue("redis_url"))
        yield backend
        backend.close()


def store_on(cache, **options) -> TaskStore:
    return TaskStore(cache, f"svc-{uuid.uuid4().hex[:8]}", **options)  # fresh keys on a shared Redis


def run(coro):
    return asyncio.run(coro)


def eventually(fn, what: str, deadline: float = 30.0):
    end = time.monotonic() + deadline
    while not (value := fn()):
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_a_new_task_is_working_and_readable_at_once(cache):
    store = store_on(cache)
    created = run(store.create("slow"))
    assert created["status"] == "working"
    assert valid_task_id(created["taskId"])
    assert created["ttlMs"] == 3_600_000 and created["pollIntervalMs"] == 1000
    assert created["createdAt"].endswith("Z") and created["createdAt"] == created["lastUpdatedAt"]
    assert run(store.get(created["taskId"])) == created
    assert created["taskId"] != run(store.create("slow"))["taskId"]


def test_input_requests_are_surfaced_until_answered(cache):
    store = store_on(cache)
    task_id = run(store.create("ask"))["taskId"]
    requests = {
        "a": {"method": "elicitation/create", "params": {"message": "one?"}},
        "b": {"method": "elicitation/create", "params": {"message": "two?"}},
    }
    run(store.set_state(task_id, requests))
    task = run(store.get(task_id))
    assert task["status"] == "input_required" and task["inputRequests"] == requests

    # Only outstanding keys are stored; unknown ones are ignored, as the spec says.
    assert run(store.deliver(task_id, {"a": {"action": "accept"}, "zzz": {"action": "accept"}})) == ["a"]
    task = run(store.get(task_id))
    assert task["status"] == "input_required" and list(task["inputRequests"]) == ["b"]
    assert run(store.answer(task_id, "a")) == {"action": "accept"}
    assert run(store.answer(task_id, "b")) is None

    # A second answer to the same request does not replace the first.
    assert run(store.deliver(task_id, {"a": {"action": "decline"}})) == []
    assert run(store.answer(task_id, "a")) == {"action": "accept"}

    assert run(store.deliver(task_id, {"b": {"action": "cancel"}})) == ["b"]
    task = run(store.get(task_id))
    assert task["status"] == "working" and "inputRequests" not in task


def test_finishing_inlines_the_result_and_settles_once(cache):
    store = store_on(cache)
    task_id = run(store.create("job"))["taskId"]
    result = {"content": [{"type": "text", "text": "done"}], "isError": False}
    assert run(store.finish(task_id, "completed", result=result)) is True
    task = run(store.get(task_id))
    assert task["status"] == "completed" and task["result"] == result and "error" not in task
    # Ended: a later cancel or a second finish changes nothing.
    assert run(store.cancel(task_id)) is False
    assert run(store.finish(task_id, "failed", error={"code": -32603, "message": "x"})) is False
    assert run(store.get(task_id))["status"] == "completed"
    assert run(store.beat(task_id)) is False  # the running replica learns the task has ended


def test_a_failed_task_carries_the_error_and_no_result(cache):
    store = store_on(cache)
    task_id = run(store.create("job"))["taskId"]
    error = {"code": -32603, "message": "boom"}
    assert run(store.finish(task_id, "failed", error=error, message="boom"))
    task = run(store.get(task_id))
    assert task["status"] == "failed" and task["error"] == error and task["statusMessage"] == "boom"
    assert "result" not in task


def test_cancel_wins_over_a_later_finish_and_is_idempotent(cache):
    store = store_on(cache)
    task_id = run(store.create("job"))["taskId"]
    assert run(store.beat(task_id)) is True
    assert run(store.cancel(task_id)) is True
    assert run(store.cancel(task_id)) is False  # cancelling twice: the second finds it ended
    assert run(store.beat(task_id)) is False  # the replica running it stops the tool
    assert run(store.finish(task_id, "completed", result={"content": []})) is False
    task = run(store.get(task_id))
    assert task["status"] == "cancelled" and "result" not in task


@pytest.mark.parametrize("task_id", ["nope", "", "x" * 65, "../../etc/passwd", "a b c d e f g h i j k l m n"])
def test_unknown_and_malformed_ids_are_unknown(cache, task_id):
    store = store_on(cache)
    run(store.create("job"))
    assert run(store.get(task_id)) is None
    assert run(store.cancel(task_id)) is None
    assert run(store.deliver(task_id, {"a": {}})) is None
    assert run(store.finish(task_id, "cancelled")) is False


def test_a_task_is_gone_after_its_ttl(cache):
    store = store_on(cache, ttl=0.3)
    created = run(store.create("job"))
    assert created["ttlMs"] == 300
    assert run(store.get(created["taskId"])) is not None
    eventually(lambda: run(store.get(created["taskId"])) is None, "the task to expire")
    assert run(store.cancel(created["taskId"])) is None


def test_a_task_whose_replica_stopped_beating_reads_as_failed(cache):
    store = store_on(cache, heartbeat=0.05)  # lost after 0.25 s without a beat
    task_id = run(store.create("job"))["taskId"]
    task = eventually(lambda: (t := run(store.get(task_id)))["status"] != "working" and t, "the task to be lost")
    assert task["status"] == "failed"
    assert task["error"]["code"] == -32603 and "stopped" in task["error"]["message"]
    # Settled for good: the lost replica cannot complete it afterwards.
    assert run(store.finish(task_id, "completed", result={"content": []})) is False


def test_bad_arguments_are_refused(cache):
    with pytest.raises(ValueError, match="positive"):
        TaskStore(cache, "svc", ttl=0)
    with pytest.raises(ValueError, match="positive"):
        TaskStore(cache, "svc", heartbeat=-1)
    store = store_on(cache)
    task_id = run(store.create("job"))["taskId"]
    with pytest.raises(ValueError, match="not a terminal status"):
        run(store.finish(task_id, "working"))


def test_declares_extension():
    assert declares_extension({"extensions": {"io.modelcontextprotocol/tasks": {}}})
    for caps in (
        None,
        {},
        {"extensions": {}},
        {"extensions": []},
        {"extensions": {"io.modelcontextprotocol/tasks": 1}},
    ):
        assert not declares_extension(caps)
