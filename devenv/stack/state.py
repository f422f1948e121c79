"""Where a stack keeps itself between commands: ``<state dir>/state.json``, an env file, a lock.

Every target persists what it started the same way, so that ``devenv status`` or
``devenv down`` in another process finds it. Targets differ only in what a valid record
holds (``_check_state``) and in how to clean up by hand when the file is damaged.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import StackError, env_exports

if TYPE_CHECKING:
    from ..tools import Registry

__all__ = ["DEFAULT_STATE_DIR", "ENV_FILE", "STATE_FILE", "StateDir", "now", "open_nofollow", "write_atomic"]

DEFAULT_STATE_DIR = ".devenv"
STATE_FILE = "state.json"
ENV_FILE = "env"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def open_nofollow(path: Path, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o644)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename: readers never see half a file, and a symlink at
    ``path`` is replaced rather than written through."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class StateDir:
    """Mixin for a ``Stack`` with ``state_dir``, ``target`` and ``env``: where its services are
    found, and how its state is loaded, saved, forgotten and locked."""

    state_dir: Path
    target: str
    env: dict[str, str]
    _registry: Registry | None
    #: What to tell the user to clean up by hand when the state file is damaged.
    damaged_hint = "if no devenv services run, delete it"

    @property
    def registry(self) -> Registry:
        """The services package the stack's services will read (``env`` may name another)."""
        if self._registry is None:
            from ..config import get_settings
            from ..tools import Registry

            get_settings()  # loads ./.env once, as the service processes will
            self._registry = Registry(get_settings({**os.environ, **self.env}).services_package)
        return self._registry

    def endpoints(self) -> dict[str, str]:
        state = self._load()
        return {} if state is None else {name: rec["url"] for name, rec in state["services"].items()}

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def env_file(self) -> Path:
        return self.state_dir / ENV_FILE

    def _check_state(self, state: dict[str, Any]) -> None:
        """Raise KeyError (or TypeError) when ``state`` lacks what this target records."""
        state["services"].values()

    def _load(self) -> dict[str, Any] | None:
        try:
            raw = self.state_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StackError(f"cannot read the stack state {self.state_file}: {exc.strerror}") from None
        try:
            state = json.loads(raw)
            self._check_state(state)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StackError(f"the stack state {self.state_file} is damaged ({exc!r}); {self.damaged_hint}") from None
        if state.get("target", self.target) != self.target:
            raise StackError(
                f"the stack in {self.state_dir} was started with --target {state['target']}, not {self.target}"
            )
        return state

    def _save(self, state: Mapping[str, Any]) -> None:
        write_atomic(self.state_file, json.dumps(state, indent=2) + "\n")

    def _forget(self) -> None:
        for path in (self.state_file, self.env_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _env_file_text(self, urls: Mapping[str, str]) -> str:
        flag = "" if self.target == "local" else f" --target {self.target}"
        header = f"# devenv {self.target} stack in {self.state_dir}: `source` this file, or eval $(devenv env{flag})\n"
        return header + "\n".join(env_exports(urls)) + "\n"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One ``up`` or ``down`` at a time per state dir (advisory; released if the process dies)."""
        import fcntl

        if not self.state_dir.exists():
            self.state_dir.mkdir(parents=True)
            # Only in a directory devenv made: never hide someone else's files from git. (The kind
            # target's setup-from-env.sh writes a Secret here: it refuses a folder git would commit.)
            ignore = "# written by devenv: state, logs and secrets of `devenv up`\n*\n"
            write_atomic(self.state_dir / ".gitignore", ignore)
        fd = open_nofollow(self.state_dir / "lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
