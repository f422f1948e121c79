"""file-system: list, read, write and move files inside the vault at ``$VAULT_ROOT``."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from devenv import Service

from .paths import resolve_in_root, vault_root

service = Service(
    "file-system",
    port=8103,
    settings=("VAULT_ROOT",),
    instructions="Files in one vault directory. Paths are relative to the vault, separated by '/'.",
)

MAX_READ_BYTES = 1024 * 1024  # one answer must fit the server's default request/response budget


class Entry(BaseModel):
    name: str
    path: str = Field(description="Path relative to the vault root.")
    kind: Literal["file", "directory", "symlink", "other"]
    size: int | None = Field(description="Size in bytes, for files only.")


class Listing(BaseModel):
    path: str = Field(description='The listed folder, relative to the vault root ("" is the root).')
    entries: list[Entry] = Field(description="Sorted by name. Symlinks are reported, not followed.")


class FileContent(BaseModel):
    path: str
    content: str
    size: int = Field(description="Size in bytes.")


class FileInfo(BaseModel):
    path: str
    size: int = Field(description="Size in bytes.")


class Moved(BaseModel):
    src: str
    dst: str


def _relative(root: Path, real: Path) -> str:
    return real.relative_to(root).as_posix() if real != root else ""


def _entry(root: Path, child: Path) -> Entry:
    info = child.lstat()  # lstat: a symlink is described, never followed out of the vault
    if stat.S_ISLNK(info.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(info.st_mode):
        kind = "directory"
    elif stat.S_ISREG(info.st_mode):
        kind = "file"
    else:
        kind = "other"
    return Entry(name=child.name, path=_relative(root, child), kind=kind, size=info.st_size if kind == "file" else None)


@service.tool(read_only=True)
def list_files(path: str = "") -> Listing:
    """List the files and folders directly inside a vault folder (not recursive).

    Args:
        path: Folder relative to the vault root, e.g. "10-19 Finance"; empty for the root.
    """
    root = vault_root()
    real = resolve_in_root(root, path, allow_root=True)
    if not real.exists():
        raise FileNotFoundError(f"no such folder in the vault: {path!r}")
    if not real.is_dir():
        raise NotADirectoryError(f"not a folder: {path!r}")
    entries = [_entry(root, child) for child in sorted(real.iterdir(), key=lambda p: p.name)]
    return Listing(path=_relative(root, real), entries=entries)


@service.tool(read_only=True)
def read_file(path: str) -> FileContent:
    """Read a UTF-8 text file from the vault (at most 1 MiB).

    Args:
        path: File path relative to the vault root, e.g. "10-19 Finance/11 Tax/2024 return.txt".
    """
    root = vault_root()
    real = resolve_in_root(root, path)
    if real.is_dir():
        raise IsADirectoryError(f"is a folder, not a file: {path!r}")
    if not real.is_file():
        raise FileNotFoundError(f"no such file in the vault: {path!r}")
    size = real.stat().st_size
    if size > MAX_READ_BYTES:
        raise ValueError(f"{path!r} is {size} bytes; read_file returns at most {MAX_READ_BYTES}")
    data = real.read_bytes()
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path!r} is not UTF-8 text") from None
    return FileContent(path=_relative(root, real), content=content, size=len(data))


@service.tool(idempotent=True)
def write_file(path: str, content: str) -> FileInfo:
    """Create or replace a text file in the vault (UTF-8), creating missing parent folders.

    The write is atomic: readers see the old file or the new one, never half of it.
    Writing the same content twice leaves the same result.

    Args:
        path: File path relative to the vault root; parent folders are created as needed.
        content: The complete new text of the file.
    """
    root = vault_root()
    real = resolve_in_root(root, path)
    if real.is_dir():
        raise IsADirectoryError(f"is a folder, cannot write a file there: {path!r}")
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(f"a parent of {path!r} is a file, not a folder") from None
    data = content.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=".write-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, real)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return FileInfo(path=_relative(root, real), size=len(data))


@service.tool(destructive=True)
def move_file(src: str, dst: str) -> Moved:
    """Move (rename) a file within the vault. Never overwrites: fails if dst already exists.

    Missing parent folders of dst are created.

    Args:
        src: Existing file, relative to the vault root.
        dst: New location, relative to the vault root; must not exist yet.
    """
    root = vault_root()
    real_src = resolve_in_root(root, src)
    real_dst = resolve_in_root(root, dst)
    if real_src.is_dir():
        raise IsADirectoryError(f"is a folder; move_file moves files only: {src!r}")
    if not real_src.is_file():
        raise FileNotFoundError(f"no such file in the vault: {src!r}")
    if os.path.lexists(real_dst):
        raise FileExistsError(f"refusing to overwrite existing {dst!r}")
    try:
        real_dst.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(f"a parent of {dst!r} is a file, not a folder") from None
    try:
        # link() fails if dst exists, so a file created since the check above is never clobbered.
        os.link(real_src, real_dst)
    except FileExistsError:
        raise FileExistsError(f"refusing to overwrite existing {dst!r}") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        os.rename(real_src, real_dst)  # no hard links on this filesystem: the lexists check must do
    else:
        os.unlink(real_src)
    return Moved(src=_relative(root, real_src), dst=_relative(root, real_dst))
