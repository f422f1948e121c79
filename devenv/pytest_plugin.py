"""pytest plugin (entry point ``pytest11``): bring a stack up for the tests, tear it down after.

Options (group "devenv")::

    --devenv-target=inprocess|local|docker|kind   several comma-separated; env DEVENV_TARGET
    --devenv-services=a,b                         bring up only these services
    --devenv-keep                                 leave the stack running for the next run

Fixtures:

- ``devenv_target`` (session): the stack for one target; tests that use it (or
  ``mcp_client``) run once per target given.
- ``mcp_client``: an ``MCPClient`` made as user code makes one, with the environment
  (``K8S_MODE``, ``DEVENV_URL_*``) pointing at the target.
- ``devenv_env`` (session, override it): extra environment for the services and the client.
- ``serve_service``: serve a ``Service`` on a real loopback port; returns its base URL.

Marker: ``@pytest.mark.devenv_targets("local", "docker")`` runs a test only on those targets.
A target that cannot run here (no ``kind`` binary, no Docker engine) is skipped with the
reason, unless it is listed in ``$DEVENV_REQUIRE_TARGETS`` (as CI does), where it fails.
The library stays in ``devenv.stack``; this module only adapts it to pytest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ALL_TARGETS = ("inprocess", "local", "docker", "kind")
_LOG_TAIL = 6000
# Stacks a session started, for its pytest_sessionfinish safety net. In the config's stash, not a
# global: a pytest run inside a test (pytester) must not take its outer session's stacks down.
_OPEN_STACKS = pytest.StashKey[list[Any]]()


@dataclass
class DevenvTarget:
    """One target's stack as the tests see it. ``client_env`` points an MCPClient at it."""

    name: str
    endpoints: dict[str, str] = field(default_factory=dict)
    client_env: dict[str, str] = field(default_factory=dict)
    stack: Any = None

    @property
    def remote(self) -> bool:
        return self.stack is not None

    def logs(self) -> dict[str, str]:
        if self.stack is None:
            return {}
        return {name: self.stack.logs(name) for name in self.endpoints}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("devenv", "devenv: a stack of MCP services for the tests")
    group.addoption(
        "--devenv-target",
        default=None,
        help="where the services run: inprocess, local, docker or kind; several comma-separated "
        "(default: $DEVENV_TARGET, else inprocess)",
    )
    group.addoption("--devenv-services", default=None, help="comma-separated services to bring up (default: all)")
    group.addoption(
        "--devenv-keep", action="store_true", help="leave the stack running after the session and reuse it next run"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "devenv_targets(*names): run the test only on these devenv targets")
    config.stash[_OPEN_STACKS] = []
    selected_targets(config)  # a typo in --devenv-target is a usage error before anything starts


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def selected_targets(config: pytest.Config) -> list[str]:
    targets = _split(config.getoption("--devenv-target") or os.environ.get("DEVENV_TARGET")) or ["inprocess"]
    unknown = [t for t in targets if t not in ALL_TARGETS]
    if unknown:
        raise pytest.UsageError(f"--devenv-target: unknown {', '.join(unknown)}; choose from {', '.join(ALL_TARGETS)}")
    return list(dict.fromkeys(targets))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "devenv_target" in metafunc.fixturenames:
        targets = selected_targets(metafunc.config)
        marker = metafunc.definition.get_closest_marker("devenv_targets")
        if marker is not None:
            targets = [t for t in targets if t in marker.args]
        metafunc.parametrize("devenv_target", targets, indirect=True, scope="session")


@pytest.fixture(scope="session")
def devenv_env() -> dict[str, str]:
    """Extra environment for the services (and the client). Override in a conftest.py."""
    return {}


@pytest.fixture(scope="session")
def devenv_target(request: pytest.FixtureRequest, devenv_env: dict[str, str]) -> Iterator[DevenvTarget]:
    name = getattr(request, "param", None) or selected_targets(request.config)[0]
    if name == "inprocess":
        yield DevenvTarget("inprocess", client_env={**devenv_env, "K8S_MODE": "false"})
        return

    from .discovery import env_var_for
    from .stack import StackError, TargetUnavailable, get_stack

    keep = request.config.getoption("--devenv-keep")
    services = _split(request.config.getoption("--devenv-services")) or None
    state_dir = Path(str(request.config.rootpath)) / ".devenv" / f"pytest-{name}"
    try:
        # Never collide with the developer's own `devenv up`: free ports, prefixed containers.
        options = {"local": {"declared_ports": False}, "docker": {"name_prefix": "pytest-"}}.get(name, {})
        stack = get_stack(name, state_dir=state_dir, env=devenv_env, **options)
        endpoints = _reusable(stack, services) or stack.up(
            services, timeout=float(os.environ.get("DEVENV_UP_TIMEOUT", "180"))
        )
    except TargetUnavailable as exc:
        if name in _split(os.environ.get("DEVENV_REQUIRE_TARGETS")):  # CI: a missing engine is a failure
            pytest.fail(f"devenv target {name!r} is required but unavailable: {exc}", pytrace=False)
        pytest.skip(f"devenv target {name!r} unavailable: {exc}")
    except StackError as exc:
        pytest.fail(f"devenv target {name!r} did not come up: {exc}", pytrace=False)
    open_stacks = request.config.stash[_OPEN_STACKS]
    if not keep:
        open_stacks.append(stack)
    client_env = {**devenv_env, "K8S_MODE": "true", "DEVENV_SERVICES": ",".join(sorted(endpoints))}
    client_env.update({env_var_for(service): url for service, url in endpoints.items()})
    try:
        yield DevenvTarget(name, dict(endpoints), client_env, stack)
    finally:
        if not keep:
            stack.down()
            open_stacks.remove(stack)


def _reusable(stack: Any, services: list[str] | None) -> dict[str, str]:
    """The endpoints of a stack an earlier ``--devenv-keep`` run left healthy, if it has what we need."""
    statuses = stack.status()
    if statuses and all(s.healthy for s in statuses) and set(services or ()) <= {s.name for s in statuses}:
        return {s.name: s.url for s in statuses}
    if statuses:
        stack.down()  # half dead or missing services: start afresh
    return {}


@pytest.fixture
def mcp_client(devenv_target: DevenvTarget, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``MCPClient()``, made as user code makes one, in an environment that points at ``devenv_target``."""
    from .client import MCPClient

    for key in ("REDIS_URL", "DEVENV_URL_TEMPLATE"):
        monkeypatch.delenv(key, raising=False)  # the shell's settings must not redirect the test
    for key, value in devenv_target.client_env.items():
        monkeypatch.setenv(key, value)
    client = MCPClient()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def serve_service() -> Iterator[Callable[..., str]]:
    """``serve_service(service, settings=None) -> "http://127.0.0.1:<port>"``, stopped after the test."""
    from .server import create_app
    from .testing import serve_in_thread

    with ExitStack() as stack:

        def serve(service: Any, settings: Any = None) -> str:
            return stack.enter_context(serve_in_thread(create_app(service, settings)))

        yield serve


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test against a real stack gets each service's log (its tail) in its report."""
    report = yield
    target = getattr(item, "funcargs", {}).get("devenv_target")
    if report.failed and isinstance(target, DevenvTarget) and target.remote:
        for service, text in target.logs().items():
            report.sections.append((f"devenv {target.name}: {service} log", text[-_LOG_TAIL:]))
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Safety net: a stack left up by an interrupted session is taken down (unless --devenv-keep)."""
    open_stacks = session.config.stash.get(_OPEN_STACKS, [])
    while open_stacks:
        open_stacks.pop().down()
