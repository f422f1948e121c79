"""The file-system service attacked over both wires: traversal, absolute paths, symlinks out of
the root, NUL bytes, huge files. Each is refused with a clear error (REST 400 / 413, MCP
``isError``) and no file is touched, inside the vault or out of it."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devenv import MemoryCache, create_app
from devenv.config import Settings
from services.file_system import service as fs
from tests.conftest import serve_in_thread
from tests.hardening import tally
from tests.hardening.tally import FUZZ


def snapshot(*roots: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``roots`` with its mode and content: proof that nothing changed."""
    state = {}
    for root in roots:
        for path in sorted([root, *root.rglob("*")]):
            info = path.lstat()
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
            state[str(path)] = (info.st_mode, info.st_mtime_ns, content)
    return state


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A vault with a file, a folder and three symlinks (out to a folder, out to a file, a loop),
    and a folder outside it holding a secret."""
    base = tmp_path_factory.mktemp("fs-attacks")
    vault, outside = base / "vault", base / "outside"
    (vault / "notes").mkdir(parents=True)
    (vault / "notes" / "a.txt").write_text("inside")
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, vault / "link-out")
    os.symlink(outside / "secret.txt", vault / "link-file")
    os.symlink(vault / "loop", vault / "loop")
    (vault / "big.txt").write_bytes(b"x" * (fs.MAX_READ_BYTES + 1))
    return vault, outside


@pytest.fixture(scope="module")
def url(world):
    vault, _ = world
    mp = pytest.MonkeyPatch()
    mp.setenv("VAULT_ROOT", str(vault))
    fs.service.cache = MemoryCache()
    try:
        with serve_in_thread(create_app(fs.service, Settings(max_body_bytes=256 * 1024))) as base:
            yield base
    finally:
        mp.undo()


def outside_paths(world) -> list[str]:
    _, outside = world
    return [str(outside / "secret.txt"), str(outside)]


BAD = [
    ("../outside/secret.txt", "'..' is not allowed"),
    ("notes/../../outside/secret.txt", "'..' is not allowed"),
    ("..", "'..' is not allowed"),
    ("/etc/passwd", "absolute paths"),
    ("//server/share/x", "absolute paths"),
    ("C:/Windows/win.ini", "absolute paths"),
    ("notes\\..\\..\\outside", "backslashes"),
    ("link-out/secret.txt", "outside the vault"),
    ("link-out", "outside the vault"),
    ("link-file", "outside the vault"),
    ("notes/a.txt\x00.png", "NUL"),
    ("\x00", "NUL"),
    ("loop", "cannot be resolved"),
    ("", "empty"),
    ("notes//a.txt", "empty file or folder name"),
]


def rest(url: str, tool: str, arguments: dict) -> httpx.Response:
    return httpx.post(f"{url}/tools/{tool}", json=arguments, timeout=30)


def mcp(url: str, tool: str, arguments: dict) -> dict:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    return httpx.post(f"{url}/mcp", json=body, timeout=30).json()["result"]


def attempts(path: str) -> list[tuple[str, dict]]:
    return [
        ("read_file", {"path": path}),
        ("write_file", {"path": path, "content": "pwned"}),
        ("move_file", {"src": "notes/a.txt", "dst": path}),
        ("move_file", {"src": path, "dst": "notes/moved.txt"}),
    ] + ([("list_files", {"path": path})] if path else [])


@pytest.mark.parametrize(("path", "reason"), BAD)
def test_every_escape_is_refused_on_both_wires_and_nothing_is_touched(world, url, path, reason):
    vault, outside = world
    before = snapshot(vault, outside)
    for tool, arguments in attempts(path):
        r = rest(url, tool, arguments)
        assert r.status_code == 400, (tool, r.status_code, r.text)
        error = r.json()["error"]
        assert error["error_type"] == "UnsafePathError" and reason in error["detail"], (tool, error)
        result = mcp(url, tool, arguments)
        assert result["isError"] is True and reason in result["content"][0]["text"], (tool, result)
    assert snapshot(vault, outside) == before


def test_errors_never_reveal_the_servers_own_paths(world, url):
    vault, outside = world
    for path, _ in BAD:
        for tool, arguments in attempts(path):
            text = rest(url, tool, arguments).text
            assert str(vault) not in text and str(outside) not in text


def test_a_body_over_the_limit_is_413_and_writes_nothing(world, url):
    vault, outside = world
    before = snapshot(vault, outside)
    r = rest(url, "write_file", {"path": "notes/huge.txt", "content": "x" * (300 * 1024)})
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
    assert snapshot(vault, outside) == before


def test_a_file_over_the_read_limit_is_refused_with_its_size(url):
    r = rest(url, "read_file", {"path": "big.txt"})
    assert r.status_code == 400
    assert f"at most {fs.MAX_READ_BYTES}" in r.json()["error"]["detail"]


def test_a_name_longer_than_the_file_system_allows_is_a_client_error(world, url):
    vault, outside = world
    before = snapshot(vault, outside)
    for tool, arguments in attempts("n" * 300):
        r = rest(url, tool, arguments)
        assert 400 <= r.status_code < 500, (tool, r.text)
    assert snapshot(vault, outside) == before


SEGMENTS = ["..", ".", "notes", "a.txt", "link-out", "link-file", "loop", "~", "", "secret.txt", "\x00", "\\", "C:"]


@FUZZ
@given(parts=st.lists(st.sampled_from(SEGMENTS) | st.text(max_size=6), min_size=1, max_size=6), absolute=st.booleans())
def test_fuzzed_paths_never_reach_outside(world, url, parts, absolute):
    """Any path: answered (never a 5xx), and whatever happens stays inside the vault."""
    vault, outside = world
    path = ("/" if absolute else "") + "/".join(parts)
    outside_before = snapshot(outside)
    vault_before = snapshot(vault)
    for tool, arguments in [
        ("read_file", {"path": path}),
        ("list_files", {"path": path}),
        ("write_file", {"path": path, "content": "fuzz"}),
    ]:
        tally.add("cases fuzzed")
        tally.add("hypothesis cases")
        r = rest(url, tool, arguments)
        assert r.status_code in (200, 400, 422), (tool, path, r.text)
        if r.status_code == 200 and tool == "write_file":
            written = (vault / r.json()["path"]).resolve()
            assert written.is_relative_to(vault.resolve())
            old = vault_before.get(str(written))
            if old is not None and old[2] is not None:
                written.write_bytes(old[2])  # keep the vault as the other tests expect it
            else:
                written.unlink()
    assert snapshot(outside) == outside_before
