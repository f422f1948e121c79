"""Turn a caller's relative path into a real path that is guaranteed to lie inside the vault.

Every tool goes through ``resolve_in_root`` before touching the disk. Lexical checks come
first (no I/O), then symlinks are resolved and the result must still be under the root.
What stays open: a directory swapped for a symlink between this check and the operation
(TOCTOU); acceptable for a single-user vault, not for a hostile multi-tenant one.
"""

from __future__ import annotations

import os
from pathlib import Path, PureWindowsPath

__all__ = ["UnsafePathError", "resolve_in_root", "vault_root"]


class UnsafePathError(ValueError):
    """A path that is malformed or would reach outside the vault. ``path`` is what the caller sent."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"unsafe path {path!r}: {reason}")


def vault_root() -> Path:
    """``$VAULT_ROOT`` (default ``./vault``), resolved and created; read per call, not at import."""
    root = Path(os.environ.get("VAULT_ROOT") or "vault").expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _parts(path: str) -> list[str]:
    if "\x00" in path:
        raise UnsafePathError(path, "contains a NUL byte")
    if "\\" in path:
        raise UnsafePathError(path, "backslashes are not allowed; separate folders with '/'")
    if path.startswith("/") or PureWindowsPath(path).drive:
        raise UnsafePathError(path, "absolute paths are not allowed; give a path relative to the vault")
    parts = path.removesuffix("/").split("/")  # one trailing "/" is a harmless way to name a folder
    for part in parts:
        if not part.strip():
            raise UnsafePathError(path, "empty file or folder name")
        if part in (".", ".."):
            raise UnsafePathError(path, f"{part!r} is not allowed as a path segment")
    return parts


def resolve_in_root(root: Path, path: str, *, allow_root: bool = False) -> Path:
    """The real, symlink-free location of ``path`` under ``root`` (itself already resolved).

    ``allow_root`` lets ``""`` name the root itself (for listing); otherwise it is rejected.

    Raises:
        UnsafePathError: NUL bytes, backslashes, absolute paths, empty names, ``.``/``..``
            segments, or a symlink that leads outside the root.
    """
    if path == "" and allow_root:
        return root
    if path == "":
        raise UnsafePathError(path, "empty path")
    candidate = root.joinpath(*_parts(path))
    try:
        real = candidate.resolve()  # follows every symlink on the way, existing or not
    except (OSError, RuntimeError):  # symlink loops: RuntimeError before 3.13, OSError after
        # The exception text holds the server's absolute path; the caller only needs to know why.
        raise UnsafePathError(path, "cannot be resolved (a symlink loop?)") from None
    if not real.is_relative_to(root):
        raise UnsafePathError(path, "resolves outside the vault through a symlink")
    return real
