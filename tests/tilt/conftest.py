"""Fixtures for the real Tilt: the binary, and Tilt's own JSON of what the Tiltfile declares."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from .binary import ROOT, TiltNotFound, find_tilt

# A kubeconfig of our own, so the result never depends on the machine's current context. Every
# server is a closed loopback port: evaluating a Tiltfile connects to none of them.
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- {name: kind-devenv, cluster: {server: "https://127.0.0.1:1"}}
- {name: kind-other, cluster: {server: "https://127.0.0.1:1"}}
- {name: prod, cluster: {server: "https://127.0.0.1:2"}}
contexts:
- {name: kind-devenv, context: {cluster: kind-devenv, user: dev}}
- {name: kind-other, context: {cluster: kind-other, user: dev}}
- {name: prod-eu, context: {cluster: prod, user: dev}}
current-context: kind-devenv
users:
- {name: dev, user: {token: not-a-secret}}
"""


class TiltfileError(Exception):
    """The Tiltfile failed to load; ``str()`` is Tilt's stderr."""


def tilt_or_skip(find: Callable[[], Path] = find_tilt) -> Path:
    """The Tilt to run; else skip naming what is missing, or fail under CI (it has the shared copy)."""
    try:
        return find()
    except TiltNotFound as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the real Tilt: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def tilt() -> Path:
    return tilt_or_skip()


@pytest.fixture(scope="session")
def tilt_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """setup-from-env.sh (run by the Tiltfile's local()) reads and writes only in a temporary folder."""
    folder = tmp_path_factory.mktemp("tilt")
    (folder / ".env").write_text("REDIS_PASSWORD=tilt-test\nDEVENV_LOG_LEVEL=DEBUG\n")
    (folder / "kubeconfig").write_text(KUBECONFIG)
    return {
        "ENV_FILE": str(folder / ".env"),
        "OUT_DIR": str(folder / "generated"),
        "KUBECONFIG": str(folder / "kubeconfig"),
    }


class Result(dict):
    """``tilt alpha tiltfile-result`` JSON, with lookups by resource name."""

    stderr: str = ""

    def manifest(self, name: str) -> dict[str, Any]:
        found = [m for m in self["Manifests"] if m["Name"] == name]
        assert len(found) == 1, f"expected one resource {name!r}, found {[m['Name'] for m in self['Manifests']]}"
        return found[0]

    def names(self) -> set[str]:
        return {m["Name"] for m in self["Manifests"]}

    def objects(self, name: str) -> list[dict[str, Any]]:
        """The Kubernetes objects Tilt deploys as resource ``name``."""
        return [o for o in yaml.safe_load_all(self.manifest(name)["DeployTarget"]["yaml"]) if o]


@pytest.fixture(scope="session")
def evaluate(tilt: Path, tilt_env: dict[str, str]) -> Callable[..., Result]:
    def run(*args: str, context: str | None = None, env: dict[str, str] | None = None) -> Result:
        cmd = [str(tilt), "alpha", "tiltfile-result", "--verbose"]
        if context:
            cmd += ["--context", context]
        proc = subprocess.run(
            [*cmd, *args],
            cwd=ROOT,
            env={**os.environ, **tilt_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise TiltfileError(proc.stderr)
        result = Result(json.loads(proc.stdout))
        result.stderr = proc.stderr
        return result

    return run
