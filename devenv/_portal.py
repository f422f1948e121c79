"""Run coroutines from synchronous code on one long-lived background event loop.

``asyncio.run`` per call would build and tear down a loop each time (and fails inside a
running loop); a single daemon loop thread makes sync calls into async code cheap.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="devenv-portal", daemon=True).start()
            _loop = loop
    return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Block until ``coro`` finishes on the background loop and return its result."""
    return asyncio.run_coroutine_threadsafe(coro, _background_loop()).result()
