"""One example stack per target; every integration test runs once against each.

- ``inprocess``: handlers imported into this process (``K8S_MODE`` unset).
- ``local``: one real uvicorn process per service on loopback, calling each other over HTTP.
- ``local-redis``: the same, with the services' cache (and the notifications list) in Redis.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devenv import MCPClient, MemoryCache, default_registry
from devenv.discovery import env_var_for
from devenv.stack import LocalStack

TARGETS = ["inprocess", "local", "local-redis"]


@dataclass
class Target:
    name: str
    vault: Path
    unsorted: Path
    env: dict[str, str] = field(default_factory=dict)
    stack: LocalStack | None = None

    @property
    def remote(self) -> bool:
        return self.stack is not None


@pytest.fixture(scope="session", params=TARGETS)
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    workdir = tmp_path_factory.mktemp(request.param)
    vault, unsorted = workdir / "vault", workdir / "unsorted"
    vault.mkdir()
    unsorted.mkdir()
    dirs = {"VAULT_ROOT": str(vault), "UNSORTED_ROOT": str(unsorted)}
    if request.param == "inprocess":
        yield Target("inprocess", vault, unsorted, {**dirs, "K8S_MODE": "false"})
        return
    service_env = {**dirs, "K8S_MODE": "true"}  # services reach each other over HTTP, as in a cluster
    if request.param == "local-redis":
        service_env["REDIS_URL"] = request.getfixturevalue("redis_url")
    stack = LocalStack(workdir / ".devenv", env=service_env)
    urls = stack.up(timeout=90)
    client_env = {**dirs, "K8S_MODE": "true", "DEVENV_SERVICES": ",".join(urls)}
    client_env.update({env_var_for(name): url for name, url in urls.items()})
    try:
        yield Target(request.param, vault, unsorted, client_env, stack)
    finally:
        stack.down()


@pytest.fixture
def client(target: Target, monkeypatch: pytest.MonkeyPatch) -> Iterator[MCPClient]:
    """An ``MCPClient`` made exactly as user code makes one: ``MCPClient()``, mode from the environment."""
    for key in ("REDIS_URL", "DEVENV_URL_TEMPLATE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in target.env.items():
        monkeypatch.setenv(key, value)
    if not target.remote:
        for service in default_registry().all():  # fresh in-process state, as a fresh process would have
            service.cache = MemoryCache()
    client = MCPClient()
    assert client.mode == ("http" if target.remote else "inprocess")
    try:
        yield client
    finally:
        client.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failing test against a real stack gets the services' logs attached to its report."""
    report = yield
    target = item.funcargs.get("target") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(target, Target) and target.stack is not None:
        for status in target.stack.status():
            report.sections.append((f"{status.name} log", target.stack.logs(status.name)[-4000:]))
    return report


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(4).hex()}"
