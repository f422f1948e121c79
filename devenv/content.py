"""Typed content a tool or a prompt returns: text, image, audio, embedded resources, links.

A tool annotated ``-> Image`` (or ``-> list[Text | Image]``) answers MCP ``content`` blocks
instead of ``structuredContent``. Each value turns into the JSON block the wire sends, so an
in-process call returns exactly what a remote caller reads.
"""

from __future__ import annotations

import base64
import collections.abc
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Audio",
    "Content",
    "EmbeddedResource",
    "Image",
    "Message",
    "ResourceLink",
    "Text",
]


def _b64(data: bytes | str) -> str:
    # bytes are encoded here; a str is taken as base64 already (checked, so a typo fails here).
    if isinstance(data, bytes):
        return base64.b64encode(data).decode()
    if not isinstance(data, str):
        raise TypeError(f"data must be bytes or a base64 str, got {type(data).__name__}")
    try:
        base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise ValueError(f"data is a str but not valid base64: {exc}") from None
    return data


def _check_mime(mime_type: Any, what: str) -> None:
    if not isinstance(mime_type, str) or "/" not in mime_type:
        raise ValueError(f"{what} needs a MIME type like 'image/png', got {mime_type!r}")


class Content:
    """Base of every content value; ``to_json()`` is its MCP content block."""

    def to_json(self) -> dict[str, Any]:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class Text(Content):
    text: str

    def to_json(self) -> dict[str, Any]:
        if not isinstance(self.text, str):
            raise TypeError(f"Text.text must be a str, got {type(self.text).__name__}")
        return {"type": "text", "text": self.text}


@dataclass(frozen=True)
class Image(Content):
    """``data``: the image's bytes (or base64 text); ``mime_type`` e.g. ``image/png``."""

    data: bytes | str
    mime_type: str

    def to_json(self) -> dict[str, Any]:
        _check_mime(self.mime_type, "Image")
        return {"type": "image", "data": _b64(self.data), "mimeType": self.mime_type}


@dataclass(frozen=True)
class Audio(Content):
    """``data``: the audio's bytes (or base64 text); ``mime_type`` e.g. ``audio/wav``."""

    data: bytes | str
    mime_type: str

    def to_json(self) -> dict[str, Any]:
        _check_mime(self.mime_type, "Audio")
        return {"type": "audio", "data": _b64(self.data), "mimeType": self.mime_type}


@dataclass(frozen=True)
class EmbeddedResource(Content):
    """A resource's contents inline: ``text`` (a str) or ``blob`` (bytes), never both."""

    uri: str
    text: str | None = None
    blob: bytes | None = None
    mime_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        if (self.text is None) == (self.blob is None):
            raise ValueError(f"EmbeddedResource {self.uri!r} needs exactly one of text= or blob=")
        resource: dict[str, Any] = {"uri": self.uri}
        if self.text is not None:
            resource["mimeType"] = self.mime_type or "text/plain"
            resource["text"] = self.text
        else:
            resource["mimeType"] = self.mime_type or "application/octet-stream"
            resource["blob"] = _b64(self.blob)  # type: ignore[arg-type]
        return {"type": "resource", "resource": resource}


@dataclass(frozen=True)
class ResourceLink(Content):
    """A pointer to a resource the client may read later with ``resources/read``."""

    uri: str
    name: str
    description: str | None = None
    mime_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        block: dict[str, Any] = {"type": "resource_link", "uri": self.uri, "name": self.name}
        if self.description is not None:
            block["description"] = self.description
        if self.mime_type is not None:
            block["mimeType"] = self.mime_type
        return block


@dataclass(frozen=True)
class Message:
    """One prompt message: ``content`` is a ``Content`` value or plain text."""

    role: Literal["user", "assistant"]
    content: Content | str

    def to_json(self) -> dict[str, Any]:
        if self.role not in ("user", "assistant"):
            raise ValueError(f"a prompt message's role is 'user' or 'assistant', got {self.role!r}")
        content = Text(self.content) if isinstance(self.content, str) else self.content
        if not isinstance(content, Content):
            raise TypeError(f"a prompt message's content is Text, Image, ... or a str, got {type(content).__name__}")
        return {"role": self.role, "content": content.to_json()}


def content_blocks(value: Any) -> list[dict[str, Any]]:
    """A ``Content`` value or a list of them → the MCP ``content`` array."""
    items = value if isinstance(value, (list, tuple)) else [value]
    blocks = []
    for item in items:
        if not isinstance(item, Content):
            raise TypeError(f"expected Text, Image, Audio, EmbeddedResource or ResourceLink, got {type(item).__name__}")
        blocks.append(item.to_json())
    return blocks


def _is_content_type(tp: Any) -> bool:
    if isinstance(tp, type):
        return issubclass(tp, Content)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return all(_is_content_type(arg) for arg in typing.get_args(tp))
    return False


def is_content_annotation(tp: Any) -> bool:
    """True for ``Image``, ``Text | Image``, ``list[Content]``, ``tuple[Text, ...]`` and the like."""
    if _is_content_type(tp):
        return True
    origin = typing.get_origin(tp)
    if origin in (list, tuple, collections.abc.Sequence):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return bool(args) and all(_is_content_type(a) for a in args)
    return False
