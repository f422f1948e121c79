"""Where the real Tilt comes from: PATH, else the copy built from upstream in ../shared/third_party.

The shared copy is xz-compressed; it is decompressed once into the git-ignored .cache/tilt/
of the checkout (never into the tracked tree) and checked against the sha256 its README gives.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["ROOT", "TiltNotFound", "find_tilt"]

ROOT = Path(__file__).resolve().parents[2]
SHARED_TILT = Path("third_party") / "tilt" / "tilt.xz"
SHA256 = "7db288cf12bcf24c58bfe42c7c96022f459b36bf584c91d73562db6c84ca1aab"  # shared/third_party/README.md
CACHED = ROOT / ".cache" / "tilt" / "tilt"


class TiltNotFound(RuntimeError):
    """Neither ``tilt`` on PATH nor the shared compressed copy exists; the message says where it looked."""


def _shared_folders() -> list[Path]:
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


def find_tilt() -> Path:
    """The ``tilt`` to run; raises TiltNotFound naming what is missing."""
    on_path = shutil.which("tilt")
    if on_path:
        return Path(on_path)
    candidates = [folder / SHARED_TILT for folder in _shared_folders()]
    compressed = next((c for c in candidates if c.is_file()), None)
    if compressed is None:
        raise TiltNotFound(f"tilt not found on PATH, nor {' nor '.join(str(c) for c in candidates)}")
    if CACHED.is_file() and _sha256(CACHED) == SHA256:
        return CACHED
    CACHED.parent.mkdir(parents=True, exist_ok=True)
    partial = CACHED.with_name(f"tilt.{os.getpid()}.partial")
    with lzma.open(compressed) as src, partial.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    if _sha256(partial) != SHA256:
        partial.unlink()
        raise TiltNotFound(f"{compressed} does not decompress to the Tilt whose sha256 is {SHA256}")
    partial.chmod(0o755)
    partial.replace(CACHED)  # atomic: a concurrent run sees the whole binary or none
    return CACHED
