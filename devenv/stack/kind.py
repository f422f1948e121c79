"""The kind target: the stack in a kind cluster, from ``k8s/overlays/dev``, reached through port-forwards.

::

    stack = KindStack(".devenv")
    stack.up()            # cluster, images, manifests, rollouts, port-forwards, GET /health
    stack.endpoints()     # {"jd-classifier": "http://127.0.0.1:40123", ...}
    stack.down()          # stops the port-forwards; deletes the cluster only if up() created it

``up()`` runs, in this order (a failing command is a ``StackError`` carrying its stderr):

1. ``kind``, ``kubectl`` and ``docker`` are looked up on PATH; a missing one is
   ``TargetUnavailable`` naming it ("kind not found on PATH: install kind ...").
2. The cluster (pytest-kind-ng's ``KindCluster``): reused if ``kind get clusters`` lists it,
   else ``kind create cluster``. Its kubeconfig is ``<state dir>/kubeconfig``, for a reused
   cluster from ``kind get kubeconfig``; ``~/.kube/config`` is never read or written.
3. One image per service, ``docker build --build-arg SERVICE=<name>`` from the project's
   Dockerfile, tagged ``devenv/<name>:<unique tag>`` so that every ``up`` rolls the Pods, and
   ``kind load docker-image``.
4. ``scripts/setup-from-env.sh`` turns the project's ``.env`` with ``env=`` laid over it into
   the Secret ``devenv-secrets`` and ConfigMap ``devenv-env`` (in ``<state dir>/generated``).
   ``REDIS_PASSWORD``: from those, else the one the cluster's Secret already has, else generated.
5. ``kubectl kustomize k8s/overlays/dev``, narrowed to the chosen services and retagged, is
   written to ``<state dir>/manifests.yaml``; the namespace, then the Secret and ConfigMap,
   then the manifests are applied.
6. ``kubectl rollout status`` for Redis and each Deployment.
7. ``kubectl port-forward service/<name>-service :8080`` per service, detached (its pid is in
   the state file, so ``devenv down`` in another process stops it); the URL comes from its
   "Forwarding from 127.0.0.1:<port>" line.
8. With ``wait``: GET /health through each port-forward.

``down()`` stops the port-forwards and deletes the cluster if this stack created it and
``keep_cluster`` is false. A reused (or kept) cluster is left as it is, workloads included.
A port-forward ends when the Pod behind it goes (a rollout, a crash): ``status()`` then
reports the service stopped, and ``up()`` again forwards afresh.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ServiceNotFound
from .base import HEALTHY, STOPPED, ServiceStatus, Stack, StackError, TargetUnavailable
from .local import LocalStack, _pid_alive, _start_ticks
from .state import DEFAULT_STATE_DIR, StateDir, now, open_nofollow, write_atomic

if TYPE_CHECKING:
    from ..tools import Registry

__all__ = ["CONTAINER_PORT", "DEFAULT_CLUSTER", "DEFAULT_NAMESPACE", "DEFAULT_OVERLAY", "KindStack"]

logger = logging.getLogger("devenv.stack.kind")

DEFAULT_CLUSTER = "devenv-stack"  # not Tilt's "devenv": tests and `devenv up` never deploy over a Tilt session
DEFAULT_NAMESPACE = "devenv"
DEFAULT_OVERLAY = "k8s/overlays/dev"
CONTAINER_PORT = 8080
IMAGE_PREFIX = "devenv/"
SECRET_NAME = "devenv-secrets"
REDIS_STATEFULSET = "redis"
_STATE_VERSION = 1
_STDERR_TAIL = 40
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> \d+")
_INSTALL = {
    "kind": "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/",
    "docker": "kind runs its nodes in Docker and the images are built with it: install Docker",
}


def _tail(text: str, lines: int = _STDERR_TAIL) -> str:
    from ..config import redact

    kept = (text or "").strip().splitlines()[-lines:]
    return redact("\n".join(kept)) if kept else "(no output)"


def _command_error(what: str, cmd: list[str], code: int | None, stderr: str, stdout: str = "") -> StackError:
    how = f"exit code {code}" if code is not None else "timed out"
    shown = " ".join([Path(cmd[0]).name, *cmd[1:]])
    return StackError(f"{what}: `{shown}` failed ({how}):\n{_tail(stderr or stdout)}")


def _run(
    cmd: list[str],
    what: str,
    *,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> str:
    """Run ``cmd``; its stdout, or ``StackError`` with its stderr."""
    logger.debug("running %s", cmd)
    try:
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            cwd=cwd,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise _command_error(what, cmd, None, err) from None
    except OSError as exc:
        raise StackError(f"{what}: cannot run {cmd[0]}: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        raise _command_error(what, cmd, proc.returncode, proc.stderr, proc.stdout)
    return proc.stdout


@functools.cache
def _cluster_class() -> type:
    """pytest-kind-ng's ``KindCluster``, adapted; imported on first use (it pulls in pykube and requests)."""
    try:
        from pytest_kind import KindCluster
    except ImportError:
        raise TargetUnavailable("the kind target needs pytest-kind-ng: pip install pytest-kind-ng") from None

    class Cluster(KindCluster):
        """``KindCluster`` with the binaries found on PATH, files in the stack's state dir, errors with stderr.

        What differs from the base class, and why:
        - ``__init__`` does not call the base's, which creates ``./.pytest-kind/<name>`` in the
          current directory; nothing is ever downloaded (``ensure_kind``/``ensure_kubectl``).
        - ``create()`` returns whether it created the cluster, and for a cluster that exists
          writes its kubeconfig with ``kind get kubeconfig`` (the base would read an empty file).
        - every command's stderr is captured and raised as ``StackError`` (the base lets it
          through to the terminal and raises ``CalledProcessError`` without it).
        - no ``pykube`` client (``api``): the stack talks to the cluster through kubectl.
        ``kubectl()`` and ``port_forward()`` are the base's.
        """

        def __init__(self, name: str, kubeconfig: Path, kind_path: Path, kubectl_path: Path, image: str | None):
            self.name = name
            self.image = image
            self.path = kubeconfig.parent
            self.kubeconfig_path = kubeconfig
            self.kind_path = kind_path
            self.kubectl_path = kubectl_path
            self.platform = "linux"

        def ensure_kind(self) -> None:
            if not Path(self.kind_path).exists():
                raise TargetUnavailable(f"kind not found at {self.kind_path}: {_INSTALL['kind']}")

        def ensure_kubectl(self) -> None:
            if not Path(self.kubectl_path).exists():
                raise TargetUnavailable(f"kubectl not found at {self.kubectl_path}: {_INSTALL['kubectl']}")

        def _kind(self, *args: str, what: str, timeout: float | None = None) -> str:
            self.ensure_kind()
            # KUBECONFIG as well as --kubeconfig: no kind command may fall back to ~/.kube/config.
            env = {**os.environ, "KUBECONFIG": str(self.kubeconfig_path)}
            return _run([str(self.kind_path), *args], what, env=env, timeout=timeout)

        def exists(self) -> bool:
            out = self._kind("get", "clusters", what="listing kind clusters", timeout=60)
            return self.name in out.split()

        def create(self, config_file: str | os.PathLike[str] | None = None) -> bool:
            """Create the cluster unless it exists; True if this call created it. Writes the kubeconfig either way."""
            if self.exists():
                self.write_kubeconfig()
                return False
            cmd = ["create", "cluster", f"--name={self.name}", f"--kubeconfig={self.kubeconfig_path}"]
            if self.image:
                cmd.append(f"--image={self.image}")
            if config_file:
                cmd += ["--config", str(config_file)]
            self._kind(*cmd, what=f"creating kind cluster {self.name!r}")
            if not self.kubeconfig_path.is_file() or self.kubeconfig_path.stat().st_size == 0:
                self.write_kubeconfig()
            return True

        def write_kubeconfig(self) -> None:
            text = self._kind("get", "kubeconfig", f"--name={self.name}", what="reading the cluster's kubeconfig")
            _write_private(self.kubeconfig_path, text)

        def load_docker_image(self, docker_image: str) -> None:
            self._kind(
                "load", "docker-image", "--name", self.name, docker_image, what=f"loading {docker_image} into kind"
            )

        def kubectl(self, *args: str, **kwargs: Any) -> str:
            what = kwargs.pop("what", f"kubectl {args[0] if args else ''}".strip())
            self.ensure_kubectl()
            try:
                return super().kubectl(*args, stderr=subprocess.PIPE, **kwargs)
            except subprocess.CalledProcessError as exc:
                cmd = [str(self.kubectl_path), *args]
                raise _command_error(what, cmd, exc.returncode, exc.stderr or "", exc.output or "") from None
            except subprocess.TimeoutExpired as exc:
                err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
                raise _command_error(what, [str(self.kubectl_path), *args], None, err) from None

        def delete(self) -> None:
            self._kind(
                "delete",
                "cluster",
                f"--name={self.name}",
                f"--kubeconfig={self.kubeconfig_path}",
                what=f"deleting kind cluster {self.name!r}",
            )

    return Cluster


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, via a new file and a rename (never through a symlink)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _dotenv_line(key: str, value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'{key}="{escaped}"\n'


def _require_manifests(project: Path, names: list[str]) -> None:
    """Each chosen service's generated manifest is there and listed, or a StackError naming the file."""
    from ..kit.manifests import service_manifest_path

    listing = project / "k8s/base/services/kustomization.yaml"
    listed = listing.read_text() if listing.is_file() else ""
    for name in names:
        path = service_manifest_path(name)
        if not (project / path).is_file() or f"- {name}.yaml" not in listed:
            raise StackError(
                f"service {name!r} has no manifest in the kind overlay"
                f" ({path}, listed in {listing.relative_to(project)}): run `.venv/bin/devenv generate`"
                " (`.venv/bin/devenv check` names every inconsistency)"
            )


def _find_project(explicit: str | os.PathLike[str] | None, overlay: str) -> Path:
    """The folder with the Dockerfile and ``overlay``: given, $DEVENV_PROJECT_DIR, devenv's checkout, or cwd."""
    if explicit:
        return Path(explicit).absolute()
    import devenv

    candidates = [os.environ.get("DEVENV_PROJECT_DIR"), Path(devenv.__file__).parents[1], Path.cwd()]
    for candidate in candidates:
        if candidate and (Path(candidate) / overlay).is_dir():
            return Path(candidate).absolute()
    raise StackError(
        f"no {overlay} in {', '.join(str(c) for c in candidates if c)}; run from the project, "
        "or set DEVENV_PROJECT_DIR (or project_dir=)"
    )


# -- the stack ------------------------------------------------------------------------------


class KindStack(StateDir, Stack):
    """Services in a kind cluster; see the module docstring.

    ``cluster_name`` (default ``$DEVENV_KIND_CLUSTER``, else ``devenv-stack``) is created if
    missing and deleted by ``down()`` only if this stack created it, unless ``keep_cluster``.
    ``env`` goes into the cluster as the ConfigMap ``devenv-env`` and Secret ``devenv-secrets``
    (with the project's ``.env`` under it), minus the keys the manifests set themselves.
    ``project_dir`` holds the Dockerfile, ``overlay`` and ``scripts/`` (default: found as the
    docker target finds it). ``node_image`` and ``kind_config`` go to ``kind create cluster``.
    ``reload`` is accepted for ``devenv up``'s sake and does nothing: live reload into a
    cluster is ``tilt up``'s job.
    """

    target = "kind"

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        registry: Registry | None = None,
        reload: bool = False,
        cluster_name: str | None = None,
        keep_cluster: bool = False,
        project_dir: str | os.PathLike[str] | None = None,
        overlay: str = DEFAULT_OVERLAY,
        namespace: str = DEFAULT_NAMESPACE,
        node_image: str | None = None,
        kind_config: str | os.PathLike[str] | None = None,
        stop_timeout: float = 5.0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir or os.environ.get("DEVENV_STATE_DIR") or DEFAULT_STATE_DIR).absolute()
        self.env = dict(env or {})
        self.reload = reload
        self.cluster_name = cluster_name or os.environ.get("DEVENV_KIND_CLUSTER") or DEFAULT_CLUSTER
        self.keep_cluster = keep_cluster
        self._project_dir = project_dir
        self.overlay = overlay
        self.namespace = namespace
        self.node_image = node_image
        self.kind_config = kind_config
        self.stop_timeout = stop_timeout
        self._progress = progress
        self._registry = registry
        self._procs: dict[int, subprocess.Popen[bytes]] = {}  # port-forwards this object started, to reap them

    def __repr__(self) -> str:
        return f"KindStack({str(self.state_dir)!r}, cluster_name={self.cluster_name!r})"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def manifests_file(self) -> Path:
        return self.state_dir / "manifests.yaml"

    def _say(self, line: str) -> None:
        (self._progress or logger.info)(line)

    # -- the contract ------------------------------------------------------------------------

    def up(self, services: list[str] | None = None, wait: bool = True, timeout: float = 300) -> dict[str, str]:
        """Bring the stack up; ``timeout`` bounds the rollouts, port-forwards and health checks
        (not cluster creation or image builds). ``kubectl port-forward`` needs running Pods, so
        the rollouts are waited for even without ``wait``, which skips only GET /health."""
        binaries = self._binaries()
        with self._lock():
            state = self._load()
            if state is not None:
                running = [n for n, rec in state["services"].items() if self._forward_alive(rec)]
                if running:
                    raise StackError(
                        f"a kind stack is already running from {self.state_dir} ({', '.join(running)}); "
                        "stop it first with `devenv down --target kind`"
                    )
            project = _find_project(self._project_dir, self.overlay)
            names = list(dict.fromkeys(services)) if services else self.registry.names()
            known = self.registry.names()
            for name in names:
                if name not in known:
                    raise ServiceNotFound(name, known)
            if not names:
                raise StackError(f"no services to start: found none in package {self.registry.package!r}")
            _require_manifests(project, names)  # before any build: a missing one would fail only at apply
            cluster = _cluster_class()(
                self.cluster_name, self.kubeconfig, binaries["kind"], binaries["kubectl"], self.node_image
            )
            # A cluster an earlier, crashed `up` of this state dir created is still ours to delete.
            created_before = bool(
                state and state.get("created") and state.get("cluster") == self.cluster_name and cluster.exists()
            )
            tag = f"kind-{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
            state = {
                "version": _STATE_VERSION,
                "target": self.target,
                "started_at": now(),
                "cluster": self.cluster_name,
                "created": created_before,
                "keep_cluster": self.keep_cluster,
                "kubeconfig": str(self.kubeconfig),
                "namespace": self.namespace,
                "tag": tag,
                "services": {},
            }
            try:
                self._say(f"kind cluster {self.cluster_name!r} ...")
                created = cluster.create(self.kind_config)
                state["created"] = created or created_before
                self._save(state)  # now, so that `down` deletes a cluster we created even if the rest fails
                self._say(f"{'created' if created else 'reusing'} kind cluster {self.cluster_name!r}")
                images = self._build_and_load(cluster, binaries["docker"], project, names, tag)
                self._apply(cluster, project, names, images)
                deadline = time.monotonic() + timeout
                self._wait_rollouts(cluster, names, deadline)
                for name in names:
                    state["services"][name] = self._forward(cluster, name, deadline)
                    state["services"][name]["image"] = images[name]
                    self._save(state)
                urls = {name: rec["url"] for name, rec in state["services"].items()}
                write_atomic(self.env_file, self._env_file_text(urls))
                if wait:
                    self._wait_healthy(state["services"], deadline, timeout)
            except BaseException:  # Ctrl-C included: leave no port-forward (or new cluster) behind
                try:
                    self._teardown(state, cluster)
                except StackError as exc:  # the original error is the one to report
                    logger.warning("cleaning up after the failed up: %s", exc)
                raise
        return urls

    def down(self) -> list[str]:
        if self._load() is None:
            return []
        with self._lock():
            state = self._load()
            if state is None:
                return []
            running = [n for n, rec in state["services"].items() if self._forward_alive(rec)]
            for rec in state["services"].values():
                self._stop_forward(rec)
            cluster = None
            if state.get("created") and not state.get("keep_cluster"):
                binaries = self._binaries(("kind", "kubectl"))
                cluster = _cluster_class()(
                    state["cluster"], Path(state["kubeconfig"]), binaries["kind"], binaries["kubectl"], None
                )
            self._teardown(state, cluster)
        return running

    def status(self) -> list[ServiceStatus]:
        state = self._load()
        if state is None:
            return []
        import httpx

        statuses = []
        with httpx.Client(timeout=httpx.Timeout(2.0, connect=1.0), trust_env=False) as client:
            for name, rec in state["services"].items():
                alive = self._forward_alive(rec)
                health = LocalStack._probe(client, name, rec["url"]) if alive else STOPPED
                statuses.append(
                    ServiceStatus(
                        name=name,
                        url=rec["url"],
                        pid=rec["pid"] if alive else None,
                        health=health,
                        port=rec["port"],
                        log=rec["log"],
                    )
                )
        return statuses

    def logs(self, service: str) -> str:
        """The service's Pod logs (every Pod, prefixed with its name), from the cluster."""
        from ..config import redact

        state = self._load()
        if state is None or service not in state["services"]:
            known = sorted(state["services"]) if state else []
            hint = f"; services of the stack: {', '.join(known)}" if known else ""
            raise StackError(f"no kind stack with service {service!r} in {self.state_dir}{hint}")
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise TargetUnavailable(f"kubectl not found on PATH: {_INSTALL['kubectl']}")
        env = {**os.environ, "KUBECONFIG": state["kubeconfig"]}
        cmd = [kubectl, "logs", "--namespace", state["namespace"], "--selector", f"app.kubernetes.io/name={service}"]
        cmd += ["--all-containers", "--prefix", "--tail=500"]
        return redact(_run(cmd, f"reading the logs of {service!r}", env=env, timeout=60))

    # -- the steps of up() -------------------------------------------------------------------

    @staticmethod
    def _binaries(names: tuple[str, ...] = ("kind", "kubectl", "docker")) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for name in names:
            path = shutil.which(name)
            if path is None:
                raise TargetUnavailable(f"{name} not found on PATH: {_INSTALL[name]}")
            found[name] = Path(path)
        return found

    def _build_and_load(self, cluster: Any, docker: Path, project: Path, names: list[str], tag: str) -> dict[str, str]:
        images = {}
        build_args = (
            ["--build-arg", f"BASE_IMAGE={os.environ['DEVENV_BASE_IMAGE']}"]
            if "DEVENV_BASE_IMAGE" in os.environ
            else []
        )
        for name in names:
            image = f"{IMAGE_PREFIX}{name}:{tag}"
            self._say(f"building {image}")
            cmd = [str(docker), "build", "--build-arg", f"SERVICE={name}", *build_args, "--tag", image]
            cmd += ["--file", str(project / "Dockerfile"), str(project)]
            _run(cmd, f"building the image of {name!r}", cwd=project)
            self._say(f"loading {image} into kind")
            cluster.load_docker_image(image)
            images[name] = image
        return images

    def _secret_inputs(self, cluster: Any, project: Path) -> tuple[dict[str, str], str | None]:
        """The .env with ``env`` over it, and the REDIS_PASSWORD the cluster's Secret already holds."""
        values: dict[str, str] = {}
        dotenv = project / ".env"
        if dotenv.is_file():
            from dotenv import dotenv_values

            values.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        values.update(self.env)
        out = cluster.kubectl(
            "get", "secret", SECRET_NAME, "--namespace", self.namespace, "--ignore-not-found",
            "-o", "jsonpath={.data.REDIS_PASSWORD}", what="reading the existing Secret", timeout=60,
        ).strip()  # fmt: skip
        existing = base64.b64decode(out).decode() if out else None
        if not values.get("REDIS_PASSWORD") and existing:
            values["REDIS_PASSWORD"] = existing  # keep the password the running Redis was started with
        return values, existing

    def _generate_config(self, cluster: Any, project: Path, values: Mapping[str, str]) -> Path:
        out = self.state_dir / "generated"
        out.mkdir(exist_ok=True)
        env_file = out / f".input.{os.getpid()}.env"
        _write_private(env_file, "".join(_dotenv_line(k, v) for k, v in values.items()))
        script = project / "scripts" / "setup-from-env.sh"
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path)}
        cmd = ["bash", str(script), "--env-file", str(env_file), "--out", str(out), "--namespace", self.namespace]
        try:
            _run(cmd, "making the Secret and ConfigMap from .env", env=env, timeout=120)
        finally:
            env_file.unlink(missing_ok=True)
        import yaml

        for name, kind in (("secret.yaml", "Secret"), ("configmap.yaml", "ConfigMap")):
            try:
                made = yaml.safe_load((out / name).read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise StackError(f"{script} wrote no readable {out / name}: {exc}") from None
            if not isinstance(made, dict) or made.get("kind") != kind:
                raise StackError(f"{script} wrote no {kind} to {out / name}")
        return out

    def _render(self, cluster: Any, project: Path, names: list[str], images: Mapping[str, str]) -> list[dict]:
        import yaml

        text = cluster.kubectl("kustomize", str(project / self.overlay), what=f"rendering {self.overlay}", timeout=120)
        objects = [doc for doc in yaml.safe_load_all(text) if doc]
        known = set(self.registry.names())
        deployments = {o["metadata"]["name"] for o in objects if o.get("kind") == "Deployment"}
        missing = [n for n in names if n not in deployments]
        if missing:
            raise StackError(f"{self.overlay} has no Deployment for {', '.join(missing)}")
        kept = []
        for obj in objects:
            owner = obj.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/name")
            if owner in known and owner not in names:
                continue  # another service's Deployment, Service, PVC ...: not chosen
            if obj.get("kind") == "Deployment":
                for container in obj["spec"]["template"]["spec"]["containers"]:
                    repo = container["image"].rsplit(":", 1)[0] if ":" in container["image"] else container["image"]
                    service = repo.removeprefix(IMAGE_PREFIX)
                    if repo.startswith(IMAGE_PREFIX) and service in images:
                        container["image"] = images[service]
            kept.append(obj)
        return kept

    def _apply(self, cluster: Any, project: Path, names: list[str], images: Mapping[str, str]) -> None:
        import yaml

        objects = self._render(cluster, project, names, images)
        namespaces = [o for o in objects if o.get("kind") == "Namespace"]
        write_atomic(self.manifests_file, yaml.safe_dump_all(objects, sort_keys=False))
        values, existing = self._secret_inputs(cluster, project)
        generated = self._generate_config(cluster, project, values)
        ns = "namespace" if not namespaces else "the namespace"
        self._say(f"applying {ns}, the Secret and ConfigMap, then {self.overlay}")
        if namespaces:
            cluster.kubectl(
                "apply", "-f", "-", input=yaml.safe_dump_all(namespaces), what="creating the namespace", timeout=120
            )
        cluster.kubectl(
            "apply", "--namespace", self.namespace, "-f", str(generated / "secret.yaml"),
            "-f", str(generated / "configmap.yaml"), what="applying the Secret and ConfigMap", timeout=120,
        )  # fmt: skip
        cluster.kubectl("apply", "-f", str(self.manifests_file), what=f"applying {self.overlay}", timeout=300)
        if existing is not None and existing != values.get("REDIS_PASSWORD", existing):
            # Redis reads its password at start; a changed Secret needs a new Redis Pod.
            cluster.kubectl(
                "rollout", "restart", f"statefulset/{REDIS_STATEFULSET}", "--namespace", self.namespace,
                what="restarting Redis for its new password", timeout=60,
            )  # fmt: skip

    def _wait_rollouts(self, cluster: Any, names: list[str], deadline: float) -> None:
        for workload in [f"statefulset/{REDIS_STATEFULSET}", *(f"deployment/{n}" for n in names)]:
            left = max(1, int(deadline - time.monotonic()))
            self._say(f"waiting for {workload} to roll out")
            try:
                cluster.kubectl(
                    "rollout", "status", workload, "--namespace", self.namespace, f"--timeout={left}s",
                    what=f"waiting for {workload}", timeout=left + 30,
                )  # fmt: skip
            except StackError as exc:
                raise StackError(f"{exc}\n{self._diagnose(cluster, workload.split('/', 1)[1])}") from None

    def _diagnose(self, cluster: Any, name: str) -> str:
        """What the Pods of ``name`` are doing, for an error message; best effort."""
        parts = []
        selector = f"app.kubernetes.io/name={name}"
        for title, args in (
            ("pods", ("get", "pods", "--selector", selector, "-o", "wide")),
            ("events", ("get", "events", "--sort-by=.lastTimestamp")),
            ("logs", ("logs", "--selector", selector, "--all-containers", "--prefix", "--tail=20")),
        ):
            try:
                out = cluster.kubectl(*args, "--namespace", self.namespace, what=f"kubectl {title}", timeout=30)
            except StackError as exc:
                out = str(exc)
            parts.append(f"--- {title}:\n{_tail(out, 20)}")
        return "\n".join(parts)

    def _forward(self, cluster: Any, name: str, deadline: float) -> dict[str, Any]:
        """Start ``kubectl port-forward`` for ``name`` in its own session; its record for the state file."""
        log_path = self.state_dir / f"{name}.port-forward.log"
        cmd = [str(cluster.kubectl_path), "port-forward", "--namespace", self.namespace, "--address", "127.0.0.1"]
        cmd += [f"service/{name}-service", f":{CONTAINER_PORT}"]
        fd = open_nofollow(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path)},
                start_new_session=True,  # survives this process: `devenv up -d`, and `devenv down` stops it
            )
        self._procs[proc.pid] = proc
        rec = {"pid": proc.pid, "start_ticks": _start_ticks(proc.pid), "log": str(log_path), "port": None, "url": ""}
        deadline = max(deadline, time.monotonic() + 10)  # kubectl needs a moment, even when the rollouts took it all
        while True:
            text = log_path.read_text(encoding="utf-8", errors="replace")
            match = _FORWARDING.search(text)
            if match:
                port = int(match[1])
                rec.update(port=port, url=f"http://127.0.0.1:{port}", started_at=now())
                return rec
            if proc.poll() is not None:
                raise StackError(
                    f"`kubectl port-forward service/{name}-service` exited with code {proc.returncode}:\n{_tail(text)}"
                )
            if time.monotonic() >= deadline:
                self._stop_forward(rec)
                raise StackError(
                    f"`kubectl port-forward service/{name}-service` printed no port in time:\n{_tail(text)}"
                )
            time.sleep(0.05)

    def _wait_healthy(self, services: Mapping[str, Mapping[str, Any]], deadline: float, timeout: float) -> None:
        import httpx

        pending = list(services)
        last: dict[str, str] = {}
        with httpx.Client(timeout=httpx.Timeout(2.0, connect=1.0), trust_env=False) as client:
            while True:
                for name in list(pending):
                    rec = services[name]
                    if not self._forward_alive(rec):
                        raise StackError(
                            f"the port-forward of {name!r} exited before it answered GET {rec['url']}/health:\n"
                            f"{_tail(Path(rec['log']).read_text(errors='replace'))}"
                        )
                    last[name] = LocalStack._probe(client, name, rec["url"])
                    if last[name] == HEALTHY:
                        pending.remove(name)
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    details = ", ".join(f"{n} ({last.get(n, 'not probed')})" for n in pending)
                    raise StackError(f"timed out after {timeout:g}s waiting for GET /health of {details}")
                time.sleep(0.2)

    # -- teardown, state ---------------------------------------------------------------------

    def _forward_alive(self, rec: Mapping[str, Any]) -> bool:
        pid = rec.get("pid")
        if not pid:
            return False
        proc = self._procs.get(pid)
        if proc is not None:
            return proc.poll() is None
        return _pid_alive(pid, rec.get("start_ticks"))

    def _stop_forward(self, rec: Mapping[str, Any]) -> None:
        """SIGTERM the port-forward (the leader of its own session), SIGKILL after ``stop_timeout``."""
        pid = rec.get("pid")
        if not pid:
            return
        proc = self._procs.pop(pid, None)
        if self._forward_alive(rec) or (proc is not None and proc.poll() is None):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            while time.monotonic() < deadline and (
                proc.poll() is None if proc is not None else _pid_alive(pid, rec.get("start_ticks"))
            ):
                time.sleep(0.05)
            if proc.poll() is None if proc is not None else _pid_alive(pid, rec.get("start_ticks")):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def _teardown(self, state: Mapping[str, Any], cluster: Any | None) -> None:
        """Stop the port-forwards; delete the cluster if given and ours to delete; forget the state."""
        for rec in state["services"].values():
            self._stop_forward(rec)
        leftovers = [self.state_file, self.env_file]
        leftovers += [self.state_dir / "generated" / name for name in ("secret.yaml", "configmap.yaml")]
        if cluster is not None and state.get("created") and not state.get("keep_cluster"):
            self._say(f"deleting kind cluster {state['cluster']!r}")
            cluster.delete()  # raises with the state kept, so that `down` can try again
            # The cluster is gone: so is any use for its kubeconfig and its Redis password.
            leftovers += [Path(state["kubeconfig"]), self.state_dir / "generated" / "redis-password"]
        for path in leftovers:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    damaged_hint = "delete it"

    def _check_state(self, state: dict[str, Any]) -> None:
        for key in ("cluster", "kubeconfig", "namespace", "services"):
            state[key]  # noqa: B018 - a KeyError says the file is damaged
