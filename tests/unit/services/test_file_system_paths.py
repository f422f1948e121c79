"""The vault's path guard: every way out of the root is refused, and ordinary names are not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.file_system.paths import UnsafePathError, resolve_in_root, vault_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    root.mkdir()
    return root.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    return outside


@pytest.mark.parametrize(
    ("path", "relative"),
    [
        ("a.txt", "a.txt"),
        ("10-19 Finance/11 Tax/2024 return.txt", "10-19 Finance/11 Tax/2024 return.txt"),
        ("notes/", "notes"),  # one trailing slash names a folder
        ("ünïcode/日本.md", "ünïcode/日本.md"),
        ("..hidden-ish", "..hidden-ish"),  # starts with dots but is a name, not ".."
        ("a/..b/c...", "a/..b/c..."),
        (".obsidian/config", ".obsidian/config"),
        ("~/x", "~/x"),  # no home expansion: a folder literally named "~"
    ],
)
def test_ordinary_paths_resolve_under_the_root(root, path, relative):
    assert resolve_in_root(root, path) == root / relative


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("..", "'..' is not allowed"),
        ("../x", "'..' is not allowed"),
        ("a/../../x", "'..' is not allowed"),
        ("a/../b", "'..' is not allowed"),  # even when it would stay inside: one simple rule
        ("a/..", "'..' is not allowed"),
        (".", "'.' is not allowed"),
        ("./a", "'.' is not allowed"),
        ("/etc/passwd", "absolute paths"),
        ("//server/share", "absolute paths"),
        ("/", "absolute paths"),
        ("C:/Windows", "absolute paths"),
        ("C:x", "absolute paths"),
        ("a\\b", "backslashes"),
        ("..\\..\\x", "backslashes"),
        ("a\x00b", "NUL byte"),
        ("a.txt\x00.md", "NUL byte"),
        ("", "empty path"),
        ("a//b", "empty file or folder name"),
        ("a//", "empty file or folder name"),
        (" ", "empty file or folder name"),
        ("a/ /b", "empty file or folder name"),
    ],
)
def test_unsafe_paths_are_rejected_with_the_path_named(root, path, reason):
    with pytest.raises(UnsafePathError) as info:
        resolve_in_root(root, path)
    assert info.value.path == path
    assert repr(path) in str(info.value)
    assert reason in str(info.value)
    assert list(root.iterdir()) == []  # checking never creates anything


def test_empty_path_names_the_root_only_when_allowed(root):
    assert resolve_in_root(root, "", allow_root=True) == root
    with pytest.raises(UnsafePathError):
        resolve_in_root(root, "")


def test_symlinked_folder_leading_outside_is_rejected(root, outside):
    (root / "link").symlink_to(outside, target_is_directory=True)
    for path in ("link", "link/secret.txt", "link/new/deeper.txt"):
        with pytest.raises(UnsafePathError, match="outside the vault"):
            resolve_in_root(root, path)


def test_symlinked_file_leading_outside_is_rejected(root, outside):
    (root / "secret.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(UnsafePathError, match="outside the vault") as info:
        resolve_in_root(root, "secret.txt")
    assert str(outside) not in str(info.value)  # the server's layout is not leaked


def test_dangling_symlink_leading_outside_is_rejected(root, outside):
    (root / "future.txt").symlink_to(outside / "does-not-exist-yet.txt")
    with pytest.raises(UnsafePathError, match="outside the vault"):
        resolve_in_root(root, "future.txt")


def test_relative_symlink_climbing_out_is_rejected(root, outside):
    (root / "up").symlink_to(Path("..") / "outside")
    with pytest.raises(UnsafePathError, match="outside the vault"):
        resolve_in_root(root, "up/secret.txt")


def test_chain_of_symlinks_inside_then_out_is_rejected(root, outside):
    (root / "hop2").symlink_to(outside)
    (root / "hop1").symlink_to(root / "hop2")
    with pytest.raises(UnsafePathError, match="outside the vault"):
        resolve_in_root(root, "hop1/secret.txt")


def test_symlink_staying_inside_is_followed(root):
    (root / "real").mkdir()
    (root / "alias").symlink_to(root / "real")
    assert resolve_in_root(root, "alias/a.txt") == root / "real" / "a.txt"


def test_symlink_loop_is_rejected(root):
    (root / "loop").symlink_to(root / "loop")
    with pytest.raises(UnsafePathError, match="cannot be resolved") as info:
        resolve_in_root(root, "loop/x")
    assert str(root) not in str(info.value)


def test_a_sibling_with_the_root_as_prefix_is_outside(tmp_path, root):
    # vault-evil starts with the string "vault": a prefix comparison of strings would let it through.
    (tmp_path / "vault-evil").mkdir()
    (root / "x").symlink_to(tmp_path / "vault-evil")
    with pytest.raises(UnsafePathError, match="outside the vault"):
        resolve_in_root(root, "x/file")


def test_vault_root_is_read_per_call_and_created(tmp_path, monkeypatch):
    monkeypatch.setenv("VAULT_ROOT", str(tmp_path / "one"))
    assert vault_root() == (tmp_path / "one").resolve() and (tmp_path / "one").is_dir()
    monkeypatch.setenv("VAULT_ROOT", str(tmp_path / "two" / "nested"))
    assert vault_root() == (tmp_path / "two" / "nested").resolve() and (tmp_path / "two" / "nested").is_dir()


def test_vault_root_defaults_to_vault_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("VAULT_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert vault_root() == (tmp_path / "vault").resolve()


def test_a_symlinked_root_is_fine(tmp_path, monkeypatch):
    real = tmp_path / "real-vault"
    real.mkdir()
    (tmp_path / "vault-link").symlink_to(real)
    monkeypatch.setenv("VAULT_ROOT", str(tmp_path / "vault-link"))
    root = vault_root()
    assert resolve_in_root(root, "a.txt") == real.resolve() / "a.txt"
    assert os.path.samefile(root, real)
