"""Evaluate a Tiltfile without Tilt: the Starlark runs in starlark-pyo3, Tilt's builtins are recorded.

Tilt cannot run on the machines this project is tested on, so the Tiltfile is checked by
what it declares. Each builtin here has the parameters of Tilt's own API
(https://docs.tilt.dev/api.html), so a misspelt or unknown argument fails the evaluation as
it would in Tilt; each call is recorded as ``Call(name, args, kwargs)`` with the defaults
filled in. A few builtins compute, because the Tiltfile works on their results:
``kustomize`` runs the real ``kubectl kustomize``, ``decode_yaml_stream`` and
``encode_yaml_stream`` are PyYAML, ``local`` runs its command with ``sh -c`` in the
Tiltfile's folder (set ``run_local=False`` to only record it), ``os.path.exists`` looks.

What this cannot show: that Tilt builds, deploys, syncs or reloads anything.
"""

from __future__ import annotations

import inspect
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import starlark as sl
import yaml

__all__ = ["Call", "TiltfileRun", "evaluate"]

TRIGGER_MODE_AUTO = "TRIGGER_MODE_AUTO"
TRIGGER_MODE_MANUAL = "TRIGGER_MODE_MANUAL"


@dataclass
class Call:
    name: str
    args: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.args[key]


@dataclass
class TiltfileRun:
    """What one evaluation declared, in order."""

    calls: list[Call] = field(default_factory=list)
    config_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)

    def all(self, builtin: str, /) -> list[Call]:
        return [c for c in self.calls if c.name == builtin]

    def one(self, builtin: str, /, **match: Any) -> Call:
        """The one call of ``builtin`` whose arguments include ``match``."""
        found = [c for c in self.all(builtin) if all(c.args.get(k) == v for k, v in match.items())]
        assert len(found) == 1, f"expected one {builtin}({match}), found {len(found)}: {found}"
        return found[0]

    def k8s_objects(self) -> list[dict[str, Any]]:
        """Every object handed to k8s_yaml (YAML text or paths), parsed."""
        objects = []
        for call in self.all("k8s_yaml"):
            docs = call["yaml"] if isinstance(call["yaml"], list) else [call["yaml"]]
            for doc in docs:
                text = Path(doc).read_text() if "\n" not in doc and Path(doc).is_file() else doc
                objects += [o for o in yaml.safe_load_all(text) if o]
        return objects


# -- Tilt's signatures (https://docs.tilt.dev/api.html); the bodies are the stub's business ---------
# B006: Tilt's own defaults are lists and dicts; these functions are never called with them.


def allow_k8s_contexts(contexts): ...


def watch_file(file_path): ...


def local(command, quiet=False, command_bat="", echo_off=False, env={}, dir="", stdin=None): ...  # noqa: B006


def kustomize(pathToDir, kustomize_bin=None, flags=[]): ...  # noqa: N803, B006


def k8s_yaml(yaml, allow_duplicates=False): ...


def k8s_resource(
    workload="",
    new_name="",
    port_forwards=[],  # noqa: B006
    extra_pod_selectors=[],  # noqa: B006
    trigger_mode=TRIGGER_MODE_AUTO,
    resource_deps=[],  # noqa: B006
    objects=[],  # noqa: B006
    auto_init=True,
    pod_readiness="",
    links=[],  # noqa: B006
    labels=[],  # noqa: B006
    discovery_strategy="",
): ...


def docker_build(
    ref,
    context,
    build_args={},  # noqa: B006
    dockerfile="Dockerfile",
    dockerfile_contents="",
    live_update=[],  # noqa: B006
    match_in_env_vars=False,
    ignore=[],  # noqa: B006
    only=[],  # noqa: B006
    entrypoint=[],  # noqa: B006
    target="",
    ssh="",
    network="",
    secret="",
    extra_tag="",
    container_args=None,
    cache_from=[],  # noqa: B006
    pull=False,
    platform="",
    extra_hosts=[],  # noqa: B006
): ...


def local_resource(
    name,
    cmd="",
    deps=None,
    trigger_mode=TRIGGER_MODE_AUTO,
    resource_deps=[],  # noqa: B006
    ignore=[],  # noqa: B006
    auto_init=True,
    serve_cmd="",
    cmd_bat="",
    serve_cmd_bat="",
    allow_parallel=False,
    links=[],  # noqa: B006
    tags=[],  # noqa: B006
    env={},  # noqa: B006
    serve_env={},  # noqa: B006
    readiness_probe=None,
    dir="",
    serve_dir="",
    labels=[],  # noqa: B006
): ...


def sync(local_path, remote_path): ...


def run(cmd, trigger=[], echo_off=False): ...  # noqa: B006


def fall_back_on(files): ...


def define_setting(name, args=False, usage=""): ...


RECORDED = [allow_k8s_contexts, watch_file, k8s_yaml, k8s_resource, docker_build, local_resource]


def _bind(spec: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments by name with defaults filled in; TypeError for one Tilt does not have."""
    bound = inspect.signature(spec).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _parse_config_args(definitions: dict[str, dict[str, Any]], argv: list[str]) -> dict[str, Any]:
    """Tilt's config.parse(): ``--name=value`` or ``--name value``; a string_list collects every occurrence."""
    result: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            positional = [n for n, d in definitions.items() if d["args"]]
            if not positional:
                raise ValueError(f"positional argument {arg!r} but no setting takes args")
            result.setdefault(positional[0], []).append(arg)
            i += 1
            continue
        name, eq, value = arg[2:].partition("=")
        if name not in definitions:
            raise ValueError(f"unknown flag --{name}")
        if not eq:
            i += 1
            value = argv[i]
        kind = definitions[name]["kind"]
        if kind == "string_list":
            result.setdefault(name, []).append(value)
        elif kind == "bool":
            result[name] = value.lower() in ("1", "true", "yes")
        else:
            result[name] = value
        i += 1
    return result


def evaluate(
    tiltfile: str | os.PathLike[str],
    args: list[str] | None = None,
    *,
    run_local: bool = True,
    local_env: dict[str, str] | None = None,
    kubectl: str = "kubectl",
) -> TiltfileRun:
    """Evaluate ``tiltfile`` as ``tilt up -- <args>`` would; raise ``starlark.StarlarkError`` where Tilt would fail."""
    path = Path(tiltfile).absolute()
    root = path.parent
    declared = TiltfileRun()

    def recorder(spec: Any) -> Any:
        def call(*a: Any, **kw: Any) -> None:
            declared.calls.append(Call(spec.__name__, _bind(spec, a, kw)))

        call.__name__ = spec.__name__
        return call

    def local_(*a: Any, **kw: Any) -> str:
        args_ = _bind(local, a, kw)
        declared.calls.append(Call("local", args_))
        if not run_local:
            return ""
        command = args_["command"]
        cmd = command if isinstance(command, str) else shlex.join(command)
        proc = subprocess.run(
            ["sh", "-c", cmd],
            cwd=root / (args_["dir"] or "."),
            env={**os.environ, **(local_env or {}), **args_["env"]},
            input=args_["stdin"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"local({cmd!r}) failed with code {proc.returncode}: {proc.stderr}")
        return proc.stdout

    def kustomize_(*a: Any, **kw: Any) -> str:
        args_ = _bind(kustomize, a, kw)
        declared.calls.append(Call("kustomize", args_))
        cmd = [args_["kustomize_bin"], "build"] if args_["kustomize_bin"] else [kubectl, "kustomize"]
        proc = subprocess.run([*cmd, str(root / args_["pathToDir"]), *args_["flags"]], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"kustomize {args_['pathToDir']} failed: {proc.stderr}")
        return proc.stdout

    def decode_yaml_stream(yaml_text: str) -> list[Any]:
        return [doc for doc in yaml.safe_load_all(yaml_text) if doc is not None]

    def encode_yaml_stream(objs: list[Any]) -> str:
        return yaml.safe_dump_all(objs, sort_keys=False)

    def step(spec: Any) -> Any:
        def make(*a: Any, **kw: Any) -> dict[str, Any]:
            args_ = _bind(spec, a, kw)
            for key in ("trigger", "files"):
                if isinstance(args_.get(key), str):
                    args_[key] = [args_[key]]
            return {"step": spec.__name__, **args_}

        return make

    def config_define(kind: str) -> Any:
        def define(*a: Any, **kw: Any) -> None:
            args_ = _bind(define_setting, a, kw)
            declared.config_definitions[args_["name"]] = {"kind": kind, "args": args_["args"], "usage": args_["usage"]}

        return define

    def config_parse() -> dict[str, Any]:
        return _parse_config_args(declared.config_definitions, list(args or []))

    def path_exists(path_: str) -> bool:
        return (root / path_).exists()

    def tilt_print(*values: Any) -> None:
        declared.printed.append(" ".join(str(v) for v in values))

    # -- the module -------------------------------------------------------------------------------

    module = sl.Module()
    for spec in RECORDED:
        module.add_callable(spec.__name__, recorder(spec))
    module.add_callable("local", local_)
    module.add_callable("kustomize", kustomize_)
    module.add_callable("decode_yaml_stream", decode_yaml_stream)
    module.add_callable("encode_yaml_stream", encode_yaml_stream)
    for spec in (sync, run, fall_back_on):
        module.add_callable(spec.__name__, step(spec))
    module["TRIGGER_MODE_AUTO"] = TRIGGER_MODE_AUTO
    module["TRIGGER_MODE_MANUAL"] = TRIGGER_MODE_MANUAL
    for kind in ("string_list", "string", "bool"):
        module.add_callable(f"_config_define_{kind}", config_define(kind))
    module.add_callable("_config_parse", config_parse)
    module.add_callable("_os_path_exists", path_exists)
    module.add_callable("_print", tilt_print)
    dialect = sl.Dialect.extended()
    globals_ = sl.Globals.extended_by([sl.LibraryExtension.StructType])
    prelude = (
        "config = struct(define_string_list=_config_define_string_list, define_string=_config_define_string,"
        " define_bool=_config_define_bool, parse=_config_parse)\n"
        "os = struct(path=struct(exists=_os_path_exists))\n"
        "print = _print\n"
    )
    sl.eval(module, sl.parse("<tilt builtins>", prelude, dialect), globals_)
    sl.eval(module, sl.parse(str(path), path.read_text(), dialect), globals_)
    return declared
