"""Tools the tests take from PATH, else from the copies built from upstream in ../shared/third_party.

Each shared copy is ``<tool>/<tool>.xz``; it is decompressed once into the git-ignored ``.cache/<tool>/``
of the checkout (never into the tracked tree), checked against the sha256 the shared README gives,
and renamed into place atomically so that concurrent runs see the whole binary or none.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["ROOT", "ToolNotFound", "find_tool", "shared_folders"]

ROOT = Path(__file__).resolve().parents[1]


class ToolNotFound(RuntimeError):
    """Neither the tool on PATH nor its shared compressed copy exists; the message says where it looked."""


def shared_folders() -> list[Path]:
    """``../shared`` beside this checkout, and beside the main checkout when this is a git worktree."""
    folders = [ROOT.parent / "shared"]
    try:
        common = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--path-format=absolute", "--git-common-dir"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        common = ""
    if common:
        folders.append(Path(common).parent.parent / "shared")
    return list(dict.fromkeys(folders))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_tool(
    name: str,
    sha256: str,
    *,
    cached: Path | None = None,
    folders: list[Path] | None = None,
    error: type[ToolNotFound] = ToolNotFound,
) -> Path:
    """``name`` on PATH, else its shared copy unpacked into ``cached``; raises ``error`` naming what is missing."""
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    cached = cached or ROOT / ".cache" / name / name
    candidates = [folder / "third_party" / name / f"{name}.xz" for folder in (folders or shared_folders())]
    compressed = next((c for c in candidates if c.is_file()), None)
    if compressed is None:
        raise error(f"{name} not found on PATH, nor {' nor '.join(str(c) for c in candidates)}")
    if cached.is_file() and _sha256(cached) == sha256:
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f"{name}.{os.getpid()}.partial")
    with lzma.open(compressed) as src, partial.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    if _sha256(partial) != sha256:
        partial.unlink()
        raise error(f"{compressed} does not decompress to the {name} whose sha256 is {sha256}")
    partial.chmod(0o755)
    partial.replace(cached)
    return cached
