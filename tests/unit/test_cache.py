"""devenv.cache: MemoryCache and RedisCache keep one contract; RedisCache against a real redis-server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from devenv import config
from devenv.cache import Cache, MemoryCache, RedisCache, cache_from_env
from devenv.errors import ServiceUnavailable
from devenv.testing import free_port


class Backend:
    """A cache and a key prefix no other test uses (Redis is shared by the whole session)."""

    def __init__(self, kind: str, cache: Cache) -> None:
        self.kind = kind
        self.cache = cache
        self.prefix = f"test:{uuid.uuid4().hex}:"

    def key(self, name: str) -> str:
        return self.prefix + name


@pytest.fixture(params=["memory", "redis"])
def backend(request) -> Iterator[Backend]:
    if request.param == "memory":
        yield Backend("memory", MemoryCache())
        return
    cache = RedisCache(request.getfixturevalue("redis_url"))
    try:
        yield Backend("redis", cache)
    finally:
        cache.close()


# -- the contract, on both backends ---------------------------------------------------------


def test_is_a_cache(backend):
    assert isinstance(backend.cache, Cache)
    assert backend.cache.blocking is (backend.kind == "redis")


def test_get_missing_is_none(backend):
    assert backend.cache.get(backend.key("missing")) is None


@pytest.mark.parametrize("value", [b"plain", b"", b"\x00\xff\xfe binary", "ünïcode".encode()])
def test_set_then_get_returns_the_same_bytes(backend, value):
    key = backend.key("k")
    backend.cache.set(key, value)
    assert backend.cache.get(key) == value


def test_set_overwrites(backend):
    key = backend.key("k")
    backend.cache.set(key, b"one")
    backend.cache.set(key, b"two")
    assert backend.cache.get(key) == b"two"


def test_values_expire_after_their_ttl(backend):
    short, long, forever = backend.key("short"), backend.key("long"), backend.key("forever")
    backend.cache.set(short, b"s", ttl=0.05)
    backend.cache.set(long, b"l", ttl=60)
    backend.cache.set(forever, b"f")
    time.sleep(0.25)
    assert backend.cache.get(short) is None
    assert backend.cache.get(long) == b"l"
    assert backend.cache.get(forever) == b"f"


def test_setting_again_without_ttl_clears_the_expiry(backend):
    key = backend.key("k")
    backend.cache.set(key, b"old", ttl=0.05)
    backend.cache.set(key, b"new")
    time.sleep(0.2)
    assert backend.cache.get(key) == b"new"


def test_delete(backend):
    kept, gone = backend.key("kept"), backend.key("gone")
    backend.cache.set(kept, b"1")
    backend.cache.set(gone, b"2")
    backend.cache.delete(gone)
    backend.cache.delete(backend.key("never-set"))  # deleting nothing is fine
    assert backend.cache.get(gone) is None
    assert backend.cache.get(kept) == b"1"


def test_add_sets_only_an_empty_key(backend):
    key = backend.key("k")
    assert backend.cache.add(key, b"first") is True
    assert backend.cache.add(key, b"second") is False
    assert backend.cache.get(key) == b"first"
    backend.cache.delete(key)
    assert backend.cache.add(key, b"third") is True
    assert backend.cache.get(key) == b"third"


def test_add_takes_an_expired_key_and_sets_a_ttl(backend):
    key = backend.key("k")
    backend.cache.set(key, b"old", ttl=0.05)
    time.sleep(0.2)
    assert backend.cache.add(key, b"new", ttl=0.05) is True
    time.sleep(0.2)
    assert backend.cache.get(key) is None


def test_add_lets_exactly_one_of_many_racing_threads_win(backend):
    from concurrent.futures import ThreadPoolExecutor

    key = backend.key("k")
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda n: backend.cache.add(key, str(n).encode()), range(32)))
    assert won.count(True) == 1
    assert backend.cache.get(key) == str(won.index(True)).encode()


def test_push_and_items_newest_first(backend):
    key = backend.key("list")
    for n in range(3):
        backend.cache.push(key, f"item-{n}".encode(), 10)
    assert backend.cache.items(key, 10) == [b"item-2", b"item-1", b"item-0"]
    assert backend.cache.items(key, 2) == [b"item-2", b"item-1"]
    assert backend.cache.items(key, 1) == [b"item-2"]


def test_push_keeps_only_the_newest_max_len(backend):
    key = backend.key("list")
    for n in range(7):
        backend.cache.push(key, str(n).encode(), 3)
    assert backend.cache.items(key, 100) == [b"6", b"5", b"4"]


def test_items_of_a_missing_list_is_empty(backend):
    assert backend.cache.items(backend.key("none"), 10) == []


def test_delete_removes_a_list(backend):
    key = backend.key("list")
    backend.cache.push(key, b"a", 5)
    backend.cache.delete(key)
    assert backend.cache.items(key, 5) == []


def test_lists_are_separate_per_key(backend):
    a, b = backend.key("a"), backend.key("b")
    backend.cache.push(a, b"in-a", 5)
    backend.cache.push(b, b"in-b", 5)
    assert backend.cache.items(a, 5) == [b"in-a"]
    assert backend.cache.items(b, 5) == [b"in-b"]


def test_a_smaller_max_len_trims_the_list(backend):
    key = backend.key("list")
    for n in range(5):
        backend.cache.push(key, str(n).encode(), 10)
    backend.cache.push(key, b"5", 2)
    assert backend.cache.items(key, 100) == [b"5", b"4"]


def test_items_with_limit_zero_is_empty(backend):
    key = backend.key("list")
    backend.cache.push(key, b"a", 5)
    assert backend.cache.items(key, 0) == []


def test_ping_on_a_reachable_backend(backend):
    assert backend.cache.ping() is None


# -- MemoryCache only -----------------------------------------------------------------------


def test_memory_cache_is_bounded_evicting_the_least_recently_written():
    cache = MemoryCache(max_entries=3)
    for key in "abc":
        cache.set(key, key.encode())
    cache.set("d", b"d")
    assert cache.get("a") is None
    assert [cache.get(k) for k in "bcd"] == [b"b", b"c", b"d"]
    cache.set("b", b"b2")  # writing b makes it the newest
    cache.set("e", b"e")
    assert cache.get("c") is None
    assert [cache.get(k) for k in "bde"] == [b"b2", b"d", b"e"]


def test_memory_cache_reads_refresh_recency():
    cache = MemoryCache(max_entries=2)
    cache.set("hot", b"h")
    cache.set("cold", b"c")
    assert cache.get("hot") == b"h"
    cache.set("new", b"n")
    assert cache.get("hot") == b"h"
    assert cache.get("cold") is None


def test_memory_cache_instances_do_not_share():
    first, second = MemoryCache(), MemoryCache()
    first.set("k", b"v")
    first.push("l", b"x", 3)
    assert second.get("k") is None
    assert second.items("l", 3) == []


# -- RedisCache only ------------------------------------------------------------------------


def test_redis_instances_share_values_and_lists(redis_url):
    writer, reader = RedisCache(redis_url), RedisCache(redis_url)
    key = f"test:{uuid.uuid4().hex}"
    try:
        writer.set(key, b"shared")
        writer.push(key + ":list", b"note", 5)
        assert reader.get(key) == b"shared"
        assert reader.items(key + ":list", 5) == [b"note"]
    finally:
        writer.close()
        reader.close()


def test_redis_ttl_reaches_redis(redis_url):
    import redis

    cache = RedisCache(redis_url)
    raw = redis.Redis.from_url(redis_url)
    key = f"test:{uuid.uuid4().hex}"
    try:
        cache.set(key, b"v", ttl=30)
        assert 0 < raw.pttl(key) <= 30_000
        cache.set(key, b"v")
        assert raw.pttl(key) == -1  # no expiry
        cache.set(key, b"v", ttl=0.0001)  # sub-millisecond ttls round up to 1 ms, never to "no expiry"
        time.sleep(0.05)
        assert raw.exists(key) == 0
    finally:
        cache.close()
        raw.close()


@pytest.fixture
def unreachable_redis() -> Iterator[tuple[RedisCache, int]]:
    port = free_port()
    cache = RedisCache(f"redis://:s3cretpass@127.0.0.1:{port}/0", timeout=0.5)
    try:
        yield cache, port
    finally:
        cache.close()


@pytest.mark.parametrize(
    "operation",
    [
        lambda c: c.get("k"),
        lambda c: c.set("k", b"v"),
        lambda c: c.set("k", b"v", 10),
        lambda c: c.delete("k"),
        lambda c: c.add("k", b"v", 10),
        lambda c: c.push("k", b"v", 3),
        lambda c: c.items("k", 3),
        lambda c: c.ping(),
    ],
    ids=["get", "set", "set-ttl", "delete", "add", "push", "items", "ping"],
)
def test_unreachable_redis_raises_service_unavailable_without_the_password(unreachable_redis, operation):
    cache, port = unreachable_redis
    with pytest.raises(ServiceUnavailable) as info:
        operation(cache)
    exc = info.value
    assert exc.service == "redis"
    assert exc.url == f"redis://:***@127.0.0.1:{port}/0"
    assert exc.reason
    assert "s3cretpass" not in str(exc)
    assert "s3cretpass" not in exc.url + exc.reason
    assert str(exc).startswith(f"service 'redis' is unavailable at redis://:***@127.0.0.1:{port}/0")
    assert exc.__cause__ is not None  # the redis-py error, for debugging


def test_unreachable_redis_keeps_user_name_and_url_without_password():
    port = free_port()
    for url, shown in [
        (f"redis://alice:pw-123456@127.0.0.1:{port}/2", f"redis://alice:***@127.0.0.1:{port}/2"),
        (f"redis://127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/0"),
    ]:
        cache = RedisCache(url, timeout=0.5)
        try:
            with pytest.raises(ServiceUnavailable) as info:
                cache.ping()
        finally:
            cache.close()
        assert info.value.url == shown
        assert "pw-123456" not in str(info.value)


# -- cache_from_env -------------------------------------------------------------------------


def test_cache_from_env_picks_redis_when_redis_url_is_set(redis_url):
    cache = cache_from_env({"REDIS_URL": redis_url})
    try:
        assert isinstance(cache, RedisCache)
        assert cache.url == redis_url
        cache.ping()
    finally:
        cache.close()


@pytest.mark.parametrize("environ", [{}, {"REDIS_URL": ""}, {"K8S_MODE": "true"}])
def test_cache_from_env_picks_memory_otherwise(environ):
    first, second = cache_from_env(environ), cache_from_env(environ)
    assert isinstance(first, MemoryCache)
    assert first is not second  # a fresh one each time


def test_cache_from_env_reads_the_process_environment_by_default(monkeypatch, redis_url):
    monkeypatch.setattr(config, "_dotenv_loaded", True)  # no ./.env in this test
    monkeypatch.setenv("REDIS_URL", redis_url)
    cache = cache_from_env()
    try:
        assert isinstance(cache, RedisCache)
    finally:
        cache.close()
    monkeypatch.delenv("REDIS_URL")
    assert isinstance(cache_from_env(), MemoryCache)
