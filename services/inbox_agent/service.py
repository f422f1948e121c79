"""inbox-agent: classify each file in ``$UNSORTED_ROOT`` and move it into the vault.

It reaches the other services only through ``MCPClient``, so the same code calls them
in-process in a test and over HTTP between Pods with ``K8S_MODE=true``. The tool is a
plain ``def``: the client's calls block, and the server runs sync tools in a worker thread.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from pathlib import Path

from pydantic import BaseModel, Field

from devenv import ConfigError, DevenvError, MCPClient, Service, ToolError

service = Service(
    "inbox-agent",
    port=8105,
    settings=("UNSORTED_ROOT", "INBOX_MIN_SCORE"),
    calls=("jd-classifier", "content-classifier", "file-system", "notifications"),
    instructions="Run process_inbox to file everything in the unsorted inbox into the Johnny.Decimal vault.",
)

logger = logging.getLogger("services.inbox_agent")

MAX_BYTES = 512 * 1024  # leaves room for JSON escaping within the server's 1 MiB body limit
DEFAULT_MIN_SCORE = 0.15

_client: MCPClient | None = None
_client_lock = threading.Lock()


def client() -> MCPClient:
    """One client per process, made on first use: its HTTP connection pool is reused across runs."""
    global _client
    with _client_lock:
        if _client is None:
            _client = MCPClient()
        return _client


class MovedFile(BaseModel):
    source: str = Field(description="File name in the unsorted inbox.")
    destination: str = Field(description="Where it now is, relative to the vault root.")
    category: str = Field(description='The category label, e.g. "11 Tax".')
    score: float = Field(description="The classifier's score for that category, 0..1.")


class SkippedFile(BaseModel):
    file: str = Field(description="File name in the unsorted inbox; it was left there.")
    reason: str


class InboxReport(BaseModel):
    moved: list[MovedFile]
    skipped: list[SkippedFile]
    notification_id: str | None = Field(description="The summary notification, or null if none was sent.")


class _Skip(Exception):
    """This file stays in the inbox, for the reason given."""


def _min_score() -> float:
    raw = os.environ.get("INBOX_MIN_SCORE", "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_MIN_SCORE
    except ValueError:
        raise ConfigError(f"INBOX_MIN_SCORE={raw!r} is not a number") from None
    if not 0 <= value <= 1:
        raise ConfigError(f"INBOX_MIN_SCORE={raw!r} must be between 0 and 1")
    return value


def _read_text(path: Path) -> str:
    info = path.lstat()  # lstat: a symlink is judged as a link, never followed out of the inbox
    if stat.S_ISLNK(info.st_mode):
        raise _Skip("is a symlink; links are not followed")
    if stat.S_ISDIR(info.st_mode):
        raise _Skip("is a folder; only files at the top of the inbox are processed")
    if not stat.S_ISREG(info.st_mode):
        raise _Skip("not a regular file")  # reading a FIFO or device could block forever
    if info.st_size > MAX_BYTES:
        raise _Skip(f"too large: {info.st_size} bytes, the limit is {MAX_BYTES}")
    data = path.read_bytes()
    if not data.strip():
        raise _Skip("empty")
    if b"\x00" in data:
        raise _Skip("not text: contains NUL bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Skip("not UTF-8 text") from None


def _free_name(mcp: MCPClient, folder: str, name: str, text: str) -> tuple[str, bool]:
    """A vault path for ``name`` in ``folder`` that overwrites nothing; True if it is already there.

    write_file replaces files, so an existing file of the same name gets "name (2).ext";
    one with identical content means a previous run wrote it but did not get to delete
    the inbox copy, so the move just finishes. Check-then-write is racy only against a
    second agent filing into the same folder at the same moment, which one inbox rules out.
    """
    try:
        listing = mcp.call("file-system/list_files", {"path": folder})
        taken = {entry["name"] for entry in listing["entries"]}
    except ToolError as exc:
        if exc.error_type != "FileNotFoundError":
            raise
        taken = set()  # the category folder does not exist yet
    stem, dot, suffix = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    candidate, n = name, 1
    while candidate in taken:
        try:
            if mcp.call("file-system/read_file", {"path": f"{folder}/{candidate}"})["content"] == text:
                return f"{folder}/{candidate}", True
        except ToolError:
            pass  # a folder, binary or huge file of that name: certainly not ours, so try the next name
        n += 1
        candidate = f"{stem} ({n}){dot}{suffix}"
    return f"{folder}/{candidate}", False


def _file_one(mcp: MCPClient, path: Path, min_score: float) -> MovedFile:
    text = _read_text(path)
    title = re.sub(r"[-_.]+", " ", path.stem)  # "2024_tax-invoice" reads as words to the classifier
    result = mcp.call("content-classifier/classify", {"text": f"{title}\n\n{text}", "top_k": 1})
    if not result["categories"]:
        raise _Skip("no category's keywords occur in it")
    best = result["categories"][0]
    if best["score"] < min_score:
        raise _Skip(f"best match {best['label']} scored {best['score']:.2f}, below the threshold {min_score:.2f}")
    category = mcp.call("jd-classifier/find_category", {"query": best["id"]})
    destination, already_there = _free_name(mcp, category["path"], path.name, text)
    if not already_there:
        destination = mcp.call("file-system/write_file", {"path": destination, "content": text})["path"]
    try:
        path.unlink()  # only now: the vault has the content, so deleting the inbox copy loses nothing
    except OSError as exc:  # the next run sees identical content in the vault and finishes the move
        raise _Skip(f"copied to {destination!r} but not removed from the inbox: {exc.strerror or exc}") from None
    return MovedFile(source=path.name, destination=destination, category=category["label"], score=best["score"])


def _summary(moved: list[MovedFile], skipped: list[SkippedFile]) -> str:
    lines = [f"Inbox: {len(moved)} moved, {len(skipped)} skipped."]
    lines += [f"{m.source} -> {m.destination}" for m in moved]
    lines += [f"{s.file} skipped: {s.reason}" for s in skipped]
    text = "\n".join(lines)
    return text if len(text) <= 4000 else text[:3997] + "..."  # notify accepts up to 4000 characters


@service.tool(destructive=True)
def process_inbox() -> InboxReport:
    """File every file in the unsorted inbox into the Johnny.Decimal vault, and report what happened.

    For each file at the top of $UNSORTED_ROOT (default ./unsorted; hidden files are
    ignored): classify its text with content-classifier, look the winning category up in
    jd-classifier, write it into the vault through file-system under
    "<area>/<category>/<file name>", and only then delete it from the inbox. Files that
    are empty, not UTF-8 text, too large (over 512 KiB), or classified with a score below
    $INBOX_MIN_SCORE (default 0.15) stay in the inbox and are listed as skipped with the
    reason. A summary goes to the notifications service.
    """
    inbox = Path(os.environ.get("UNSORTED_ROOT") or "unsorted")
    min_score = _min_score()
    if not inbox.is_dir():
        raise FileNotFoundError(f"the unsorted inbox {str(inbox)!r} does not exist or is not a folder")
    mcp = client()
    moved: list[MovedFile] = []
    skipped: list[SkippedFile] = []
    # Hidden files (.DS_Store, .gitkeep) are tooling litter, not documents: ignored, not reported.
    for path in sorted(p for p in inbox.iterdir() if not p.name.startswith(".")):
        try:
            moved.append(_file_one(mcp, path, min_score))
        except _Skip as skip:
            skipped.append(SkippedFile(file=path.name, reason=str(skip)))
        except OSError as exc:  # e.g. no permission to read it
            skipped.append(SkippedFile(file=path.name, reason=f"cannot be read: {exc.strerror or exc}"))
        except DevenvError as exc:  # one failing call skips one file; the rest of the inbox still moves
            skipped.append(SkippedFile(file=path.name, reason=f"a service call failed: {exc}"))
    notification_id = None
    if moved or skipped:
        level = "warning" if skipped else "info"
        try:
            note = mcp.call("notifications/notify", {"message": _summary(moved, skipped), "level": level})
            notification_id = note["id"]
        except DevenvError as exc:  # the files have moved; a lost notice must not hide that report
            logger.warning("could not send the inbox notification: %s", exc)
    return InboxReport(moved=moved, skipped=skipped, notification_id=notification_id)
