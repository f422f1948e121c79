"""FAKE ``kind``, ``kubectl`` and ``docker`` executables that record how they are called.

These are stand-ins, not the tools: a run against them shows which commands the kind target
and the deploy script issue, in which order, with which kubeconfig, and what they do when
one fails. It shows nothing about whether a real cluster would accept any of it. Never cite
a test that uses them as evidence that the kind target works.

What each fake does:
- ``kind``: keeps a list of clusters in the world folder; ``create cluster`` writes a dummy
  kubeconfig to ``--kubeconfig``; ``load docker-image`` needs an image the fake docker built.
- ``kubectl``: ``kustomize``, ``create ... --dry-run=client`` and ``label --local`` run the
  REAL kubectl (they need no cluster); ``apply`` records what it was given; ``rollout``,
  ``get`` and ``logs`` print canned answers; ``port-forward`` serves GET /health (as the
  service it was asked for) on a free port and prints kubectl's "Forwarding from" line.
- ``docker``: ``build`` remembers the ``--tag``; ``tag``/``push`` are recorded.

A scenario (``World.scenario``) injects failures: ``{"fail": [{"program": "kind",
"args": "load docker-image", "stderr": "...", "code": 1}]}`` makes the first matching
call print ``stderr`` and exit with ``code``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FAKE_PROGRAMS", "World", "install_fakes"]

FAKE_PROGRAMS = ("kind", "kubectl", "docker")

_SCRIPT = r'''#!{python}
# FAKE {program} written by tests/k8s/fakes.py: records its calls, see that module's docstring.
import json, os, sys, time
from pathlib import Path

PROGRAM = {program!r}
WORLD = Path(os.environ["FAKE_WORLD"])
argv = sys.argv[1:]


def load(name, default):
    try:
        return json.loads((WORLD / name).read_text())
    except FileNotFoundError:
        return default


def save(name, value):
    tmp = WORLD / (name + ".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, WORLD / name)


def record(**extra):
    entry = {{"program": PROGRAM, "argv": argv, "kubeconfig": os.environ.get("KUBECONFIG"), "time": time.time()}}
    entry.update(extra)
    with open(WORLD / "calls.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


def flag(name):
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def injected_failure():
    scenario = load("scenario.json", {{}})
    joined = " ".join(argv)
    for rule in scenario.get("fail", []):
        if rule.get("program") == PROGRAM and rule.get("args", "") in joined and not rule.get("used"):
            if rule.get("once", True):
                rule["used"] = True
                save("scenario.json", scenario)
            return rule
    return None


def real_kubectl():
    """Hand the call to the real kubectl, with the stdin this fake already read to record it."""
    import subprocess
    real = os.environ["FAKE_REAL_KUBECTL"]
    proc = subprocess.run([real, *argv], input=stdin_text if stdin_text is not None else None,
                          stdin=None if stdin_text is not None else sys.stdin, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    sys.exit(proc.returncode)


stdin_text = None
if PROGRAM == "kubectl" and "-" in argv and argv[argv.index("-") - 1] in ("-f", "--filename"):
    stdin_text = sys.stdin.read()
record(stdin=stdin_text)
failure = injected_failure()
if failure:
    sys.stderr.write(failure.get("stderr", "fake failure") + "\n")
    sys.exit(failure.get("code", 1))

if PROGRAM == "kind":
    clusters = load("clusters.json", [])
    if argv[:2] == ["get", "clusters"]:
        if clusters:
            print("\n".join(clusters))
        else:
            sys.stderr.write("No kind clusters found.\n")
    elif argv[:2] == ["create", "cluster"]:
        name = flag("--name") or "kind"
        if name in clusters:
            sys.stderr.write(f'ERROR: failed to create cluster: node(s) already exist for a cluster named "{{name}}"\n')
            sys.exit(1)
        clusters.append(name)
        save("clusters.json", clusters)
        kubeconfig = flag("--kubeconfig")
        if kubeconfig:
            Path(kubeconfig).write_text(f"apiVersion: v1\nkind: Config\n# FAKE kubeconfig of kind cluster {{name}}\n")
    elif argv[:2] == ["get", "kubeconfig"]:
        name = flag("--name") or "kind"
        if name not in clusters:
            sys.stderr.write(f'ERROR: could not locate any control plane nodes for cluster named "{{name}}"\n')
            sys.exit(1)
        print(f"apiVersion: v1\nkind: Config\n# FAKE kubeconfig of kind cluster {{name}}")
    elif argv[:2] == ["load", "docker-image"]:
        name = flag("--name") or "kind"
        images = [a for a in argv[2:] if not a.startswith("-") and a != name]
        built = load("images.json", [])
        if name not in clusters:
            sys.stderr.write(f"ERROR: no nodes found for cluster \"{{name}}\"\n")
            sys.exit(1)
        for image in images:
            if image not in built:
                sys.stderr.write(f"ERROR: image: \"{{image}}\" not present locally\n")
                sys.exit(1)
    elif argv[:2] == ["delete", "cluster"]:
        name = flag("--name") or "kind"
        save("clusters.json", [c for c in clusters if c != name])
    else:
        sys.stderr.write(f"FAKE kind: unsupported {{argv}}\n")
        sys.exit(2)

elif PROGRAM == "docker":
    if argv[:1] == ["build"]:
        tag = flag("--tag") or flag("-t")
        built = load("images.json", [])
        built.append(tag)
        save("images.json", built)
        print(f"FAKE docker: built {{tag}}")
    elif argv[:1] in (["tag"], ["push"]):
        print(f"FAKE docker: {{' '.join(argv)}}")
    else:
        sys.stderr.write(f"FAKE docker: unsupported {{argv}}\n")
        sys.exit(2)

elif PROGRAM == "kubectl":
    words, skip = [], False
    for arg in argv:  # the words that are not global flags or their values
        if skip:
            skip = False
        elif arg in ("--context", "--namespace", "-n", "--kubeconfig"):
            skip = True
        elif not arg.startswith("-"):
            words.append(arg)
    verb = words[0] if words else ""
    if verb == "kustomize" or (verb in ("create", "label") and ("--dry-run=client" in argv or "--local" in argv)):
        real_kubectl()
    elif verb == "apply":
        print("FAKE kubectl: applied")
    elif verb == "rollout":
        print("FAKE kubectl: successfully rolled out")
    elif verb == "get":
        scenario = load("scenario.json", {{}})
        if "secret" in argv and "jsonpath={{.data.REDIS_PASSWORD}}" in argv:
            sys.stdout.write(scenario.get("existing_redis_password_b64", ""))
        else:
            print("FAKE kubectl get: nothing to show")
    elif verb == "logs":
        print("[pod/fake-0/app] FAKE log line")
    elif verb == "port-forward":
        import http.server, socket, threading
        target = next(a for a in argv if a.startswith("service/"))
        service = target.split("/", 1)[1].removesuffix("-service")
        scenario = load("scenario.json", {{}})
        answer_as = scenario.get("health_answers_as", {{}}).get(service, service)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({{"status": "ok", "service": answer_as, "version": "fake"}}).encode()
                self.send_response(200 if self.path in ("/health", "/ready") else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        with open(WORLD / "pids.txt", "a") as f:  # so that the test can end what it started
            f.write(f"{{os.getpid()}}\n")
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = server.server_address[1]
        print(f"Forwarding from 127.0.0.1:{{port}} -> 8080", flush=True)
        import signal
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        server.serve_forever()
    else:
        sys.stderr.write(f"FAKE kubectl: unsupported {{argv}}\n")
        sys.exit(2)
'''


@dataclass
class World:
    """The fakes' shared folder: what they were called with, and the scenario they act out."""

    root: Path
    bin_dir: Path

    @property
    def scenario_file(self) -> Path:
        return self.root / "scenario.json"

    def set_scenario(self, **scenario: Any) -> None:
        self.scenario_file.write_text(json.dumps(scenario))

    def fail(self, program: str, args: str, stderr: str, code: int = 1) -> None:
        """The next call of ``program`` whose arguments contain ``args`` fails with ``stderr``."""
        scenario = json.loads(self.scenario_file.read_text()) if self.scenario_file.exists() else {}
        scenario.setdefault("fail", []).append({"program": program, "args": args, "stderr": stderr, "code": code})
        self.scenario_file.write_text(json.dumps(scenario))

    def add_cluster(self, name: str) -> None:
        self.clusters = [*self.clusters, name]

    @property
    def clusters(self) -> list[str]:
        path = self.root / "clusters.json"
        return json.loads(path.read_text()) if path.exists() else []

    @clusters.setter
    def clusters(self, names: list[str]) -> None:
        (self.root / "clusters.json").write_text(json.dumps(names))

    @property
    def images(self) -> list[str]:
        path = self.root / "images.json"
        return json.loads(path.read_text()) if path.exists() else []

    def forward_pids(self) -> list[int]:
        """Pids of every fake port-forward started in this world."""
        path = self.root / "pids.txt"
        return [int(line) for line in path.read_text().split()] if path.exists() else []

    def calls(self, program: str | None = None) -> list[dict[str, Any]]:
        path = self.root / "calls.jsonl"
        if not path.exists():
            return []
        entries = [json.loads(line) for line in path.read_text().splitlines() if line]
        return [e for e in entries if program is None or e["program"] == program]

    def commands(self, program: str | None = None) -> list[str]:
        """Each call as ``"<program> <args>"``, in order."""
        return [" ".join([e["program"], *e["argv"]]) for e in self.calls(program)]


def install_fakes(root: Path, programs: tuple[str, ...] = FAKE_PROGRAMS) -> World:
    """Write the fakes into ``root/bin``; the caller puts that first on PATH and sets the env ``World.env`` says."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for program in programs:
        script = bin_dir / program
        script.write_text(_SCRIPT.format(python=sys.executable, program=program))
        script.chmod(0o755)
    return World(root=root, bin_dir=bin_dir)


def fake_env(world: World, real_kubectl: str | None = None) -> dict[str, str]:
    """PATH with the fakes first, FAKE_WORLD, and the real kubectl for the commands that need no cluster."""
    real = real_kubectl or shutil.which("kubectl")
    env = {"PATH": f"{world.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "FAKE_WORLD": str(world.root)}
    if real:
        env["FAKE_REAL_KUBECTL"] = real
    return env
