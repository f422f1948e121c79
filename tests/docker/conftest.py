"""The images and the docker target, against a real Docker engine.

Without an engine (or a base image) these tests skip with a reason that names what is
missing; under CI (``$CI`` set) they fail instead, since .ci/run starts dockerd and builds
the offline base images. Stacks here take a unique ``name_prefix``, so they never collide
with a stack of the integration suite or of a developer on the same engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.stack import DockerStack, TargetUnavailable


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the docker target cannot be tested: {reason} (.ci/run should have provided it)", pytrace=False)
    pytest.skip(f"docker target unavailable: {reason}")


def unique_prefix() -> str:
    return f"devenv-test-{os.urandom(3).hex()}-"


@pytest.fixture(scope="session")
def docker_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    try:
        return DockerStack(tmp_path_factory.mktemp("probe")).client
    except TargetUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The vault and the inbox, made by this (root or developer) process with its usual 0755:
    the stack must make them writable for the containers' uid 1001 by itself."""
    root = tmp_path_factory.mktemp("docker-data")
    for name in ("vault", "unsorted"):
        (root / name).mkdir()
    return {"VAULT_ROOT": str(root / "vault"), "UNSORTED_ROOT": str(root / "unsorted")}


@pytest.fixture(scope="session")
def docker_stack(docker_client: Any, tmp_path_factory: pytest.TempPathFactory, data_dirs) -> Iterator[DockerStack]:
    """Every example service and Redis, as containers; taken down after the session."""
    stack = DockerStack(tmp_path_factory.mktemp("state"), env=data_dirs, name_prefix=unique_prefix())
    try:
        stack.up(timeout=120)
    except TargetUnavailable as exc:  # e.g. no base image here and none to pull
        unavailable(str(exc))
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def images(docker_stack: DockerStack) -> dict[str, str]:
    """``{service: image}`` of the running stack (``build()`` finds them built: it builds nothing)."""
    return docker_stack.build()


@pytest.fixture
def stack_env(docker_stack: DockerStack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The process environment of a remote-mode client of ``docker_stack`` (K8S_MODE=true, DEVENV_URL_*)."""
    from devenv.discovery import env_var_for

    for key in ("REDIS_URL", "DEVENV_URL_TEMPLATE"):
        monkeypatch.delenv(key, raising=False)
    urls = docker_stack.endpoints()
    env = {"K8S_MODE": "true", "DEVENV_SERVICES": ",".join(urls), **{env_var_for(n): u for n, u in urls.items()}}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def project_copy(dest: Path) -> Path:
    """The files the docker target builds from, copied: a project the test may edit."""
    import shutil

    import devenv

    source = Path(devenv.__file__).parents[1]
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy2(source / name, dest / name)
    for package in ("devenv", "services"):
        shutil.copytree(source / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest
