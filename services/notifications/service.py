"""notifications: record messages and list the newest, kept in the service's cache backend.

With ``REDIS_URL`` set the list lives in Redis, so every replica sees the same messages;
without it each process keeps its own in memory.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationError

from devenv import Service

service = Service(
    "notifications",
    port=8104,
    requires=("cache",),  # /ready fails while Redis is unreachable: notifications would be lost
    instructions="Send a notification with notify; read the newest with list_notifications.",
)

logger = logging.getLogger("services.notifications")

KEY = "notifications:log"
MAX_KEPT = 1000  # the list is trimmed to this many on every push, so it cannot grow without bound
Level = Literal["debug", "info", "warning", "error"]
Message = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class Notification(BaseModel):
    id: str = Field(description="Unique id (32 hex characters).")
    timestamp: datetime = Field(description="When it was recorded, UTC.")
    level: Level
    message: str


@service.tool
def notify(message: Message, level: Level = "info") -> Notification:
    """Record a notification and return it as stored.

    Args:
        message: What happened, in a sentence or two.
        level: Severity: debug, info, warning or error.
    """
    note = Notification(id=uuid.uuid4().hex, timestamp=datetime.now(UTC), level=level, message=message)
    service.cache.push(KEY, note.model_dump_json().encode(), MAX_KEPT)
    # Also to the log, so notifications show up in `kubectl logs` next to everything else.
    logger.log(logging.getLevelNamesMapping()[level.upper()], "notification %s: %s", note.id, message)
    return note


@service.tool(read_only=True)
def list_notifications(limit: Annotated[int, Field(ge=1, le=500)] = 50) -> list[Notification]:
    """List recorded notifications, newest first.

    Args:
        limit: The most to return, 1 to 500.
    """
    notes = []
    for raw in service.cache.items(KEY, limit):
        try:
            notes.append(Notification.model_validate_json(raw))
        except ValidationError:
            # One corrupt entry (say, written by an older version) must not hide all the others.
            logger.warning("skipping an unreadable notification entry: %r", raw[:100])
    return notes
