"""Write access for the containers' uid on bind-mounted host folders: POSIX ACLs, no engine needed."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from devenv.stack import StackError
from devenv.stack.docker import APP_UID, _acl_read, _grant_write

pytestmark = pytest.mark.skipif(not hasattr(os, "setxattr"), reason="POSIX ACLs as xattrs are Linux-only")


def acl_users(path: Path, name: str = "system.posix_acl_access") -> dict[int, int]:
    acl = _acl_read(path, name) or {}
    return {ident: perm for (tag, ident), perm in acl.items() if tag == 0x02}


def write_as(uid: int, root: Path, name: str) -> int:
    """0 if ``uid`` could create ``root/name`` (in a forked child that gives up root), else the errno.

    The child starts in ``root``, as a container starts with it as its mount: the folders
    above it (pytest's are 0700) are not the container's business."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.chdir(root)
            os.setgid(uid)
            os.setuid(uid)
            Path(name).write_text("x")
        except OSError as exc:
            code = exc.errno or 1
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "vault"
    path.mkdir(mode=0o755)
    (path / "old").mkdir(mode=0o755)
    (path / "old" / "note.txt").write_text("kept")
    try:
        _acl_read(path, "system.posix_acl_access")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            pytest.skip(f"the file system of {tmp_path} has no ACLs")
        raise
    return path


def test_the_tree_and_what_is_made_in_it_later_get_an_entry_for_the_uid(folder):
    _grant_write(folder, APP_UID)
    assert acl_users(folder)[APP_UID] == 0o7
    assert acl_users(folder, "system.posix_acl_default")[APP_UID] == 0o7
    assert acl_users(folder / "old")[APP_UID] == 0o7  # folders that were there already
    assert acl_users(folder / "old" / "note.txt")[APP_UID] == 0o6
    (folder / "later").mkdir()  # made by the host after `up`: inherits the default ACL
    assert acl_users(folder / "later")[APP_UID] == 0o7
    assert oct(folder.stat().st_mode & 0o7) == oct(0o5)  # no chmod o+w: others gain nothing


def test_the_uid_can_really_write_there(folder):
    if os.geteuid() != 0:
        pytest.skip("switching to another uid needs root")
    assert write_as(APP_UID, folder, "before.txt") == errno.EACCES
    _grant_write(folder, APP_UID)
    assert write_as(APP_UID, folder, "after.txt") == 0
    assert write_as(APP_UID, folder, "old/deeper.txt") == 0
    (folder / "later").mkdir()
    assert write_as(APP_UID, folder, "later/new.txt") == 0


def test_granting_twice_changes_nothing_more(folder):
    _grant_write(folder, APP_UID)
    first = (_acl_read(folder, "system.posix_acl_access"), _acl_read(folder, "system.posix_acl_default"))
    _grant_write(folder, APP_UID)
    assert (_acl_read(folder, "system.posix_acl_access"), _acl_read(folder, "system.posix_acl_default")) == first


def test_a_folder_that_cannot_be_granted_is_a_clear_error(folder, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "setxattr", refuse)
    with pytest.raises(StackError, match=rf"cannot let the containers \(uid {APP_UID}\) write .*setfacl -R"):
        _grant_write(folder, APP_UID)
