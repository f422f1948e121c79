"""The legacy session store and input channel on their own: bounds, expiry, fan-out, answers."""

from __future__ import annotations

import asyncio

import pytest

from devenv.legacy_input import InputRefused, InputTimedOut, LegacyInputChannel, deliver
from devenv.sessions import SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_store_is_bounded_and_forgets_idle_sessions():
    clock = Clock()
    store = SessionStore(2, idle_timeout=60, clock=clock)
    first = store.open("2025-11-25", {})
    second = store.open("2025-11-25", {"sampling": {}})
    assert first and second and first.id != second.id
    assert store.open("2025-11-25", {}) is None  # full, none idle
    clock.now += 30
    assert store.get(first.id) is first  # used: its idle clock restarts
    clock.now += 45
    assert store.get(second.id) is None  # 75 s unused: gone
    assert store.open("2025-11-25", {}) is not None  # its place is free again
    assert store.get("made-up") is None


async def test_a_session_waiting_on_its_client_is_not_idle():
    clock = Clock()
    store = SessionStore(1, idle_timeout=1, clock=clock)
    session = store.open("2025-11-25", {"roots": {}})
    sent: list[dict] = []
    channel = LegacyInputChannel(session, sent.append, timeout=30)
    waiting = asyncio.create_task(channel.request("roots/list", {}))
    await asyncio.sleep(0)
    clock.now += 3600
    assert store.get(session.id) is session
    assert deliver(session, {"jsonrpc": "2.0", "id": sent[0]["id"], "result": {"roots": []}}) is None
    assert await waiting == {"roots": []}
    assert session.pending == {}


async def test_the_channel_reports_refusals_timeouts_and_missing_capabilities():
    store = SessionStore(5, idle_timeout=60)
    session = store.open("2025-11-25", {"elicitation": {}})
    sent: list[dict] = []
    channel = LegacyInputChannel(session, sent.append, timeout=0.05)
    assert channel.supports("elicitation") and not channel.supports("sampling")

    with pytest.raises(Exception, match="sampling/createMessage needs the client capability 'sampling'"):
        await channel.request("sampling/createMessage", {"messages": [], "maxTokens": 1})
    assert sent == []  # nothing was asked

    with pytest.raises(InputTimedOut, match="did not answer elicitation/create within 0.05 s"):
        await channel.request("elicitation/create", {"message": "?"})
    assert session.pending == {}

    channel.timeout = 30
    refused = asyncio.create_task(channel.request("elicitation/create", {"message": "?"}))
    await asyncio.sleep(0)
    deliver(session, {"jsonrpc": "2.0", "id": sent[-1]["id"], "error": {"code": -1, "message": "user closed"}})
    with pytest.raises(InputRefused, match="user closed"):
        await refused


async def test_ending_a_session_fails_what_waits_on_it():
    store = SessionStore(5, idle_timeout=60)
    session = store.open("2025-11-25", {"elicitation": {}})
    channel = LegacyInputChannel(session, lambda message: None, timeout=30)
    waiting = asyncio.create_task(channel.request("elicitation/create", {"message": "?"}))
    await asyncio.sleep(0)
    assert store.close(session.id) is True and store.close(session.id) is False
    with pytest.raises(ConnectionResetError, match="ended its session"):
        await waiting


def test_a_stray_answer_names_its_id():
    session = SessionStore(1, idle_timeout=60).open("2025-11-25", {})
    assert deliver(session, {"jsonrpc": "2.0", "id": "devenv-3", "result": {}}) == (
        "no request with id 'devenv-3' is waiting for an answer in this session"
    )
    assert "no request with id 5" in deliver(session, {"jsonrpc": "2.0", "id": 5, "result": {}})


async def test_updates_reach_subscribers_only_and_wait_for_the_stream():
    store = SessionStore(5, idle_timeout=60)
    watching, other = store.open("2025-11-25", {}), store.open("2025-11-25", {})
    watching.subscriptions.add("test://a")
    assert store.resource_updated("test://a") == 1
    assert store.resource_updated("test://b") == 0
    queue = watching.open_stream()
    assert watching.open_stream() is None  # one stream per session
    assert queue.get_nowait()["params"] == {"uri": "test://a"}  # kept until the stream opened
    store.resource_updated("test://a")
    assert queue.get_nowait()["method"] == "notifications/resources/updated"
    assert other.open_stream().empty()
    watching.close_stream(queue)
    assert watching.open_stream() is not None


async def test_resource_updated_reaches_each_app_and_refuses_an_unknown_uri():
    from devenv import Service, create_app
    from devenv.errors import ResourceNotFound

    service = Service("watched")

    @service.resource("test://w", name="w")
    def w() -> str:
        return "w"

    app = create_app(service)
    session = app.state.runtime.sessions.open("2025-11-25", {})
    session.subscriptions.add("test://w")
    service.resource_updated("test://w")
    assert session.open_stream().get_nowait()["params"] == {"uri": "test://w"}
    with pytest.raises(ResourceNotFound, match="test://typo"):
        service.resource_updated("test://typo")
