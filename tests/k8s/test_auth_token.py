"""DEVENV_AUTH_TOKEN in .env reaches every dev Pod as a file, the way the declared secrets do.

The path is rendered for real: .env → scripts/setup-from-env.sh (the Secret) → the dev overlay
(`kubectl kustomize`) → each Deployment's projected `secrets` volume, laid out on disk as the
kubelet would (only the keys the Secret holds; an optional key it lacks leaves no file) → the
container's env → devenv's Settings, and for one service a real `devenv serve` that then asks
for the token.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devenv.config import Settings
from devenv.testing import free_port
from devenv.tools import Registry

from .conftest import ROOT, by_name

TOKEN = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5"


def secret_from_env(tmp_path: Path, env_text: str) -> dict[str, str]:
    env_file = tmp_path / "dot.env"
    env_file.write_text(env_text)
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup-from-env.sh"), "--env-file", str(env_file)]
        + ["--out", str(tmp_path / "gen"), "--stdout"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    secret = by_name([d for d in yaml.safe_load_all(proc.stdout) if d], "Secret")["devenv-secrets"]
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def mount_like_the_kubelet(deployment: dict[str, Any], secret: dict[str, str], root: Path) -> dict[str, str]:
    """Lay out the `secrets` volume under ``root`` and return the container's env pointing into it."""
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    volume = next(v for v in spec["volumes"] if v["name"] == "secrets")
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "secrets")
    root.mkdir(parents=True)
    for source in volume["projected"]["sources"]:
        for item in source["secret"]["items"]:
            if item["key"] in secret:
                (root / item["path"]).write_text(secret[item["key"]])
            else:
                assert source["secret"].get("optional"), f"{item['key']} is required but the Secret lacks it"
    return {e["name"]: e["value"].replace(mount, str(root)) for e in container.get("env", []) if "value" in e}


def dev_deployments(rendered) -> dict[str, dict[str, Any]]:
    found = by_name(rendered["dev"], "Deployment")
    names = Registry("services").names()
    assert set(names) <= set(found), "every service has a dev Deployment"
    return {name: found[name] for name in names}


def test_the_token_from_dotenv_reaches_every_dev_pod_as_a_file(rendered, tmp_path):
    secret = secret_from_env(tmp_path, f"DEVENV_AUTH_TOKEN={TOKEN}\nREDIS_PASSWORD=pw-1\n")
    assert secret["DEVENV_AUTH_TOKEN"] == TOKEN, "setup-from-env.sh puts the token in devenv-secrets"
    for name, deployment in dev_deployments(rendered).items():
        env = mount_like_the_kubelet(deployment, secret, tmp_path / "pods" / name)
        assert TOKEN not in env.values(), f"{name}: the token is a file, never an env value"
        assert Settings.from_env(env).auth_token == TOKEN, name


def test_without_a_token_in_dotenv_dev_pods_start_with_auth_off(rendered, tmp_path):
    secret = secret_from_env(tmp_path, "REDIS_PASSWORD=pw-1\n")
    assert "DEVENV_AUTH_TOKEN" not in secret
    for name, deployment in dev_deployments(rendered).items():
        env = mount_like_the_kubelet(deployment, secret, tmp_path / "pods" / name)
        assert Settings.from_env(env).auth_token is None, name


def test_a_served_dev_pod_env_asks_for_the_token(rendered, tmp_path):
    secret = secret_from_env(tmp_path, f"DEVENV_AUTH_TOKEN={TOKEN}\nREDIS_PASSWORD=pw-1\n")
    env = mount_like_the_kubelet(dev_deployments(rendered)["jd-classifier"], secret, tmp_path / "pod")
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DEVENV_", "REDIS_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devenv.cli", "serve", "jd-classifier", "--host", "127.0.0.1", "--port", str(port)],
        env={**clean, "DEVENV_ENV_FILE": os.devnull, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "devenv serve exited"
            try:
                if httpx.get(url + "/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("devenv serve jd-classifier did not come up")
                time.sleep(0.1)
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
        without = httpx.post(url + "/mcp", json=body, headers=headers, timeout=10, trust_env=False)
        assert without.status_code == 401
        authorized = {**headers, "Authorization": f"Bearer {TOKEN}"}
        with_token = httpx.post(url + "/mcp", json=body, headers=authorized, timeout=10, trust_env=False)
        assert with_token.status_code == 200, with_token.text
        assert "find_category" in with_token.text
    finally:
        proc.terminate()
        proc.wait(30)
