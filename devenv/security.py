"""Checks that run before any route: Host and Origin (DNS rebinding), the bearer token, the rate limit.

One pure-ASGI middleware, ``Guard``, so a request that fails a check costs no routing,
no body parsing and no tool; and a request that passes pays one scan of its headers.

Which request is checked how:

======================  ===========  ======  ==========
path                    Host/Origin  token   rate limit
======================  ===========  ======  ==========
``/mcp``, ``/tools/*``  yes          yes     yes
``/health``, ``/ready`` no           no      no
``/metrics``            no           if ``DEVENV_METRICS_AUTH``   no
anything else (docs)    no           yes     no
======================  ===========  ======  ==========

- Host: checked only when ``DEVENV_ALLOWED_HOSTS`` lists names, or when the server is bound
  to a loopback interface (``DEVENV_BIND_HOST``), where only loopback names are right. In a
  cluster the Host is a Service name or a Pod IP nobody lists, so there it is left alone.
  Loopback names are always accepted (``kubectl port-forward`` sends ``localhost:PORT``).
- Origin: browsers send it; loopback origins and ``DEVENV_ALLOWED_ORIGINS`` may call.
- Token: ``Authorization: Bearer <DEVENV_AUTH_TOKEN>``, compared in constant time.
- Rate limit: a token bucket per token (per client address without auth), kept in Redis
  when ``REDIS_URL`` is set so that it holds across replicas; in memory when Redis fails.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Settings

__all__ = ["BearerAuth", "Guard", "HostPolicy", "MemoryRateLimiter", "RedisRateLimiter", "origin_allowed"]

logger = logging.getLogger("devenv.security")

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_INVALID_REQUEST = -32600
_UNAUTHORIZED = -32001  # JSON-RPC's server-defined range
_RATE_LIMITED = -32002


def is_loopback(host: str) -> bool:
    """``localhost``, ``*.localhost``, 127.0.0.0/8 or ::1 (never ``127.0.0.1.evil.example``)."""
    if host in LOOPBACK_NAMES:
        return True
    host = host.lower().strip("[]").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> tuple[str, str | None]:
    """``"Name:8080"`` → ``("name", "8080")``; ``"[::1]:80"`` → ``("::1", "80")``."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return "", None
        rest = value[end + 1 :]
        return value[1:end], rest[1:] if rest.startswith(":") and rest[1:] else None
    if value.count(":") == 1:
        name, _, port = value.partition(":")
        return name, port or None
    return value, None


class HostPolicy:
    """Which ``Host`` headers a server accepts on its tool paths (see the module docstring).

    Entries of the allow-list: ``name`` (any port), ``name:port``, ``.example.com`` or
    ``*.example.com`` (the domain and its subdomains), ``*`` (anything).
    """

    def __init__(self, allowed: Iterable[str] = (), bind_host: str | None = None) -> None:
        entries = [a.strip().lower() for a in allowed if a.strip()]
        self.active = bool(entries) or (bind_host is not None and is_loopback(bind_host))
        self.any = "*" in entries
        self.suffixes = tuple("." + e.lstrip("*.") for e in entries if e.startswith((".", "*.")) and e != "*")
        self.names: set[str] = set()
        self.with_port: set[tuple[str, str]] = set()
        for entry in entries:
            if entry != "*" and not entry.startswith((".", "*.")):
                name, port = split_host(entry)
                if port is None:
                    self.names.add(name)
                else:
                    self.with_port.add((name, port))

    def allows(self, header: str | None) -> bool:
        if not self.active or self.any:
            return True
        if not header:
            return False  # HTTP/1.0 without Host: nothing to check it against
        name, port = split_host(header)
        if not name or is_loopback(name) or name in self.names:
            return bool(name)
        if port is not None and (name, port) in self.with_port:
            return True
        return any(name.endswith(s) or name == s[1:] for s in self.suffixes)


def origin_allowed(origin: str | None, allowed: frozenset[str]) -> bool:
    """DNS-rebinding defence: browsers send Origin; only loopback and listed origins may call."""
    if origin is None or "*" in allowed or origin in allowed:
        return True
    try:
        host = urlsplit(origin).hostname or ""
    except ValueError:
        return False
    return is_loopback(host) if host else False


class BearerAuth:
    """``Authorization: Bearer <token>`` checked in constant time (digests of equal length compared
    with ``hmac.compare_digest``, so neither the content nor the length of the token leaks)."""

    def __init__(self, token: str) -> None:
        self._digest = hashlib.sha256(token.encode()).digest()

    def check(self, header: bytes | None) -> tuple[bool, bytes | None]:
        """(ok, digest of the presented token, or None when none was presented)."""
        if header is None:
            return False, None
        scheme, _, presented = header.strip().partition(b" ")
        if scheme.lower() != b"bearer" or not presented.strip():
            return False, None
        digest = hashlib.sha256(presented.strip()).digest()
        return hmac.compare_digest(digest, self._digest), digest


# -- rate limits ------------------------------------------------------------------------------


class RateLimiter(Protocol):
    async def take(self, key: str) -> float:
        """0.0 when a request may go now, else the seconds until the next one may."""

    async def aclose(self) -> None: ...


class MemoryRateLimiter:
    """A token bucket per key in this process: ``rate`` per second, at most ``burst`` at once."""

    _MAX_KEYS = 10_000

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def take_now(self, key: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        tokens, stamp = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        if len(self._buckets) >= self._MAX_KEYS and key not in self._buckets:
            self._buckets.clear()  # many clients: forget them all rather than grow without bound
        self._buckets[key] = (tokens, now)
        return wait

    async def take(self, key: str) -> float:
        return self.take_now(key)

    async def aclose(self) -> None:
        return None


# The bucket lives in one hash per key; Redis' own clock keeps replicas consistent.
_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter:
    """The same bucket in Redis, shared by every replica; in memory while Redis fails."""

    def __init__(
        self, url: str, rate: float, burst: int, *, prefix: str, timeout: float = 0.5, password: str | None = None
    ) -> None:
        self.url = url
        self.password = password
        self.rate = rate
        self.burst = burst
        self.prefix = prefix
        self.timeout = timeout
        self.fallback = MemoryRateLimiter(rate, burst)
        self.errors = 0
        self._client: Any = None
        self._script: Any = None
        self._failing = False

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout, password=self.password
            )
            self._script = self._client.register_script(_BUCKET_LUA)
        return self._client

    async def take(self, key: str) -> float:
        import redis

        self._redis()
        try:
            wait = float(await self._script(keys=[f"{self.prefix}:{key}"], args=[self.rate, self.burst]))
        except (redis.RedisError, OSError, ValueError) as exc:
            self.errors += 1
            if not self._failing:
                from .config import redact

                logger.warning("rate limit: Redis failed, limiting per replica until it answers: %s", redact(str(exc)))
            self._failing = True
            return self.fallback.take_now(key)
        if self._failing:
            self._failing = False
            logger.warning("rate limit: Redis is back; limits are shared across replicas again")
        return wait

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def rate_limiter(settings: Settings, service: str) -> RateLimiter | None:
    if settings.rate_limit is None:
        return None
    burst = settings.rate_burst or max(1, math.ceil(settings.rate_limit))
    if settings.redis_url:
        return RedisRateLimiter(
            settings.redis_url,
            settings.rate_limit,
            burst,
            prefix=f"devenv:ratelimit:{service}",
            password=settings.redis_password,
        )
    return MemoryRateLimiter(settings.rate_limit, burst)


# -- the middleware ---------------------------------------------------------------------------


class _Lifecycle(Protocol):
    draining: bool


class _Metrics(Protocol):
    def reject(self, reason: str) -> None: ...


def _error(scope: Scope, status: int, kind: str, message: str, code: int, headers: dict[str, str]) -> Any:
    if scope["path"] == "/mcp":
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    else:
        body = {"error": {"type": kind, "message": message}}
    raw_headers = [(b"content-type", b"application/json")]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
    data = orjson.dumps(body)
    raw_headers.append((b"content-length", str(len(data)).encode()))

    async def respond(receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": data})

    return respond


class Guard:
    """The checks of the module docstring, as one ASGI middleware in front of the app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        service: str,
        metrics: _Metrics,
        lifecycle: _Lifecycle,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.metrics = metrics
        self.lifecycle = lifecycle
        self.limiter = limiter
        self.hosts = HostPolicy(settings.allowed_hosts, settings.bind_host)
        self.origins = frozenset(settings.allowed_origins)
        self.auth = BearerAuth(settings.auth_token) if settings.auth_token else None
        self.open_paths = frozenset({"/health", "/ready"} | (set() if settings.metrics_auth else {"/metrics"}))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path in self.open_paths:
            return await self.app(scope, receive, send)
        tool_path = path == "/mcp" or path.startswith("/tools/")
        host = origin = authorization = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"host":
                host = value
            elif name == b"authorization":
                authorization = value
        reject = None
        if tool_path:
            reject = self._check_host_and_origin(scope, host, origin)
        identity = None
        if reject is None and self.auth is not None:
            ok, digest = self.auth.check(authorization)
            if not ok:
                self.metrics.reject("unauthorized")
                challenge = 'Bearer realm="devenv"' + (', error="invalid_token"' if digest is not None else "")
                reason = "the bearer token is not valid" if digest is not None else "a bearer token is required"
                reject = _error(
                    scope,
                    401,
                    "Unauthorized",
                    f"Unauthorized: {reason} (Authorization: Bearer <token>)",
                    _UNAUTHORIZED,
                    {"www-authenticate": challenge},
                )
            else:
                identity = digest.hex()[:32] if digest else None
        if reject is None and tool_path and self.limiter is not None:
            key = identity or "addr:" + (scope.get("client") or ("unknown",))[0]
            wait = await self.limiter.take(key)
            if wait > 0:
                self.metrics.reject("rate_limited")
                retry_after = str(max(1, math.ceil(wait)))
                reject = _error(
                    scope,
                    429,
                    "RateLimited",
                    f"rate limit exceeded; retry in {retry_after} s",
                    _RATE_LIMITED,
                    {"retry-after": retry_after},
                )
        if reject is not None:
            return await reject(receive, send)
        if self.lifecycle.draining:
            return await self.app(scope, receive, _closing(send))
        return await self.app(scope, receive, send)

    def _check_host_and_origin(self, scope: Scope, host: bytes | None, origin: bytes | None) -> Any:
        if self.hosts.active and not self.hosts.allows(host.decode("latin-1") if host is not None else None):
            self.metrics.reject("host")
            shown = host.decode("latin-1")[:100] if host is not None else None
            return _error(scope, 421, "MisdirectedRequest", f"Host not allowed: {shown!r}", _INVALID_REQUEST, {})
        if origin is not None and not origin_allowed(origin.decode("latin-1"), self.origins):
            self.metrics.reject("origin")
            return _error(scope, 403, "Forbidden", "Origin not allowed", _INVALID_REQUEST, {})
        return None


def _closing(send: Send) -> Send:
    """While draining, ask keep-alive clients to reconnect (to another replica, or to the next process)."""

    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
        await send(message)

    return send_closing
