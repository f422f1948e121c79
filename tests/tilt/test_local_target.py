"""``tilt ci -- --target=local`` for real: Tilt starts every service as a local process, waits for
each /ready, runs the unit tests, and reports "All workloads are healthy"; while it runs, a call
through each service answers (the inbox agent's through all the others).

Binds the services' own ports (8101-8106): run under ``flock /tmp/devenv-stack.lock``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .binary import ROOT
from .test_tiltfile import SERVICES

HEALTHY = "SUCCESS. All workloads are healthy."


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


def _call(port: int, tool: str, arguments: dict) -> dict:
    answer = httpx.post(f"http://127.0.0.1:{port}/tools/{tool}", json=arguments, timeout=30)
    assert answer.status_code == 200, f"{tool} on {port}: {answer.status_code} {answer.text}"
    return answer.json()


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    vault, unsorted = tmp_path / "vault", tmp_path / "unsorted"
    vault.mkdir()
    unsorted.mkdir()
    (unsorted / "tilt tax.txt").write_text("HMRC tax return for the tax year: VAT deduction summary and withholding.")
    return {"VAULT_ROOT": vault, "UNSORTED_ROOT": unsorted}


def test_tilt_ci_local_is_healthy_and_every_service_answers(tilt, folders, tmp_path):
    busy = [s["port"] for s in SERVICES.values() if _port_in_use(s["port"])]
    assert not busy, f"ports {busy} are taken: another stack is running (hold /tmp/devenv-stack.lock)"
    log = tmp_path / "tilt-ci.log"
    env = {**os.environ, **{k: str(v) for k, v in folders.items()}}
    with log.open("wb") as out:
        # --port 0: no Tilt UI server, so no fixed port besides the services' own.
        ci = subprocess.Popen(
            [str(tilt), "ci", "--port", "0", "--timeout", "10m", "--", "--target=local"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        waiting = dict(SERVICES)
        while waiting:
            assert ci.poll() is None, f"tilt ci exited ({ci.returncode}) before every service was ready:\n{_tail(log)}"
            assert time.monotonic() < deadline, f"not ready after 300 s: {sorted(waiting)}\n{_tail(log)}"
            for name, service in list(waiting.items()):
                try:
                    if httpx.get(f"http://127.0.0.1:{service['port']}/ready", timeout=2).status_code == 200:
                        del waiting[name]
                except httpx.HTTPError:
                    pass
            time.sleep(0.5)
        # The unit tests (a minute or more) keep tilt ci, and so the services, running meanwhile.
        port = {name: service["port"] for name, service in SERVICES.items()}
        assert _call(port["jd-classifier"], "find_category", {"query": "tax"})["label"] == "11 Tax"
        assert (
            _call(port["content-classifier"], "classify", {"text": "tax return", "top_k": 1})["categories"][0]["id"]
            == "11"
        )
        assert _call(port["notifications"], "notify", {"message": "from tilt", "level": "info"})["id"]
        report = _call(port["inbox-agent"], "process_inbox", {})
        (moved,) = report["moved"]
        assert moved["source"] == "tilt tax.txt" and moved["category"] == "11 Tax"
        assert (folders["VAULT_ROOT"] / moved["destination"]).is_file()
        listed = _call(port["file-system"], "list_files", {"path": Path(moved["destination"]).parent.as_posix()})
        assert "tilt tax.txt" in [e["name"] for e in listed["entries"]]
        notes = _call(port["notifications"], "list_notifications", {"limit": 5})
        assert report["notification_id"] in [n["id"] for n in notes]
        if "conformance" in port:  # the MCP conformance example: content tools answer on REST too
            (text,) = _call(port["conformance"], "test_simple_text", {})
            assert text["type"] == "text" and text["text"]
        assert ci.poll() is None, f"tilt ci stopped while the services were called:\n{_tail(log)}"

        assert ci.wait(timeout=600) == 0, _tail(log)
        assert HEALTHY in log.read_text(errors="replace")
    finally:
        if ci.poll() is None:
            os.killpg(ci.pid, 15)
            ci.wait(timeout=60)
    # tilt ci stops what it started: the ports are free again.
    time.sleep(1)
    assert not [s["port"] for s in SERVICES.values() if _port_in_use(s["port"])]
