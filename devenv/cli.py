"""The ``devenv`` command. Heavy modules are imported inside commands, so ``--help`` stays fast."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

app = typer.Typer(
    name="devenv",
    help="Run MCP tool services in-process, locally, in containers or on Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="Service name, e.g. jd-classifier")],
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 only inside a container")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (default: the service's own, else 8080)")] = None,
    reload: Annotated[bool, typer.Option(help="Restart when a source file changes")] = False,
) -> None:
    """Serve one service: POST /mcp, POST /tools/{name}, /health, /ready, /metrics."""
    from .errors import DevenvError
    from .ports import bind_port
    from .tools import default_registry

    registry = default_registry()
    os.environ["DEVENV_SERVICE"] = service  # read by the factory, also in reload's worker processes
    os.environ["DEVENV_BIND_HOST"] = host  # bound to loopback: the app accepts only loopback Host headers
    try:
        if reload:  # the service is imported by the workers only: a broken one is shown, not fatal
            from .stack.local import declared_port

            if service not in registry.names():
                registry.get(service)  # raises ServiceNotFound with the names there are
            chosen = port or declared_port(registry.package, service) or 8080
        else:
            chosen = port or registry.get(service).port or 8080
        sock = bind_port(host, chosen)
    except DevenvError as exc:
        raise _fail(str(exc)) from None
    if reload:
        from pathlib import Path

        import devenv

        from .reloader import serve_with_reload

        pkg = sys.modules[registry.package]
        # Watch the code that can change (devenv and the services package), not .venv or .git.
        roots = [Path(devenv.__file__).parent, *(Path(p) for p in getattr(pkg, "__path__", []))]
        own = next((r / service.replace("-", "_") for r in roots[1:] if (r / service.replace("-", "_")).is_dir()), None)
        raise typer.Exit(serve_with_reload(sock, service, roots, own))
    import logging

    import uvicorn

    config = uvicorn.Config(
        "devenv.server:app_from_env",
        factory=True,
        host=host,
        port=chosen,
        log_config=None,  # the factory installs JSON logging
        access_log=False,
        timeout_graceful_shutdown=10,
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:  # uvicorn stays silent when handed a socket; say where it listens, as it would
                scheme_host = f"http://{host}:{chosen}"
                logging.getLogger("uvicorn.error").info("Uvicorn running on %s (Press CTRL+C to quit)", scheme_host)

    server = Server(config)
    server.run(sockets=[sock])
    if not server.started:
        raise typer.Exit(3)  # the app failed to start; its log lines above say why


def _schema_type(schema: dict) -> str:
    """A short type name for one JSON Schema property: ``string``, ``integer[]``, ``string | null``, ``Level``."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_schema_type(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"{_schema_type(schema.get('items', {}))}[]"
    return " | ".join(kind) if isinstance(kind, list) else str(kind)


def _arguments(definition: dict) -> str:
    """One line per argument: ``name: type`` (required) or ``name: type = default``."""
    schema = definition.get("inputSchema") or {}
    required = set(schema.get("required", []))
    lines = []
    for name, prop in (schema.get("properties") or {}).items():
        line = f"{name}: {_schema_type(prop)}"
        if name not in required:
            line += f" = {json.dumps(prop.get('default'))}"
        lines.append(line)
    return "\n".join(lines) or "(no arguments)"


def _listing_failure(exc: BaseException) -> str:
    """Why one service's tools could not be listed, in a line (with file:line for a broken import)."""
    from .errors import DevenvError

    if isinstance(exc, DevenvError):
        return f"{type(exc).__name__}: {exc}"
    from .reloader import describe_failure

    failure = describe_failure(exc, [os.getcwd()])
    return f"{failure['error']} at {failure['where']}"


def _exit_on(failures: dict[str, str]) -> None:
    """Each service that could not be listed, on stderr; then exit 1 if there was one."""
    for name, why in failures.items():
        typer.secho(f"error: {name}: {why}", fg=typer.colors.RED, err=True)
    if failures:
        raise typer.Exit(1)


@app.command()
def tools(
    service: Annotated[str | None, typer.Argument(help="Only this service, with each tool's arguments")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the MCP tool definitions as JSON")] = False,
) -> None:
    """List tools, in whichever mode the environment says (K8S_MODE); exits 1 if a service could not be listed."""
    from .client import MCPClient
    from .errors import DevenvError, ServiceNotFound
    from .tools import default_registry

    try:
        names = [service] if service else default_registry().names()
        client = MCPClient()
    except DevenvError as exc:
        raise _fail(str(exc)) from None
    listing, failures = {}, {}
    try:
        for name in names:  # one broken service must not hide the others
            try:
                listing[name] = client.list_tools(name)
            except ServiceNotFound as exc:
                raise _fail(str(exc)) from None
            except Exception as exc:  # a service whose import fails raises whatever its code raises
                failures[name] = _listing_failure(exc)
    finally:
        client.close()
    if as_json:
        typer.echo(json.dumps(listing, indent=2))
    elif service and listing:  # one service: each tool with its arguments, as plain lines (never cut)
        for d in listing[service]:
            hints = ", ".join(k.removesuffix("Hint") for k, v in d.get("annotations", {}).items() if v is True)
            typer.echo(f"{service}/{d['name']}" + (f"  [{hints}]" if hints else ""))
            if d.get("description"):
                typer.echo(f"    {d['description'].splitlines()[0]}")
            for line in _arguments(d).splitlines():
                typer.echo(f"    {line}")
    elif listing:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"tools ({client.mode})")
        table.add_column("tool", no_wrap=True)  # names are what users copy: never cut them
        table.add_column("annotations")
        table.add_column("description")
        for name, defs in listing.items():
            for d in defs:
                hints = ", ".join(k.removesuffix("Hint") for k, v in d.get("annotations", {}).items() if v is True)
                table.add_row(f"{name}/{d['name']}", hints, (d.get("description") or "").splitlines()[0])
        Console().print(table)
    _exit_on(failures)


@app.command()
def services(
    as_json: Annotated[bool, typer.Option("--json", help="Print the declarations as JSON (Tilt reads this)")] = False,
) -> None:
    """List the services under services/ as their `Service(...)` declarations say; exits 1, naming
    the file and line, if one could not be imported (the others are still listed)."""
    from .errors import DevenvError
    from .tools import default_registry

    try:
        registry = default_registry()
        names = registry.names()
    except DevenvError as exc:
        raise _fail(str(exc)) from None
    catalogue, failures = [], {}
    for name in names:  # one broken service must not hide the others, nor fail with a traceback
        try:
            catalogue.append(registry.get(name).describe())
        except Exception as exc:  # a service whose import fails raises whatever its code raises
            failures[name] = _listing_failure(exc)
    if as_json:
        typer.echo(json.dumps(catalogue, indent=2))
    else:
        for entry in catalogue:
            calls = f"  calls {', '.join(entry['calls'])}" if entry["calls"] else ""
            typer.echo(f"{entry['name']:<24} port {entry['port'] or '-':<6} {len(entry['tools'])} tools{calls}")
    _exit_on(failures)


@app.command()
def call(
    uri: Annotated[str, typer.Argument(help="service/tool, e.g. jd-classifier/find_category")],
    arguments: Annotated[str, typer.Argument(help='JSON object, e.g. \'{"query": "tax"}\'')] = "{}",
) -> None:
    """Call one tool and print its JSON result (in-process, or remote when K8S_MODE=true)."""
    from .client import MCPClient
    from .errors import DevenvError

    try:
        args = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise _fail(f"arguments are not valid JSON: {exc}", 2) from None
    if not isinstance(args, dict):
        raise _fail("arguments must be a JSON object", 2)
    client = MCPClient()
    try:
        result = client.call(uri, args)
    except (DevenvError, ValueError) as exc:
        raise _fail(f"{type(exc).__name__}: {exc}") from None
    finally:
        client.close()
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))


def main() -> None:
    # Like uvicorn's --app-dir default: a services package in the current folder is importable.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app()


# -- stacks: up, down, status, env ----------------------------------------------------------


_TARGET_NAMES = ("local", "docker", "kind")  # devenv.stack.TARGETS, named here to keep --help light


def _check_target(value: str) -> str:
    if value not in _TARGET_NAMES:
        raise typer.BadParameter(f"{value!r} is not a target; choose from {', '.join(_TARGET_NAMES)}")
    return value


_Target = Annotated[
    str,
    typer.Option(
        "--target",
        "-t",
        envvar="DEVENV_TARGET",
        callback=_check_target,
        help="Where the stack runs: local (uvicorn processes), docker (containers) or kind (a cluster)",
    ),
]
_StateDir = Annotated[
    str | None,
    typer.Option(
        "--state-dir",
        envvar="DEVENV_STATE_DIR",
        show_default=".devenv",
        help="Where the stack's state, logs and env file live",
    ),
]


def _stack(target: str, state_dir: str | None, **options):
    from .stack import get_stack

    return get_stack(target, state_dir=state_dir, **options)


def _status_table(statuses, title: str):
    from rich.table import Table

    styles = {"healthy": "green", "stopped": "red"}
    table = Table("service", "url", "pid", "health", title=title, title_justify="left")
    for s in statuses:
        style = "red" if s.health.startswith("crashed") else styles.get(s.health, "yellow")
        table.add_row(s.name, s.url, str(s.pid) if s.pid else "-", f"[{style}]{s.health}[/]")
    return table


def _relative(path) -> str:
    """``path`` relative to the current directory when it is inside it, else as it is."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


@app.command()
def up(
    services: Annotated[list[str] | None, typer.Argument(help="Services to start (default: all)")] = None,
    reload: Annotated[bool, typer.Option("--reload/--no-reload", help="Restart a service on code changes")] = True,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Start in the background and return")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds to wait until every service answers (default: the target's own)")
    ] = None,
    port_base: Annotated[
        int | None,
        typer.Option(
            "--port-base",
            min=1,
            max=65535,
            help="local: ports from N up (skipping ones in use) instead of each service's declared port",
        ),
    ] = None,
    target: _Target = "local",
    state_dir: _StateDir = None,
    observe: Annotated[
        bool, typer.Option("--observe", help="Also run Prometheus (the machine's package) scraping the stack")
    ] = False,
) -> None:
    """Start services (local: one uvicorn process each on 127.0.0.1) and show them until Ctrl-C."""
    import contextlib
    import shlex
    import signal
    import threading

    from rich.console import Console

    from .errors import DevenvError

    console = Console()
    ports = {}
    if port_base is not None:
        if target != "local":
            raise _fail(f"--port-base is for the local target; the {target} target chooses its own ports", 2)
        ports = {"first_port": port_base, "declared_ports": False}
    try:
        stack = _stack(target, state_dir, reload=reload, **ports)
        with console.status("starting services, waiting for GET /health ..."):
            # Each target knows how long it needs: seconds for processes, minutes for rollouts.
            stack.up(services or None, **({} if timeout is None else {"timeout": timeout}))
    except KeyboardInterrupt:  # up() has already stopped what it started
        raise _fail("interrupted; nothing left running", 130) from None
    except DevenvError as exc:
        raise _fail(str(exc)) from None
    prometheus = _observe(stack, console) if observe else None
    env_file = _relative(stack.env_file)
    where = (f" --target {target}" if target != "local" else "") + (
        f" --state-dir {shlex.quote(state_dir)}" if state_dir else ""
    )
    if detach:
        console.print(_status_table(stack.status(), f"devenv stack ({target})"))
        console.print(f"env: {env_file}   point clients at it: eval $(devenv env{where})   stop: devenv down{where}")
        return

    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    logs = f"{_relative(stack.state_dir)}/<service>.log"
    caption = f"env: {env_file} (eval $(devenv env{where})) · logs: {logs} · Ctrl-C stops"
    title = f"devenv stack ({target}{', live reload' if reload else ''})"
    ended_elsewhere = False
    try:
        from rich.console import Group
        from rich.live import Live
        from rich.text import Text

        def view(statuses):
            return Group(_status_table(statuses, title), Text(caption, style="dim"))

        statuses = stack.status()
        # On a terminal the table updates in place; in a pipe or CI log: the table once, then changes.
        live = Live(view(statuses), console=console, auto_refresh=False) if console.is_terminal else None
        if live is None:
            console.print(view(statuses))
        with live or contextlib.nullcontext():
            while not stop.wait(0.5):  # a broken edit shows within a second of the save
                previous_health = {s.name: s.health for s in statuses}
                statuses = stack.status()
                if not statuses:  # `devenv down` in another terminal took the stack away
                    ended_elsewhere = True
                    break
                if live is not None:
                    live.update(view(statuses), refresh=True)
                    continue
                for s in statuses:
                    if previous_health.get(s.name) != s.health:
                        console.print(f"{s.name}: {s.health}")
    except KeyboardInterrupt:
        pass
    finally:
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not strand processes
        try:
            if prometheus is not None:
                from .stack.observe import stop_prometheus

                stop_prometheus(stack.state_dir)
            if ended_elsewhere:
                console.print("the stack was stopped by `devenv down`")
            else:
                console.print("stopping ...")
                stopped = stack.down()
                console.print(f"stopped {', '.join(stopped)}" if stopped else "stopped (nothing was still running)")
        finally:
            for sig, handler in [*previous.items(), (signal.SIGINT, interrupt)]:
                signal.signal(sig, handler)


def _observe(stack, console):
    """Start Prometheus for ``stack`` (``up --observe``); on failure stop the stack and say why."""
    from .errors import DevenvError
    from .stack.observe import start_prometheus

    try:
        prometheus = start_prometheus(stack.endpoints(), stack.state_dir)
    except DevenvError as exc:
        stack.down()
        raise _fail(f"{exc}\nthe stack was stopped") from None
    rules = "devenv's alert rules loaded" if prometheus.rules else "no alert rules (rules.yml not found)"
    console.print(f"Prometheus: {prometheus.url} (job devenv, {rules}; graph: {prometheus.url}/graph)")
    return prometheus


@app.command()
def down(target: _Target = "local", state_dir: _StateDir = None) -> None:
    """Stop the stack started by `devenv up` (detached or in another terminal)."""
    from .errors import DevenvError

    try:
        stack = _stack(target, state_dir)
        recorded = stack.endpoints()
        stopped = stack.down()
        if getattr(stack, "state_dir", None) is not None:
            from .stack.observe import stop_prometheus

            if stop_prometheus(stack.state_dir):
                typer.echo("stopped prometheus")
    except DevenvError as exc:
        raise _fail(str(exc)) from None
    if not recorded:
        typer.echo("no stack running: nothing to stop")
    elif not stopped:
        typer.echo(f"no stack running; removed the stale state of {', '.join(recorded)}")
    else:
        typer.echo(f"stopped {', '.join(stopped)}")


@app.command()
def status(target: _Target = "local", state_dir: _StateDir = None) -> None:
    """Show the stack's services: URL, pid and health (probed now)."""
    from .errors import DevenvError

    try:
        statuses = _stack(target, state_dir).status()
    except DevenvError as exc:
        raise _fail(str(exc)) from None
    if not statuses:
        typer.echo("no stack running")
        return
    from rich.console import Console

    console = Console()
    console.print(_status_table(statuses, f"devenv stack ({target})"))
    if not any(s.running for s in statuses):
        console.print("no stack running (these processes are gone); `devenv down` removes the stale state")
        return
    unhealthy = [s.name for s in statuses if not s.healthy]
    if unhealthy:  # a stack that runs with a broken or stopped service: scripts and `make` see it too
        typer.secho(f"not healthy: {', '.join(unhealthy)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


@app.command()
def env(target: _Target = "local", state_dir: _StateDir = None) -> None:
    """Print `export` lines that point a remote-mode client at the stack: eval $(devenv env)."""
    from .errors import DevenvError
    from .stack import env_exports

    try:
        statuses = _stack(target, state_dir).status()
    except DevenvError as exc:
        raise _fail(str(exc)) from None
    running = {s.name: s.url for s in statuses if s.running}
    if not running:
        raise _fail("no stack running; start one with `devenv up -d`")
    for s in statuses:
        if not s.running:
            typer.secho(f"warning: {s.name} is stopped; left out", fg=typer.colors.YELLOW, err=True)
    typer.echo("\n".join(env_exports(running)))


if __name__ == "__main__":  # `python -m devenv.cli`, as the local stack starts services
    main()


# -- the kit: generate, check, new (run in the project folder) ------------------------------


def _project():
    """The project folder (the current one) and its services package."""
    from pathlib import Path

    from .config import get_settings

    return Path.cwd(), get_settings().services_package


@app.command()
def generate() -> None:
    """Write the Kubernetes files derived from the Service(...) declarations (k8s/base/services, overlays)."""
    from .kit.check import load_services
    from .kit.manifests import generated_files, write_generated

    root, package = _project()
    services, problems = load_services(root, package)
    if problems:
        raise _fail("\n".join(map(str, problems)))
    touched = write_generated(root, generated_files(services, package))
    typer.echo(f"wrote {', '.join(touched)}" if touched else f"up to date ({len(services)} services)")


@app.command()
def check() -> None:
    """Name every file that disagrees with the Service(...) declarations (manifests, overlays, tests ...)."""
    import shutil

    from .kit.check import check_project

    root, package = _project()
    problems = check_project(root, package)
    if shutil.which("kubectl") is None:
        typer.secho("note: kubectl not found on PATH, so the rendered overlays were not checked", err=True)
    for problem in problems:
        typer.secho(f"- {problem}", fg=typer.colors.RED, err=True)
    if problems:
        raise _fail(f"{len(problems)} inconsistenc{'y' if len(problems) == 1 else 'ies'} (see above)")
    typer.echo(
        "consistent: every service's manifests, policies, overlay entries, settings and tests match its declaration"
    )


@app.command()
def new(name: Annotated[str, typer.Argument(help="The new service's name, lowercase words joined by '-'")]) -> None:
    """Scaffold a working service: package, one example tool, its unit test and the generated manifests."""
    from .errors import DevenvError
    from .kit.check import load_services
    from .kit.manifests import generated_files, write_generated
    from .kit.scaffold import new_service
    from .tools import Registry

    root, package = _project()
    try:
        written = new_service(root, name, package, Registry(package))
    except DevenvError as exc:
        raise _fail(str(exc)) from None
    services, problems = load_services(root, package)
    if problems:
        raise _fail("\n".join(map(str, problems)))
    written += write_generated(root, generated_files(services, package))
    for path in written:
        typer.echo(f"  wrote {path}")
    typer.echo(f"service {name!r} is ready: edit {written[1]}, then `make test` and `.venv/bin/devenv up`")
