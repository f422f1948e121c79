"""notifications: stored as sent, newest first, bounded, and kept in the cache backend (memory or Redis)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from devenv import InvalidArguments, MemoryCache, RedisCache
from services.notifications import service as notifications_module
from services.notifications.service import KEY, service


def notify(message: str, **extra):
    return service.tools["notify"].run({"message": message, **extra})


def listed(**arguments):
    return service.tools["list_notifications"].run(arguments)


def test_notify_returns_the_stored_notification():
    note = notify("  Backup finished  ", level="warning")
    assert re.fullmatch(r"[0-9a-f]{32}", note["id"])
    stamp = datetime.fromisoformat(note["timestamp"])
    assert stamp.tzinfo is not None and abs(datetime.now(UTC) - stamp) < timedelta(seconds=5)
    assert (note["level"], note["message"]) == ("warning", "Backup finished")
    assert listed() == [note]


def test_level_defaults_to_info():
    assert notify("hello")["level"] == "info"


def test_newest_first_and_limit():
    ids = [notify(f"message {i}")["id"] for i in range(5)]
    assert [n["id"] for n in listed()] == ids[::-1]
    assert [n["message"] for n in listed(limit=2)] == ["message 4", "message 3"]
    assert len({n["id"] for n in listed()}) == 5


def test_empty_list_before_anything_is_sent():
    assert listed() == []


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"message": "x", "level": "critical"}, "level"),
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({"message": "x" * 4001}, "message"),
    ],
)
def test_invalid_notifications_are_rejected(arguments, field):
    with pytest.raises(InvalidArguments) as info:
        service.tools["notify"].run(arguments)
    assert info.value.fields == [field]
    assert listed() == []


@pytest.mark.parametrize("limit", [0, 501])
def test_limit_is_bounded(limit):
    with pytest.raises(InvalidArguments) as info:
        listed(limit=limit)
    assert info.value.fields == ["limit"]


def test_the_log_is_trimmed_to_the_newest(monkeypatch):
    monkeypatch.setattr(notifications_module, "MAX_KEPT", 3)
    for i in range(5):
        notify(f"m{i}")
    assert [n["message"] for n in listed(limit=500)] == ["m4", "m3", "m2"]


def test_state_lives_in_the_cache_backend_not_the_process():
    shared = MemoryCache()
    service.cache = shared
    sent = notify("in the backend")
    service.cache = MemoryCache()  # a replica with another backend sees nothing
    assert listed() == []
    service.cache = shared  # a replica on the same backend sees it
    assert listed() == [sent]


def test_an_unreadable_entry_does_not_hide_the_others():
    first = notify("first")
    service.cache.push(KEY, b"{not json", 1000)
    second = notify("second")
    assert listed() == [second, first]


def test_readiness_requires_the_cache():
    assert service.requires == ("cache",)
    assert service.check_ready() == {"cache": None}


def test_replicas_share_notifications_through_redis(redis_url):
    replica_a, replica_b = RedisCache(redis_url), RedisCache(redis_url)
    try:
        replica_a.delete(KEY)
        service.cache = replica_a
        sent = notify("from replica a", level="error")
        service.cache = replica_b
        assert listed(limit=1) == [sent]
    finally:
        replica_a.delete(KEY)
        replica_a.close()
        replica_b.close()
