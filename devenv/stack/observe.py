"""``devenv up --observe``: a Prometheus from the machine's package, scraping the stack.

It scrapes every service of the stack as job ``devenv`` (what the alert rules select), with
the target label ``service`` a ServiceMonitor would add, loads devenv's alert rules
(``k8s/components/monitoring/rules.yml``) and listens on 127.0.0.1 only. Its config, data
and log live in ``<state dir>/prometheus/``; ``devenv down`` stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from ..testing import free_port
from .base import StackError

__all__ = ["RULES", "Prometheus", "prometheus_config", "start_prometheus", "stop_prometheus"]

RULES = Path(__file__).resolve().parents[2] / "k8s" / "components" / "monitoring" / "rules.yml"
_FOLDER = "prometheus"
_RECORD = "prometheus.json"


def prometheus_config(
    targets: Mapping[str, str], *, rule_files: list[Path] | None = None, interval: str = "5s"
) -> dict[str, Any]:
    """prometheus.yml for ``targets`` (service name → base URL)."""
    static = []
    for name, url in targets.items():
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StackError(f"cannot scrape {name!r}: {url!r} is not an http(s) URL")
        static.append({"targets": [parts.netloc], "labels": {"service": name}})
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files or []],
        "scrape_configs": [{"job_name": "devenv", "metrics_path": "/metrics", "static_configs": static}],
    }


class Prometheus:
    def __init__(self, url: str, pid: int, folder: Path, rules: bool) -> None:
        self.url, self.pid, self.folder, self.rules = url, pid, folder, rules

    def __repr__(self) -> str:
        return f"Prometheus({self.url!r}, pid={self.pid})"


def start_prometheus(
    targets: Mapping[str, str],
    state_dir: Path,
    *,
    port: int | None = None,
    interval: str = "5s",
    rules: Path | None = RULES,
    binary: str | None = None,
    timeout: float = 30.0,
) -> Prometheus:
    """Start Prometheus scraping ``targets`` and wait until it is ready."""
    binary = binary or shutil.which("prometheus")
    if binary is None:
        raise StackError("--observe runs Prometheus from the machine's package: apt-get install prometheus")
    folder = Path(state_dir) / _FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    stop_prometheus(state_dir)  # one left from a detached run
    rule_files = [rules] if rules is not None and rules.is_file() else []
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(targets, rule_files=rule_files, interval=interval)))
    port = port or free_port()
    log = open(folder / "prometheus.log", "wb")  # noqa: SIM115 -- the child keeps it
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1d",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in the terminal reaches devenv, which stops it in order
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = (folder / "prometheus.log").read_text(errors="replace")[-2000:]
            raise StackError(f"prometheus exited with code {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise StackError(f"prometheus did not get ready on {url} within {timeout:g} s")
        time.sleep(0.1)
    (folder / _RECORD).write_text(json.dumps({"pid": proc.pid, "url": url, "config": str(config)}))
    return Prometheus(url, proc.pid, folder, bool(rule_files))


def _recorded(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(state_dir) / _FOLDER / _RECORD).read_text())
    except (OSError, ValueError):
        return None


def _is_ours(pid: int, config: str) -> bool:
    """The pid is still that Prometheus (not a process that got its number since)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"--config.file={config}".encode() in cmdline


def stop_prometheus(state_dir: Path, timeout: float = 10.0) -> bool:
    """Stop the Prometheus ``start_prometheus`` recorded in ``state_dir``; True if one was running."""
    record = _recorded(state_dir)
    if record is None:
        return False
    pid, config = int(record["pid"]), str(record["config"])
    running = _is_ours(pid, config)
    if running:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _is_ours(pid, config) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _is_ours(pid, config):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
    (Path(state_dir) / _FOLDER / _RECORD).unlink(missing_ok=True)
    return running


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)  # our child: collect it, so it does not linger as a zombie
    except ChildProcessError:
        pass
