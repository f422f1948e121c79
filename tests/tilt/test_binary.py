"""Where the tests' Tilt comes from, and what they say when there is none."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest

from . import binary
from .conftest import tilt_or_skip


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No tilt on PATH, the shared folder and the cache in tmp_path."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(binary, "_shared_folders", lambda: [tmp_path / "shared"])
    monkeypatch.setattr(binary, "CACHED", tmp_path / "cache" / "tilt")
    return tmp_path


def test_missing_tilt_names_where_it_looked(nowhere):
    with pytest.raises(binary.TiltNotFound, match="tilt not found on PATH, nor .*shared/third_party/tilt/tilt.xz"):
        binary.find_tilt()


def test_a_copy_that_is_not_the_built_tilt_is_refused(nowhere):
    (nowhere / "shared" / "third_party" / "tilt").mkdir(parents=True)
    with lzma.open(nowhere / "shared" / "third_party" / "tilt" / "tilt.xz", "wb") as f:
        f.write(b"#!/bin/sh\necho not tilt\n")
    with pytest.raises(binary.TiltNotFound, match="does not decompress to the tilt whose sha256 is"):
        binary.find_tilt()
    assert not binary.CACHED.exists()


def test_tilt_on_path_comes_first(nowhere, monkeypatch):
    bin_dir = nowhere / "bin"
    bin_dir.mkdir()
    (bin_dir / "tilt").write_text("#!/bin/sh\n")
    (bin_dir / "tilt").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert binary.find_tilt() == bin_dir / "tilt"


def _missing() -> Path:
    raise binary.TiltNotFound("tilt not found on PATH, nor /x/shared/third_party/tilt/tilt.xz")


def test_without_tilt_the_tests_skip_naming_what_is_missing(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="tilt not found on PATH, nor /x/shared"):
        tilt_or_skip(_missing)


def test_under_ci_a_missing_tilt_fails(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the real Tilt: tilt not found on PATH"):
        tilt_or_skip(_missing)
