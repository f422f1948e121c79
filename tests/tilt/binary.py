"""Where the real Tilt comes from: PATH, else the copy built from upstream in ../shared/third_party
(unpacked into the git-ignored .cache/tilt/ by tests/third_party.py)."""

from __future__ import annotations

from pathlib import Path

from tests.third_party import ROOT, ToolNotFound, find_tool, shared_folders

__all__ = ["ROOT", "TiltNotFound", "find_tilt"]

SHA256 = "7db288cf12bcf24c58bfe42c7c96022f459b36bf584c91d73562db6c84ca1aab"  # shared/third_party/README.md
CACHED = ROOT / ".cache" / "tilt" / "tilt"
_shared_folders = shared_folders


class TiltNotFound(ToolNotFound):
    """Neither ``tilt`` on PATH nor the shared compressed copy exists; the message says where it looked."""


def find_tilt() -> Path:
    """The ``tilt`` to run; raises TiltNotFound naming what is missing."""
    return find_tool("tilt", SHA256, cached=CACHED, folders=_shared_folders(), error=TiltNotFound)
