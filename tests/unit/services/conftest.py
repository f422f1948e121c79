"""Fixtures for the example services: a tmp vault and inbox, the sample structure, fresh caches."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv import MemoryCache
from services.content_classifier import service as content_classifier
from services.file_system import service as file_system
from services.inbox_agent import service as inbox_agent
from services.jd_classifier import service as jd_classifier
from services.notifications import service as notifications

ALL = [jd_classifier, content_classifier, file_system, notifications, inbox_agent]


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from the shipped structure, empty caches and no client left over."""
    for module in ALL:
        module.service.cache = MemoryCache()
    monkeypatch.delenv("JD_STRUCTURE_PATH", raising=False)
    monkeypatch.delenv("INBOX_MIN_SCORE", raising=False)
    monkeypatch.delenv("K8S_MODE", raising=False)
    monkeypatch.setattr(inbox_agent, "_client", None)


@pytest.fixture
def vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "vault"
    monkeypatch.setenv("VAULT_ROOT", str(root))
    return root


@pytest.fixture
def unsorted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "unsorted"
    root.mkdir()
    monkeypatch.setenv("UNSORTED_ROOT", str(root))
    return root


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its content (None for folders and links): to prove nothing changed."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
        for p in sorted(root.rglob("*"))
    }
