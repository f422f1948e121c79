"""file-system tools: round trips, listings, moves that never overwrite, and no way out of the vault."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devenv import ToolError
from services.file_system import service as fs_module
from services.file_system.service import service

from .conftest import tree


def run(tool: str, **arguments):
    return service.tools[tool].run(arguments)


def fails(tool: str, error_type: str, **arguments) -> str:
    with pytest.raises(ToolError) as info:
        run(tool, **arguments)
    assert info.value.error_type == error_type, info.value
    return info.value.message


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    return outside


def test_write_then_read_round_trips_utf8_and_creates_folders(vault):
    content = "Grüße — 税 ✓\nline two\n"
    info = run("write_file", path="10-19 Finance/11 Tax/2024.md", content=content)
    assert info == {"path": "10-19 Finance/11 Tax/2024.md", "size": len(content.encode())}
    assert (vault / "10-19 Finance/11 Tax/2024.md").read_text(encoding="utf-8") == content
    assert run("read_file", path="10-19 Finance/11 Tax/2024.md") == {**info, "content": content}


def test_write_is_idempotent_and_replaces_without_leftovers(vault):
    first = run("write_file", path="a.txt", content="one")
    assert run("write_file", path="a.txt", content="one") == first
    run("write_file", path="a.txt", content="two")
    assert tree(vault) == {"a.txt": b"two"}  # no temp files left behind


def test_write_onto_a_folder_or_under_a_file_fails(vault):
    run("write_file", path="folder/a.txt", content="x")
    assert "is a folder" in fails("write_file", "IsADirectoryError", path="folder", content="x")
    assert "is a file" in fails("write_file", "NotADirectoryError", path="folder/a.txt/b.txt", content="x")
    assert tree(vault) == {"folder": None, "folder/a.txt": b"x"}


def test_list_files_sorted_with_kinds_and_sizes(vault):
    run("write_file", path="b.txt", content="hello")
    run("write_file", path="a/inner.txt", content="x")
    (vault / "link").symlink_to(vault / "b.txt")
    listing = run("list_files")
    assert listing == {
        "path": "",
        "entries": [
            {"name": "a", "path": "a", "kind": "directory", "size": None},
            {"name": "b.txt", "path": "b.txt", "kind": "file", "size": 5},
            {"name": "link", "path": "link", "kind": "symlink", "size": None},
        ],
    }
    assert run("list_files", path="a/")["entries"] == [
        {"name": "inner.txt", "path": "a/inner.txt", "kind": "file", "size": 1}
    ]


def test_list_files_on_a_fresh_vault_creates_it_empty(vault):
    assert run("list_files") == {"path": "", "entries": []}
    assert vault.is_dir()


def test_list_files_errors_name_the_path(vault):
    run("write_file", path="f.txt", content="x")
    assert "'nope'" in fails("list_files", "FileNotFoundError", path="nope")
    assert "'f.txt'" in fails("list_files", "NotADirectoryError", path="f.txt")


def test_read_file_errors(vault, monkeypatch):
    (vault / "dir").mkdir(parents=True)
    (vault / "binary.bin").write_bytes(b"\xff\xfe\x00")
    (vault / "big.txt").write_text("x" * 11)
    monkeypatch.setattr(fs_module, "MAX_READ_BYTES", 10)
    assert "'missing.txt'" in fails("read_file", "FileNotFoundError", path="missing.txt")
    assert "is a folder" in fails("read_file", "IsADirectoryError", path="dir")
    assert "not UTF-8" in fails("read_file", "ValueError", path="binary.bin")
    assert "11 bytes" in fails("read_file", "ValueError", path="big.txt")


# -- nothing escapes: every tool refuses, and neither the vault nor the outside changes -----------

ESCAPES = ["../escape.txt", "a/../../escape.txt", "/tmp/escape.txt", "a\x00.txt", "", "a//b.txt", "..\\escape.txt"]


@pytest.mark.parametrize("bad", ESCAPES)
def test_every_tool_rejects_unsafe_paths_and_touches_nothing(tmp_path, vault, outside, bad):
    run("write_file", path="keep.txt", content="keep")
    before = tree(tmp_path)
    calls = [
        ("read_file", {"path": bad}),
        ("write_file", {"path": bad, "content": "pwned"}),
        ("move_file", {"src": "keep.txt", "dst": bad}),
        ("move_file", {"src": bad, "dst": "moved.txt"}),
    ]
    if bad:  # "" is the root for list_files, by design
        calls.append(("list_files", {"path": bad}))
    for tool, arguments in calls:
        message = fails(tool, "UnsafePathError", **arguments)
        assert repr(bad) in message
    assert tree(tmp_path) == before
    assert not Path("/tmp/escape.txt").exists()


def test_symlink_out_of_the_vault_is_refused_by_every_tool(tmp_path, vault, outside):
    vault.mkdir()
    (vault / "out").symlink_to(outside, target_is_directory=True)
    (vault / "secret-link.txt").symlink_to(outside / "secret.txt")
    run("write_file", path="keep.txt", content="keep")
    before = tree(tmp_path)
    for tool, arguments in [
        ("read_file", {"path": "secret-link.txt"}),
        ("read_file", {"path": "out/secret.txt"}),
        ("list_files", {"path": "out"}),
        ("write_file", {"path": "out/new.txt", "content": "pwned"}),
        ("write_file", {"path": "secret-link.txt", "content": "pwned"}),
        ("move_file", {"src": "out/secret.txt", "dst": "stolen.txt"}),
        ("move_file", {"src": "keep.txt", "dst": "out/keep.txt"}),
    ]:
        assert "outside the vault" in fails(tool, "UnsafePathError", **arguments)
    assert tree(tmp_path) == before
    assert (outside / "secret.txt").read_text() == "secret"


# -- move_file --------------------------------------------------------------------------------


def test_move_renames_and_creates_the_destination_folder(vault):
    run("write_file", path="inbox/a.txt", content="A")
    assert run("move_file", src="inbox/a.txt", dst="10-19 Finance/11 Tax/a.txt") == {
        "src": "inbox/a.txt",
        "dst": "10-19 Finance/11 Tax/a.txt",
    }
    assert tree(vault) == {
        "10-19 Finance": None,
        "10-19 Finance/11 Tax": None,
        "10-19 Finance/11 Tax/a.txt": b"A",
        "inbox": None,
    }


def test_move_refuses_to_overwrite(vault):
    run("write_file", path="a.txt", content="A")
    run("write_file", path="b.txt", content="B")
    assert "refusing to overwrite existing 'b.txt'" in fails("move_file", "FileExistsError", src="a.txt", dst="b.txt")
    assert "refusing to overwrite" in fails("move_file", "FileExistsError", src="a.txt", dst="a.txt")
    assert tree(vault) == {"a.txt": b"A", "b.txt": b"B"}


def test_move_refuses_a_folder_and_follows_links_that_stay_inside(vault):
    run("write_file", path="a.txt", content="A")
    run("write_file", path="folder/x.txt", content="X")
    (vault / "dangling").symlink_to(vault / "nowhere")
    fails("move_file", "FileExistsError", src="a.txt", dst="folder")
    # Links inside the vault are followed like any path: "dangling" names its free target "nowhere".
    run("move_file", src="a.txt", dst="dangling")
    assert (vault / "nowhere").read_text() == "A"


def test_move_never_clobbers_a_file_that_appears_after_the_check(vault, monkeypatch):
    run("write_file", path="a.txt", content="A")
    run("write_file", path="b.txt", content="B")
    monkeypatch.setattr(os.path, "lexists", lambda path: False)  # the race: dst appears after the check
    fails("move_file", "FileExistsError", src="a.txt", dst="b.txt")
    assert tree(vault) == {"a.txt": b"A", "b.txt": b"B"}


def test_move_errors_for_missing_sources_and_folders(vault):
    run("write_file", path="folder/x.txt", content="X")
    assert "'ghost.txt'" in fails("move_file", "FileNotFoundError", src="ghost.txt", dst="b.txt")
    assert "files only" in fails("move_file", "IsADirectoryError", src="folder", dst="elsewhere")
    assert tree(vault) == {"folder": None, "folder/x.txt": b"X"}


def test_annotations_tell_clients_what_is_safe():
    hints = {name: tool.annotations for name, tool in service.tools.items()}
    assert hints["list_files"]["readOnlyHint"] and hints["read_file"]["readOnlyHint"]
    assert hints["write_file"] == {"readOnlyHint": False, "idempotentHint": True}
    assert hints["move_file"] == {"readOnlyHint": False, "idempotentHint": False, "destructiveHint": True}
