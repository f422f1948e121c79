"""The integration suite runs once per devenv target (``--devenv-target=inprocess,local,...``).

The devenv pytest plugin brings each target's stack up; this file only gives the services
their working folders, as a deployment would.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devenv import MemoryCache, default_registry


@pytest.fixture(scope="session")
def devenv_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The vault and the inbox, shared by the services and the tests (unique names keep tests apart)."""
    root = tmp_path_factory.mktemp("devenv-data")
    for name in ("vault", "unsorted"):
        (root / name).mkdir()
        (root / name).chmod(0o777)  # container users (uid 1001) write here too
    return {"VAULT_ROOT": str(root / "vault"), "UNSORTED_ROOT": str(root / "unsorted")}


@pytest.fixture
def vault(devenv_env: dict[str, str]) -> Path:
    return Path(devenv_env["VAULT_ROOT"])


@pytest.fixture
def unsorted(devenv_env: dict[str, str]) -> Path:
    return Path(devenv_env["UNSORTED_ROOT"])


@pytest.fixture
def client(mcp_client, devenv_target):
    """The plugin's client, checked to be in the mode its target implies."""
    assert mcp_client.mode == ("http" if devenv_target.remote else "inprocess")
    if not devenv_target.remote:
        for service in default_registry().all():  # a fresh cache, as a fresh process would have
            service.cache = MemoryCache()
    return mcp_client


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(4).hex()}"
