"""The docker target: one container per service on a docker network, plus Redis.

Every service runs from an image built from the project's ``Dockerfile`` (one per service,
build arg ``SERVICE``) in a container named ``<service>-service`` on the network ``devenv``,
with ``K8S_MODE=true`` inside: services call each other by the same DNS names as in
Kubernetes (``http://<service>-service:8080``). Redis runs beside them as ``redis-service``
(``REDIS_URL=redis://redis-service:6379/0``). Each service is published on 127.0.0.1 only,
on a port the engine picks::

    stack = DockerStack(".devenv", env={"VAULT_ROOT": "/srv/vault"})
    stack.up()          # builds what is missing, waits until each answers GET /ready
    stack.endpoints()   # {"jd-classifier": "http://127.0.0.1:32771", ...}
    stack.logs("jd-classifier")
    stack.down()        # removes the containers and the network it made

Images are tagged ``devenv/<service>:<content hash>``: a hash of the build context (the
files ``.dockerignore`` lets in), the Dockerfile and the base image. An image that exists
is reused, so an ``up`` with unchanged code builds nothing (``build()`` alone builds, for a
target that only needs the images). The wheels are fetched on the host (``pip download``,
through the host's pip configuration and CA bundle) into the build context, checked
against the base image's own pip with no network, kept in ``$XDG_CACHE_HOME/devenv/docker``
and installed from there: the image build itself needs no network. Base image:
``$DEVENV_BASE_IMAGE``, else ``python:3.12-slim`` if present, else ``devenv-base:bookworm``
(made offline by ``scripts/offline-base-image.sh``) if present, else ``python:3.12-slim``
pulled. Redis likewise: ``$DEVENV_REDIS_IMAGE``, ``redis:7-alpine``, ``devenv-redis:bookworm``.

Host paths given in ``env`` under ``bind_env`` (``VAULT_ROOT``, ``UNSORTED_ROOT``) are
bind-mounted at the same path, and uid 1001 (the image's user) is granted write access with
a POSIX ACL, so a test can put a file into the inbox and find it in the vault. With
``reload=True`` the image's ``dev`` stage runs with ``--reload`` and the project's
``devenv/`` and ``services/`` are mounted over its copy: edits restart the service.

What was started is written to ``<state dir>/state.json`` (as the local target does), so
``devenv down --target docker`` from another process finds it; every container and the
network carry the label ``devenv.stack=<state dir>``. ``down()`` keeps each container's log
in ``<state dir>/<service>.log``. Container names are the engine's to share: a second stack
beside the first takes a ``name_prefix`` (see ``DockerStack``). No engine, or no base image
to be had, is ``TargetUnavailable`` (a ``StackError``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shlex
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ServiceNotFound
from .base import STOPPED, ServiceStatus, Stack, StackError, TargetUnavailable
from .local import LocalStack
from .state import DEFAULT_STATE_DIR, StateDir, now, open_nofollow, write_atomic

if TYPE_CHECKING:
    from ..tools import Registry

__all__ = [
    "APP_UID",
    "CONTAINER_PORT",
    "DEFAULT_BASE_IMAGE",
    "DEFAULT_REDIS_IMAGE",
    "NETWORK",
    "OFFLINE_BASE_IMAGE",
    "OFFLINE_REDIS_IMAGE",
    "REDIS_CONTAINER",
    "DockerStack",
    "container_name",
]

logger = logging.getLogger("devenv.stack.docker")

DEFAULT_BASE_IMAGE = "python:3.12-slim"
OFFLINE_BASE_IMAGE = "devenv-base:bookworm"  # scripts/offline-base-image.sh
DEFAULT_REDIS_IMAGE = "redis:7-alpine"
OFFLINE_REDIS_IMAGE = "devenv-redis:bookworm"  # scripts/offline-base-image.sh
IMAGE_REPOSITORY = "devenv/{service}"
# The optional dependency groups baked into every image (the Dockerfile's EXTRAS, whose default
# is the same): OpenTelemetry, so a container exports traces once OTEL_EXPORTER_OTLP_ENDPOINT is set.
IMAGE_EXTRAS = ("otel",)
NETWORK = "devenv"
REDIS_CONTAINER = "redis-service"
REDIS_PORT = 6379
CONTAINER_PORT = 8080
APP_UID = 1001  # the Dockerfile's non-root user
LABEL_STACK = "devenv.stack"
LABEL_SERVICE = "devenv.service"
LABEL_CONTENT = "devenv.content"
_STATE_VERSION = 1
_LOG_TAIL_LINES = 30
_REDIS_COMMAND = ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
_OFFLINE_HINT = "on a machine that cannot pull images, make it with scripts/offline-base-image.sh"


def container_name(service: str) -> str:
    """``jd-classifier`` → ``jd-classifier-service``: the Kubernetes Service name, so discovery's default works."""
    return f"{service}-service"


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    from ..config import redact

    kept = text.splitlines()[-lines:]
    return redact("\n".join(kept)) if kept else "(the log is empty)"


# -- write access for the container user on bind-mounted host folders (POSIX ACLs) -----------
#
# The containers run as uid 1001; the host folders belong to whoever runs the tests. An ACL
# entry for uid 1001 (and a default ACL, so that what either side creates later inherits it)
# lets both write without chmod 777 or chown. Written as the kernel's xattr format, so no
# setfacl binary is needed; only the folder's owner (or root) may set it.

_ACL_ACCESS = "system.posix_acl_access"
_ACL_DEFAULT = "system.posix_acl_default"
_ACL_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_NO_ID = 0xFFFFFFFF
_Acl = dict[tuple[int, int], int]  # (tag, id) → permission bits rwx


def _acl_read(path: Path, name: str) -> _Acl | None:
    try:
        raw = os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENODATA:
            return None
        raise
    (version,) = struct.unpack_from("<I", raw)
    if version != _ACL_VERSION:
        raise OSError(errno.EINVAL, f"unknown ACL version {version}")
    return {(tag, ident): perm for tag, perm, ident in struct.iter_unpack("<HHI", raw[4:])}


def _acl_from_mode(mode: int) -> _Acl:
    return {(_USER_OBJ, _NO_ID): (mode >> 6) & 7, (_GROUP_OBJ, _NO_ID): (mode >> 3) & 7, (_OTHER, _NO_ID): mode & 7}


def _acl_with_users(acl: _Acl, users: Mapping[int, int]) -> _Acl:
    """``acl`` with each named user's permissions raised to at least ``users[uid]``; mask recomputed."""
    acl = dict(acl)
    for uid, perm in users.items():
        acl[(_USER, uid)] = acl.get((_USER, uid), 0) | perm
    mask = 0
    for (tag, _), perm in acl.items():
        if tag in (_USER, _GROUP, _GROUP_OBJ):
            mask |= perm
    acl[(_MASK, _NO_ID)] = mask
    return acl


def _acl_write(path: Path, name: str, acl: _Acl) -> None:
    raw = struct.pack("<I", _ACL_VERSION) + b"".join(
        struct.pack("<HHI", tag, perm, ident) for (tag, ident), perm in sorted(acl.items())
    )
    os.setxattr(path, name, raw, follow_symlinks=False)


def _grant_one(path: Path, is_dir: bool, uid: int) -> None:
    info = path.lstat()
    want = 0o7 if is_dir else 0o6
    access = _acl_read(path, _ACL_ACCESS) or _acl_from_mode(info.st_mode)
    users = {uid: want}
    if access.get((_USER, uid), 0) & want != want or access.get((_MASK, _NO_ID), 7) & want != want:
        _acl_write(path, _ACL_ACCESS, _acl_with_users(access, users))
    if is_dir:
        if info.st_uid not in (0, uid):
            users[info.st_uid] = 0o7  # and the owner keeps full access to what the container creates
        default = _acl_read(path, _ACL_DEFAULT) or _acl_from_mode(info.st_mode | 0o700)
        _acl_write(path, _ACL_DEFAULT, _acl_with_users(default, users))


def _grant_write(root: Path, uid: int) -> None:
    """Let ``uid`` write ``root`` and everything in it that we own (ACLs); raise ``StackError`` if it cannot."""
    if not hasattr(os, "setxattr"):
        return  # not Linux: Docker Desktop maps the owner of bind mounts itself
    me = os.geteuid()
    try:
        for folder, dirs, files in os.walk(root):
            base = Path(folder)
            for entry, is_dir in [(base, True), *((base / f, False) for f in files)]:
                info = entry.lstat()
                if os.path.islink(entry) or info.st_uid == uid or (me != 0 and info.st_uid != me):
                    continue  # links are not followed; not ours to change (the owner can, below if needed)
                _grant_one(entry, is_dir, uid)
            dirs[:] = [d for d in dirs if not os.path.islink(base / d)]
    except OSError as exc:
        info = root.stat()
        if info.st_uid == uid or info.st_mode & 0o002:
            return  # already writable for the container user by its owner or mode
        raise StackError(
            f"cannot let the containers (uid {uid}) write {root}: {exc.strerror or exc}. "
            f"Give it to them with `setfacl -R -m u:{uid}:rwX -m d:u:{uid}:rwX {shlex.quote(str(root))}`, "
            f"or `chmod o+rwx` it"
        ) from None


# -- the stack ------------------------------------------------------------------------------


class DockerStack(StateDir, Stack):
    """Services as containers on a docker network, with Redis; see the module docstring.

    ``env`` goes into every service container (``DEVENV_URL_*`` and ``REDIS_URL`` excepted:
    inside the network the stack's own names apply); its host paths under ``bind_env`` are
    bind-mounted. ``project_dir`` holds the Dockerfile (default: the checkout devenv is
    installed from, else the current directory). ``rebuild`` builds the images even if they
    exist. ``progress`` gets one line per step (default: the ``devenv.stack.docker`` logger).

    Container names are global to the engine, so one stack per engine has the plain names.
    A second one beside it (a test session, another checkout) takes a ``name_prefix``: its
    containers are then ``<prefix><service>-service`` on the network ``<prefix>devenv``, where
    they still answer to ``<service>-service``.
    """

    target = "docker"

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        registry: Registry | None = None,
        reload: bool = False,
        project_dir: str | os.PathLike[str] | None = None,
        base_image: str | None = None,
        redis_image: str | None = None,
        network: str | None = None,
        name_prefix: str = "",
        bind_env: Iterable[str] = ("VAULT_ROOT", "UNSORTED_ROOT"),
        rebuild: bool = False,
        stop_timeout: float = 10.0,
        progress: Callable[[str], None] | None = None,
        docker_client: Any = None,
    ) -> None:
        self.state_dir = Path(state_dir or os.environ.get("DEVENV_STATE_DIR") or DEFAULT_STATE_DIR).absolute()
        self.env = dict(env or {})
        self.reload = reload
        self.project_dir = Path(project_dir).absolute() if project_dir else None
        self.base_image = base_image or os.environ.get("DEVENV_BASE_IMAGE") or None
        self.redis_image = redis_image or os.environ.get("DEVENV_REDIS_IMAGE") or None
        self.name_prefix = name_prefix
        self.network = network or f"{name_prefix}{NETWORK}"
        self.bind_env = tuple(bind_env)
        self.rebuild = rebuild
        self.stop_timeout = stop_timeout
        self._progress = progress
        self._registry = registry
        self._docker = docker_client

    def __repr__(self) -> str:
        return f"DockerStack({str(self.state_dir)!r}, reload={self.reload})"

    def _say(self, line: str) -> None:
        (self._progress or logger.info)(line)

    # -- the engine ----------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The Docker SDK client; ``TargetUnavailable`` (a ``StackError``) if there is no engine to talk to."""
        if self._docker is not None:
            return self._docker
        try:
            import docker
            import docker.errors
        except ImportError:
            raise TargetUnavailable(
                "the docker target needs the Docker SDK for Python: pip install 'devenv[docker]'"
            ) from None
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            client = docker.from_env(timeout=10)
            client.ping()
        except Exception as exc:  # DockerException, requests' ConnectionError, OSError: all mean "no engine"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TargetUnavailable(
                f"cannot reach the Docker engine at {where} ({reason}); is dockerd running? "
                "(start it, or set DOCKER_HOST)"
            ) from exc
        client.api.timeout = 600  # from now on: a build step may print nothing for minutes
        self._docker = client
        return client

    def _errors(self) -> Any:
        import docker.errors

        return docker.errors

    def _container(self, ident: str) -> Any | None:
        try:
            return self.client.containers.get(ident)
        except self._errors().NotFound:
            return None

    def _image_exists(self, ref: str) -> bool:
        try:
            self.client.images.get(ref)
        except self._errors().ImageNotFound:
            return False
        return True

    # -- the contract ------------------------------------------------------------------------

    def up(self, services: list[str] | None = None, wait: bool = True, timeout: float = 30) -> dict[str, str]:
        """Build what is missing, start Redis and ``services``; with ``wait``, return once each
        answers ``GET /ready`` (``timeout`` counts from the start of the containers, not the build)."""
        self.client  # noqa: B018 - no engine: TargetUnavailable before anything else
        with self._lock():
            state = self._load()
            if state is not None:
                running = [n for n, rec in state["services"].items() if self._running(rec["container"])]
                if running:
                    raise StackError(
                        f"a docker stack is already running from {self.state_dir} ({', '.join(running)}); "
                        "stop it first with `devenv down --target docker`"
                    )
                self._remove(state)  # stale: its containers have exited
                self._forget()
            names = list(dict.fromkeys(services)) if services else self.registry.names()
            if not names:
                raise StackError(
                    f"no services to start: found no <name>/service.py in package {self.registry.package!r}"
                )
            known = self.registry.names()
            for name in names:
                if name not in known:
                    raise ServiceNotFound(name, known)  # before any container or build
            self._check_names_free([self._name(REDIS_CONTAINER), *(self._name(container_name(n)) for n in names)])
            images = self.build(names)
            redis_image = self._resolve_image(self.redis_image, DEFAULT_REDIS_IMAGE, OFFLINE_REDIS_IMAGE, "Redis")
            volumes, mounted = self._volumes()
            env = self._service_env(names, mounted)
            state: dict[str, Any] = {
                "version": _STATE_VERSION,
                "target": self.target,
                "started_at": now(),
                "reload": self.reload,
                "network": {"name": self.network, "created": False},
                "redis": None,
                "services": {},
            }
            try:
                state["network"]["created"] = self._ensure_network()
                self._save(state)
                saving = threading.Lock()

                def start(name: str | None) -> None:
                    if name is None:
                        rec = self._run_redis(redis_image)
                    else:
                        self._say(f"starting {self._name(container_name(name))} ({images[name]})")
                        rec = self._run_service(name, images[name], env, volumes)
                    with saving:  # after each start, so `devenv down` can stop a half-started stack
                        if name is None:
                            state["redis"] = rec
                        else:
                            state["services"][name] = rec
                        self._save(state)

                _in_parallel(start, [None, *names])  # one at a time takes ~0.8 s per container
                state["services"] = {name: state["services"][name] for name in names}
                self._save(state)
                urls = {name: rec["url"] for name, rec in state["services"].items()}
                write_atomic(self.env_file, self._env_file_text(urls))
            except BaseException:
                self._remove(state)
                self._forget()
                raise
        if wait:
            try:
                self._wait_ready(state["services"], timeout)
            except BaseException:  # includes Ctrl-C while waiting: leave nothing behind
                with self._lock():
                    self._remove(state)
                    self._forget()
                raise
        return dict(urls)

    def down(self) -> list[str]:
        if self._load() is None:
            # No state: nothing to do, unless a crashed `up` left labelled containers behind.
            try:
                if not self.state_dir.is_dir() or not self._labelled_containers():
                    return []
            except TargetUnavailable:
                return []
        with self._lock():
            state = self._load()
            running = [n for n, rec in (state or {}).get("services", {}).items() if self._running(rec["container"])]
            self._remove(state)
            self._forget()
        return running

    def status(self) -> list[ServiceStatus]:
        state = self._load()
        if state is None:
            return []
        services = state["services"]
        containers = {name: self._container(rec["container"]) for name, rec in services.items()}
        health: dict[str, str] = {}
        pids: dict[str, int | None] = {}
        for name, container in containers.items():
            running = container is not None and container.status == "running"
            health[name] = "probe" if running else STOPPED
            pids[name] = container.attrs["State"].get("Pid") if running else None
        probe = [n for n, h in health.items() if h == "probe"]
        if probe:
            import httpx

            with httpx.Client(timeout=httpx.Timeout(1.0, connect=0.5), trust_env=False) as client:
                for name in probe:
                    health[name] = LocalStack._probe(client, name, services[name]["url"])
        return [
            ServiceStatus(
                name=n,
                url=rec["url"],
                pid=pids[n],
                health=health[n],
                port=rec["port"],
                log=f"docker logs {rec['name']}",
            )
            for n, rec in services.items()
        ]

    def logs(self, service: str) -> str:
        state = self._load()
        records = dict((state or {}).get("services", {}))
        if state and state.get("redis"):
            records.setdefault("redis", state["redis"])
        rec = records.get(service)
        if rec is not None:
            container = self._container(rec["container"])
            if container is not None:
                return container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        path = self.state_dir / f"{service}.log"  # kept by `down`
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            hint = f"; services of the stack: {', '.join(sorted(records))}" if records else ""
            raise StackError(f"no log for service {service!r} in {self.state_dir}{hint}") from None

    # -- images --------------------------------------------------------------------------------

    def _project(self) -> Path:
        import devenv

        candidates = (
            [self.project_dir]
            if self.project_dir
            else [
                Path(p)
                for p in (os.environ.get("DEVENV_PROJECT_DIR"), Path(devenv.__file__).parents[1], Path.cwd())
                if p
            ]
        )
        for folder in candidates:
            if (folder / "Dockerfile").is_file() and (folder / "pyproject.toml").is_file():
                return folder
        raise StackError(
            "the docker target builds its images from the project's Dockerfile and found none in "
            f"{', '.join(str(c) for c in candidates)}; run it from the project, or set DEVENV_PROJECT_DIR"
        )

    def _context_files(self, project: Path) -> list[str]:
        """What goes into the build context: the files the project's .dockerignore lets in."""
        from docker.utils.build import exclude_paths

        ignore = project / ".dockerignore"
        patterns = []
        if ignore.is_file():
            for line in ignore.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    patterns.append(line)
        included = exclude_paths(str(project), patterns, dockerfile="Dockerfile")
        return sorted(p for p in included if (project / p).is_file() and not p.startswith("wheelhouse/"))

    def build(self, services: list[str] | None = None) -> dict[str, str]:
        """``{service: image}`` for ``services`` (default: all), building the images that do not
        exist yet (all of them with ``rebuild``). ``up()`` calls it; so can a kind target."""
        names = list(dict.fromkeys(services)) if services else self.registry.names()
        known = self.registry.names()
        for name in names:
            if name not in known:
                raise ServiceNotFound(name, known)
        project = self._project()
        base = self._resolve_image(self.base_image, DEFAULT_BASE_IMAGE, OFFLINE_BASE_IMAGE, "base")
        stage = "dev" if self.reload else "runtime"
        files = self._context_files(project)
        digest = hashlib.sha256()
        for part in (f"base={self.client.images.get(base).id}", f"stage={stage}", "PIP_NO_INDEX=1"):
            digest.update(part.encode() + b"\0")
        for rel in files:
            digest.update(rel.encode() + b"\0" + (project / rel).read_bytes() + b"\0")
        tag = digest.hexdigest()[:12] + ("-dev" if self.reload else "")
        images = {name: f"{IMAGE_REPOSITORY.format(service=name)}:{tag}" for name in names}
        missing = [n for n in names if self.rebuild or not self._image_exists(images[n])]
        if not missing:
            self._say(f"images up to date ({tag}); nothing to build")
            return images
        import tarfile
        import tempfile

        with tempfile.TemporaryDirectory(prefix="devenv-build-") as tmp:
            work = Path(tmp)
            wheelhouse = self._wheelhouse(project, base, work)
            context = work / "context.tar"
            with tarfile.open(context, "w") as tar:
                for rel in files:
                    tar.add(project / rel, arcname=rel, recursive=False)
                tar.add(wheelhouse, arcname="wheelhouse")
            for n, name in enumerate(missing, 1):
                self._say(f"building {images[name]} ({n}/{len(missing)}) from {base}")
                self._build(context, images[name], name, base, stage, tag)
        for name in missing:
            self._prune_old(name, images[name])
        return images

    def _resolve_image(self, chosen: str | None, default: str, offline: str, what: str) -> str:
        """``chosen``, else ``default`` if here, else ``offline`` if here, else ``default`` pulled
        (``TargetUnavailable`` if that fails: no registry and no offline image)."""
        errors = self._errors()
        candidates = [chosen] if chosen else [default, offline]
        for ref in candidates:
            if self._image_exists(ref):
                return ref
        ref = chosen or default
        self._say(f"pulling {ref}")
        try:
            self.client.images.pull(ref)
        except errors.APIError as exc:
            hint = f"; {_OFFLINE_HINT} (it makes {offline})" if not chosen else ""
            raise TargetUnavailable(
                f"the {what} image {ref} is not here and cannot be pulled: {exc.explanation or exc}{hint}"
            ) from None
        return ref

    def _target_python(self, base: str) -> dict[str, str]:
        """The base image's Python: version, machine, glibc (the wheels must fit it, not the host)."""
        probe = (
            "import json, platform, sys; print(json.dumps({'version': platform.python_version(), "
            "'machine': platform.machine(), 'libc': platform.libc_ver()[1]}))"
        )
        try:
            out = self._run_once(base, ["python3", "-c", probe], {})
        except _Failed as exc:
            raise StackError(f"the base image {base} has no usable python3: {_tail(str(exc))}") from None
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise StackError(f"the base image {base} has no usable python3: {out[-500:]}") from None

    def _run_once(self, image: str, command: list[str], volumes: dict[str, dict[str, str]]) -> str:
        errors = self._errors()
        try:
            out = self.client.containers.run(
                image, command, remove=True, network_mode="none", volumes=volumes, stdout=True, stderr=True, user="0"
            )
        except errors.ContainerError as exc:
            stderr = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else str(exc.stderr)
            raise _Failed(stderr) from None
        return out.decode("utf-8", "replace")

    def _wheelhouse(self, project: Path, base: str, work: Path) -> Path:
        """A folder with every wheel the image needs, fetched on the host; kept in the cache
        (``$XDG_CACHE_HOME/devenv/docker``) per base image and requirements, so that a code
        change does not fetch them again (``rebuild`` does).

        The host's pip resolves for the base image's Python and platform; markers, though,
        it evaluates for itself (python_full_version, say), so the base image's own pip then
        checks the wheelhouse offline and anything it misses is fetched too.
        """
        import tomllib

        pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
        optional = pyproject["project"].get("optional-dependencies", {})
        extras = [r for extra in IMAGE_EXTRAS for r in optional.get(extra, [])]  # what the Dockerfile installs
        requirements = [
            *pyproject["project"].get("dependencies", []),
            *extras,
            *pyproject["build-system"].get("requires", []),
        ]
        key = json.dumps({"base": self.client.images.get(base).id, "requirements": requirements}, sort_keys=True)
        cached = _cache_dir() / "wheelhouse" / hashlib.sha256(key.encode()).hexdigest()[:16]
        complete = cached.with_name(cached.name + ".complete")
        if complete.is_file() and cached.is_dir() and not self.rebuild:
            self._say(f"wheels from the cache ({cached})")
            return cached
        target = self._target_python(base)
        (work / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        house = work / "wheelhouse"
        house.mkdir()
        self._say(f"fetching wheels for Python {target['version']} ({target['machine']}, glibc {target['libc']})")
        self._pip_download(requirements, house, target)
        check = (
            "if python3 -m pip --version >/dev/null 2>&1; then set -- python3 -m pip; "
            "else w=$(ls /usr/share/python-wheels/pip-*.whl 2>/dev/null | head -n 1); "
            '[ -n "$w" ] || { echo "no pip in the base image" >&2; exit 3; }; set -- python3 "$w/pip"; fi; '
            'PIP_ROOT_USER_ACTION=ignore "$@" download --quiet --disable-pip-version-check --no-cache-dir '
            "--no-index --find-links /wheelhouse --only-binary=:all: --dest /tmp/check "
            "--requirement /requirements.txt"
        )
        volumes = {
            str(house): {"bind": "/wheelhouse", "mode": "ro"},
            str(work / "requirements.txt"): {"bind": "/requirements.txt", "mode": "ro"},
        }
        for _ in range(8):
            try:
                self._run_once(base, ["sh", "-c", check], volumes)
                return _keep(house, cached, complete)
            except _Failed as exc:
                missing = re.findall(r"No matching distribution found for (\S[^;\n]*)", str(exc))
                if not missing:
                    raise StackError(f"the base image {base} cannot install the wheels:\n{_tail(str(exc))}") from None
            self._pip_download([m.strip() for m in missing], house, target)
        raise StackError(f"the wheels for {base} are still incomplete after several rounds: {missing}")

    @staticmethod
    def _pip_download(requirements: list[str], dest: Path, target: Mapping[str, str]) -> None:
        arch = target["machine"]
        platforms = []
        if target.get("libc"):
            major, minor = (int(x) for x in target["libc"].split(".")[:2])
            platforms += [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
            platforms += [f"manylinux2014_{arch}"]
            if arch in ("x86_64", "i686"):
                platforms += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        cmd += ["--only-binary=:all:", "--implementation", "cp", "--python-version", target["version"]]
        cmd += [arg for p in platforms for arg in ("--platform", p)]
        cmd += ["--dest", str(dest), *requirements]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise StackError(
                f"pip could not fetch the wheels for the image ({' '.join(requirements)}):\n"
                f"{_tail(proc.stderr or proc.stdout)}"
            )

    def _build(self, context: Path, image: str, service: str, base: str, stage: str, tag: str) -> None:
        errors = self._errors()
        lines: list[str] = []
        with open(context, "rb") as f:
            try:
                for chunk in self.client.api.build(
                    fileobj=f,
                    custom_context=True,
                    tag=image,
                    target=stage,
                    buildargs={
                        "SERVICE": service,
                        "BASE_IMAGE": base,
                        "PIP_NO_INDEX": "1",
                        "EXTRAS": ",".join(IMAGE_EXTRAS),
                    },
                    labels={LABEL_SERVICE: service, LABEL_CONTENT: tag},
                    rm=True,
                    forcerm=True,
                    pull=False,
                    decode=True,
                ):
                    if "stream" in chunk:
                        lines.extend(chunk["stream"].splitlines())
                    if "error" in chunk:
                        raise StackError(
                            f"building {image} failed: {chunk['error'].strip()}\n{_tail(chr(10).join(lines))}"
                        )
            except errors.APIError as exc:
                raise StackError(f"building {image} failed: {exc.explanation or exc}") from exc

    def _prune_old(self, service: str, keep: str, keep_last: int = 3) -> None:
        """Untag this service's older devenv images beyond the ``keep_last`` newest (of the same
        variant, reload or not) that no container uses. They share all but a small top layer, so
        a few stay for other checkouts or a quick switch back; the build cache stays too."""
        errors = self._errors()
        dev = keep.endswith("-dev")
        ours = [
            image
            for image in self.client.images.list(name=IMAGE_REPOSITORY.format(service=service))
            if image.labels.get(LABEL_SERVICE) == service
            and keep not in image.tags
            and any(ref.endswith("-dev") == dev for ref in image.tags)
        ]
        ours.sort(key=lambda image: image.attrs.get("Created", ""), reverse=True)
        for image in ours[max(0, keep_last - 1) :]:
            for ref in image.tags:
                with contextlib.suppress(errors.APIError):  # in use by a container: it stays
                    self.client.images.remove(ref)

    # -- containers ----------------------------------------------------------------------------

    def _name(self, name: str) -> str:
        """The container's name: ``<service>-service``, after ``name_prefix`` if one was given."""
        return f"{self.name_prefix}{name}"

    def _endpoint(self, alias: str) -> dict[str, Any]:
        """On the stack's network the container answers to ``alias`` whatever its name."""
        return {self.network: self.client.api.create_endpoint_config(aliases=[alias])}

    def _labels(self, service: str) -> dict[str, str]:
        return {LABEL_STACK: str(self.state_dir), LABEL_SERVICE: service}

    def _labelled_containers(self) -> list[Any]:
        return self.client.containers.list(all=True, filters={"label": f"{LABEL_STACK}={self.state_dir}"})

    def _check_names_free(self, names: list[str]) -> None:
        for name in names:
            container = self._container(name)
            if container is None:
                continue
            owner = container.labels.get(LABEL_STACK)
            if owner == str(self.state_dir):
                container.remove(force=True)  # ours, from a run whose state was lost
                continue
            whose = f"the docker stack of {owner}" if owner else "something other than devenv"
            fix = f"`devenv down --target docker --state-dir {owner}`" if owner else f"`docker rm -f {name}`"
            raise StackError(
                f"a container named {name!r} already exists, started by {whose}; the docker target needs the "
                f"name (it is the service's DNS name). Stop it with {fix}"
            )

    def _ensure_network(self) -> bool:
        """Make the network unless it exists; True if this stack made it (and so removes it)."""
        if self._networks(self.network):
            return False
        self.client.networks.create(self.network, driver="bridge", labels={LABEL_STACK: str(self.state_dir)})
        return True

    def _networks(self, name: str) -> list[Any]:
        """Networks called exactly ``name`` (the engine's filter matches parts of names too)."""
        return [n for n in self.client.networks.list(names=[name]) if n.name == name]

    def _service_env(self, names: list[str], mounted: Mapping[str, str]) -> dict[str, str]:
        env = {
            key: value
            for key, value in self.env.items()
            if not key.startswith("DEVENV_URL_") and key not in ("REDIS_URL", "DEVENV_SERVICES")
        }
        env["K8S_MODE"] = self.env.get("K8S_MODE", "true")
        env["REDIS_URL"] = f"redis://{REDIS_CONTAINER}:{REDIS_PORT}/0"
        env["DEVENV_SERVICES"] = ",".join(names)
        env.update(mounted)
        return env

    def _volumes(self) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """Bind mounts: the host folders named in ``env`` (at the same, absolute, path inside: returned
        as env overrides), and with ``reload`` the project's source over the image's copy."""
        volumes: dict[str, dict[str, str]] = {}
        mounted: dict[str, str] = {}
        for key in self.bind_env:
            raw = self.env.get(key)
            if not raw:
                continue
            path = Path(raw).expanduser().absolute()
            path.mkdir(parents=True, exist_ok=True)
            _grant_write(path, APP_UID)
            volumes[str(path)] = {"bind": str(path), "mode": "rw"}
            mounted[key] = str(path)
        if self.reload:
            project = self._project()
            for package in ("devenv", "services"):
                volumes[str(project / package)] = {"bind": f"/app/{package}", "mode": "ro"}
        return volumes, mounted

    def _run_redis(self, image: str) -> dict[str, Any]:
        self._say(f"starting {self._name(REDIS_CONTAINER)} ({image})")
        container = self.client.containers.run(
            image,
            _REDIS_COMMAND,
            name=self._name(REDIS_CONTAINER),
            hostname=REDIS_CONTAINER,
            network=self.network,
            networking_config=self._endpoint(REDIS_CONTAINER),
            labels=self._labels("redis"),
            ports={f"{REDIS_PORT}/tcp": ("127.0.0.1", None)},
            detach=True,
        )
        port = self._published_port(container, REDIS_PORT)
        return {
            "container": container.id,
            "name": container.name,
            "image": image,
            "port": port,
            "url": f"redis://127.0.0.1:{port}/0",
        }

    def _run_service(
        self, name: str, image: str, env: dict[str, str], volumes: dict[str, dict[str, str]]
    ) -> dict[str, Any]:
        container = self.client.containers.run(
            image,
            name=self._name(container_name(name)),
            hostname=container_name(name),
            network=self.network,
            networking_config=self._endpoint(container_name(name)),
            environment=env,
            labels=self._labels(name),
            ports={f"{CONTAINER_PORT}/tcp": ("127.0.0.1", None)},
            volumes=volumes,
            detach=True,
        )
        port = self._published_port(container, CONTAINER_PORT)
        return {
            "container": container.id,
            "name": container.name,
            "image": image,
            "port": port,
            "url": f"http://127.0.0.1:{port}",
            "started_at": now(),
        }

    @staticmethod
    def _published_port(container: Any, port: int) -> int:
        deadline = time.monotonic() + 10
        while True:
            container.reload()
            bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp") or []
            for binding in bindings:
                if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
                    return int(binding["HostPort"])
            if container.status not in ("created", "running") or time.monotonic() > deadline:
                logs = container.logs().decode("utf-8", "replace")
                raise StackError(
                    f"container {container.name} is {container.status} and publishes no port {port}. "
                    f"Last lines of its log:\n{_tail(logs)}"
                )
            time.sleep(0.05)

    def _running(self, ident: str) -> bool:
        container = self._container(ident)
        return container is not None and container.status in ("created", "running", "restarting")

    def _remove(self, state: Mapping[str, Any] | None) -> None:
        """Keep each container's log, remove the containers (all at once) and the network if ours."""
        errors = self._errors()
        records: list[tuple[str, str]] = []
        if state:
            records += [(name, rec["container"]) for name, rec in state.get("services", {}).items()]
            if state.get("redis"):
                records.append(("redis", state["redis"]["container"]))
        known = {ident for _, ident in records}
        records += [  # labelled ours but not recorded: a crash between `run` and the state write
            (c.labels.get(LABEL_SERVICE, c.name), c.id) for c in self._labelled_containers() if c.id not in known
        ]

        def remove(record: tuple[str, str]) -> None:
            name, ident = record
            container = self._container(ident)
            if container is None:
                return
            with contextlib.suppress(errors.APIError):
                if container.status == "running":
                    container.stop(timeout=int(self.stop_timeout))
                self._keep_log(name, container)
            with contextlib.suppress(errors.NotFound):
                container.remove(force=True)

        _in_parallel(remove, records)
        if state and state.get("network", {}).get("created"):
            for network in self._networks(state["network"]["name"]):
                if (network.attrs.get("Labels") or {}).get(LABEL_STACK) != str(self.state_dir):
                    continue
                network.reload()
                if network.containers:
                    continue  # someone else's containers joined it; leave it to them
                with contextlib.suppress(errors.NotFound):
                    network.remove()

    def _keep_log(self, name: str, container: Any) -> None:
        if not self.state_dir.is_dir():
            return
        fd = open_nofollow(self.state_dir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "wb") as f:
            f.write(f"# devenv: docker logs {container.name} ({container.image.tags or container.image.id})\n".encode())
            f.write(container.logs(stdout=True, stderr=True))

    def _wait_ready(self, services: Mapping[str, Mapping[str, Any]], timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        pending = list(services)
        last: dict[str, str] = {}
        self._say(f"waiting for {', '.join(pending)} to answer GET /ready")
        with httpx.Client(timeout=httpx.Timeout(2.0, connect=0.5), trust_env=False) as client:
            while True:
                for name in list(pending):
                    rec = services[name]
                    container = self._container(rec["container"])
                    if container is None or container.status not in ("created", "running"):
                        state = container.attrs["State"] if container is not None else {}
                        how = f"exited with code {state.get('ExitCode')}" if state else "disappeared"
                        logs = container.logs().decode("utf-8", "replace") if container is not None else ""
                        raise StackError(
                            f"service {name!r} ({rec['name']}) {how} before it answered GET /ready. "
                            f"Last lines of its log:\n{_tail(logs)}"
                        )
                    last[name] = self._probe_ready(client, rec["url"])
                    if last[name] == "ready":
                        pending.remove(name)
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    details = "\n".join(
                        f"--- {name} ({last.get(name, 'not probed')}), last lines of its log:\n{_tail(self.logs(name))}"
                        for name in pending
                    )
                    raise StackError(
                        f"timed out after {timeout:g}s waiting for {', '.join(repr(n) for n in pending)} "
                        f"to answer GET /ready\n{details}"
                    )
                time.sleep(0.1)

    @staticmethod
    def _probe_ready(client: Any, url: str) -> str:
        import httpx

        try:
            response = client.get(f"{url}/ready")
        except httpx.TransportError:
            return "unreachable"
        if response.status_code == 200:
            return "ready"
        return f"not ready: HTTP {response.status_code} {response.text[:200]}"

    # -- state ---------------------------------------------------------------------------------

    @property
    def damaged_hint(self) -> str:
        return f"remove the containers labelled {LABEL_STACK}={self.state_dir} and delete it"

    def _check_state(self, state: dict[str, Any]) -> None:
        for rec in state["services"].values():
            missing = {"container", "name", "port", "url"} - set(rec)
            if missing:
                raise KeyError(", ".join(sorted(missing)))


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "devenv" / "docker"


def _keep(house: Path, cached: Path, complete: Path) -> Path:
    """Move the checked wheelhouse into the cache (atomically); return where it now is."""
    import shutil

    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        complete.unlink(missing_ok=True)
        if cached.is_dir() and not cached.is_symlink():
            shutil.rmtree(cached)
        shutil.copytree(house, cached.with_name(f".{cached.name}.{os.getpid()}"), symlinks=True)
        os.replace(cached.with_name(f".{cached.name}.{os.getpid()}"), cached)
        write_atomic(complete, now() + "\n")
    except OSError as exc:
        logger.warning("could not keep the wheels in %s: %s", cached, exc)
        return house
    return cached


def _in_parallel(fn: Callable[[Any], None], items: list[Any]) -> None:
    """``fn(item)`` for each item in threads; once all have finished, raise the first error."""
    if not items:
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, len(items)), thread_name_prefix="devenv-docker") as pool:
        futures = [pool.submit(fn, item) for item in items]
    for future in futures:
        exc = future.exception()
        if exc is not None:
            raise exc


class _Failed(Exception):
    """A one-off container exited non-zero; the message is its stderr."""
