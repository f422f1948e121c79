"""Cache backends for tool results and small shared state.

``MemoryCache`` is the default: one process, no set-up. ``RedisCache`` is chosen when
``REDIS_URL`` is set, so replicas of a service share results (and the notifications
service shares its list). Both speak bytes; callers own the encoding.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Protocol, runtime_checkable

from .errors import ServiceUnavailable

__all__ = ["Cache", "MemoryCache", "RedisCache", "cache_from_env"]


@runtime_checkable
class Cache(Protocol):
    #: True when calls do network I/O, so async callers should move them off the event loop.
    blocking: bool

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...
    def delete(self, key: str) -> None: ...
    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Set ``key`` only if it holds nothing; True when this call set it (Redis' SET NX).

        The one atomic write: when two processes race to settle the same thing (a task's
        end, say), exactly one wins."""

    def push(self, key: str, value: bytes, max_len: int) -> None:
        """Prepend ``value`` to the list at ``key``, keeping the newest ``max_len`` items."""

    def items(self, key: str, limit: int) -> list[bytes]:
        """The newest ``limit`` items of the list at ``key``, newest first."""

    def ping(self) -> None:
        """Raise ``ServiceUnavailable`` when the backend cannot be reached."""


class MemoryCache:
    """A thread-safe in-process cache with per-key expiry and a bound on its size."""

    blocking = False

    def __init__(self, max_entries: int = 10_000) -> None:
        self._values: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._lists: dict[str, deque[bytes]] = {}
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._values.get(key)
            if entry is None:
                return None
            value, expires = entry
            if expires is not None and expires <= time.monotonic():
                del self._values[key]
                return None
            self._values.move_to_end(key)  # least recently used goes first
            return value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        expires = None if ttl is None else time.monotonic() + ttl
        with self._lock:
            self._put(key, value, expires)

    def _put(self, key: str, value: bytes, expires: float | None) -> None:
        """Store ``key`` as the most recently used, evicting the least; the caller holds the lock."""
        self._values[key] = (value, expires)
        self._values.move_to_end(key)
        while len(self._values) > self._max_entries:
            self._values.popitem(last=False)

    def delete(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)
            self._lists.pop(key, None)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        expires = None if ttl is None else time.monotonic() + ttl
        with self._lock:  # the check and the set under one lock: no other thread slips in between
            entry = self._values.get(key)
            if entry is not None and (entry[1] is None or entry[1] > time.monotonic()):
                return False
            self._put(key, value, expires)
            return True

    def push(self, key: str, value: bytes, max_len: int) -> None:
        with self._lock:
            items = self._lists.get(key)
            if items is None or items.maxlen != max_len:  # trim to the new bound, as LTRIM does
                items = self._lists[key] = deque(list(items or ())[:max_len], maxlen=max_len)
            items.appendleft(value)

    def items(self, key: str, limit: int) -> list[bytes]:
        with self._lock:
            return list(self._lists.get(key, ()))[:limit]

    def ping(self) -> None:
        return None


class RedisCache:
    """Redis through redis-py's pooled sync client; errors surface as ``ServiceUnavailable``."""

    blocking = True

    def __init__(self, url: str, *, timeout: float = 1.0, password: str | None = None) -> None:
        import redis  # imported here so the CLI and in-process users never pay for it

        self.url = url
        self._errors = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30, password=password
        )  # a password in the URL wins; the cluster passes it from a file instead

    def _do(self, op, *args):
        try:
            return op(*args)
        except self._errors as exc:
            raise ServiceUnavailable("redis", _redact_url(self.url), str(exc) or type(exc).__name__) from exc

    def get(self, key: str) -> bytes | None:
        return self._do(self._client.get, key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if ttl is None:
            self._do(self._client.set, key, value)
        else:
            self._do(lambda: self._client.set(key, value, px=max(1, int(ttl * 1000))))

    def delete(self, key: str) -> None:
        self._do(self._client.delete, key)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        px = None if ttl is None else max(1, int(ttl * 1000))
        return bool(self._do(lambda: self._client.set(key, value, nx=True, px=px)))

    def push(self, key: str, value: bytes, max_len: int) -> None:
        def op() -> None:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.lpush(key, value).ltrim(key, 0, max_len - 1).execute()

        self._do(op)

    def items(self, key: str, limit: int) -> list[bytes]:
        if limit <= 0:
            return []  # LRANGE 0 -1 would mean "everything"
        return self._do(self._client.lrange, key, 0, limit - 1)

    def ping(self) -> None:
        self._do(self._client.ping)

    def close(self) -> None:
        self._client.close()


def _redact_url(url: str) -> str:
    """Drop the password from ``redis://user:password@host`` before it reaches an error."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def cache_from_env(environ: dict[str, str] | None = None) -> Cache:
    """``RedisCache`` when ``REDIS_URL`` is set, else a fresh ``MemoryCache``."""
    from .config import get_settings

    settings = get_settings(environ)
    return RedisCache(settings.redis_url, password=settings.redis_password) if settings.redis_url else MemoryCache()
