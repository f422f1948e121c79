"""Tilt's docker target: the Compose file derived from the ``Service(...)`` declarations, and the
dev image of one service, both made at Tilt's request (the Tiltfile runs this module)::

    python -m devenv.kit.compose file [--services a,b]   # the Compose YAML, on stdout (docker_compose())
    python -m devenv.kit.compose build NAME --ref REF     # the dev image of NAME, tagged REF ($EXPECTED_REF)

The file is never written to disk, so there is nothing generated to keep in step: Tilt renders it
on every load. Each service runs its image's ``dev`` stage (source in /app, ``devenv serve
--reload``) at its own port on 127.0.0.1, under its Kubernetes Service name on the Compose network
(``jd-classifier-service``, so discovery's default URL works as in a cluster), beside one Redis.
Images are built the way the docker target builds them (devenv.stack.docker: the wheels fetched on
the host, so a build needs no network), then tagged as Tilt asks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..tools import Registry, Service

__all__ = ["BIND_ENV", "compose_file", "main"]

#: Host folders a service works in: bound at the same absolute path (as the docker target does).
BIND_ENV = {"VAULT_ROOT": "vault", "UNSORTED_ROOT": "unsorted"}
CONTAINER_PORT = 8080
STACK_LABEL = {"devenv.stack": "tilt"}
REDIS_COMMAND = ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]


def _host_folders(environ: Mapping[str, str], project: Path) -> dict[str, str]:
    return {key: str((project / environ.get(key, default)).absolute()) for key, default in BIND_ENV.items()}


def compose_file(
    services: Sequence[Service], *, redis_image: str, folders: Mapping[str, str], log_level: str = "DEBUG"
) -> dict[str, Any]:
    """The Compose project for ``services`` (each with a port) and Redis."""
    names = [s.name for s in services]
    missing = [s.name for s in services if not s.port]
    if missing:
        raise ValueError(f"services {missing} declare no port: give each Service(..., port=N)")
    out: dict[str, Any] = {
        "services": {
            "redis": {"image": redis_image, "command": REDIS_COMMAND, "labels": dict(STACK_LABEL)},
        }
    }
    for service in services:
        out["services"][service.name] = {
            "image": f"devenv/{service.name}",  # what Tilt's build replaces with the image it made
            "environment": {
                "K8S_MODE": "true",  # calls between services go over the network, as in a cluster
                "REDIS_URL": "redis://redis:6379/0",
                "DEVENV_SERVICES": ",".join(names),
                "DEVENV_LOG_LEVEL": log_level,
                **folders,
            },
            "ports": [f"127.0.0.1:{service.port}:{CONTAINER_PORT}"],
            "networks": {"default": {"aliases": [f"{service.name}-service"]}},
            "volumes": [f"{path}:{path}" for path in folders.values()],
            # The image's HEALTHCHECK waits 10 s before its first probe; Tilt waits for healthy.
            "healthcheck": {"interval": "2s", "timeout": "3s", "retries": 30},
            "labels": {**STACK_LABEL, "devenv.service": service.name},
        }
    return out


def _image_here(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0


def _redis_image(environ: Mapping[str, str]) -> str:
    from ..stack.docker import DEFAULT_REDIS_IMAGE, OFFLINE_REDIS_IMAGE

    chosen = environ.get("DEVENV_REDIS_IMAGE")
    if chosen:
        return chosen
    return next((ref for ref in (DEFAULT_REDIS_IMAGE, OFFLINE_REDIS_IMAGE) if _image_here(ref)), DEFAULT_REDIS_IMAGE)


def _selected(registry: Registry, wanted: str) -> list[Service]:
    names = registry.names()
    chosen = [n.strip() for n in wanted.split(",") if n.strip()] or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise SystemExit(f"compose: unknown service {unknown[0]!r}; choose from {', '.join(names)}")
    return [registry.get(n) for n in names if n in chosen]


def _file(args: argparse.Namespace) -> int:
    from ..stack.docker import APP_UID, _grant_write

    project = Path(args.project).absolute()
    folders = _host_folders(os.environ, project)
    for path in folders.values():  # the app user (uid 1001) writes there, as with the docker target
        Path(path).mkdir(parents=True, exist_ok=True)
        _grant_write(Path(path), APP_UID)
    services = _selected(Registry(os.environ.get("DEVENV_SERVICES_PACKAGE", "services")), args.services)
    doc = compose_file(services, redis_image=_redis_image(os.environ), folders=folders)
    sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
    return 0


def _build(args: argparse.Namespace) -> int:
    from ..stack.docker import DockerStack

    ref = args.ref.strip()
    if not ref:
        raise SystemExit("compose build: --ref is empty (the Tiltfile passes Tilt's $EXPECTED_REF)")
    stack = DockerStack(
        Path(args.project) / ".devenv" / "tilt",
        reload=True,  # the Dockerfile's dev stage
        project_dir=args.project,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    (image,) = stack.build([args.name]).values()
    subprocess.run(["docker", "tag", image, ref], check=True)
    print(f"tagged {image} as {ref}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv.kit.compose", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default=".", help="the project folder (Dockerfile, services/)")
    commands = parser.add_subparsers(dest="command", required=True)
    file = commands.add_parser("file", help="print the Compose YAML")
    file.add_argument("--services", default="", help="comma-separated (default: all)")
    build = commands.add_parser("build", help="build NAME's dev image and tag it REF")
    build.add_argument("name")
    build.add_argument("--ref", required=True, help="the image reference to tag (Tilt's $EXPECTED_REF)")
    args = parser.parse_args(argv)
    return _file(args) if args.command == "file" else _build(args)


if __name__ == "__main__":
    raise SystemExit(main())
