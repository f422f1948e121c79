"""The ``devenv`` command. Heavy modules are imported inside commands, so ``--help`` stays fast."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Optional

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
    port: Annotated[Optional[int], typer.Option(help="Port (default: the service's own, else 8080)")] = None,
    reload: Annotated[bool, typer.Option(help="Restart when a source file changes")] = False,
) -> None:
    """Serve one service: POST /mcp, POST /tools/{name}, /health, /ready, /metrics."""
    import uvicorn

    from .errors import DevenvError
    from .tools import default_registry

    try:
        svc = default_registry().get(service)
    except DevenvError as exc:
        raise _fail(str(exc)) from None
    os.environ["DEVENV_SERVICE"] = service  # read by the factory, also in reload's worker process
    reload_dirs = None
    if reload:
        import devenv

        services_dir = os.path.dirname(os.path.dirname(sys.modules[type(svc).__module__].__file__ or ""))
        pkg = sys.modules[default_registry().package]
        reload_dirs = [os.path.dirname(devenv.__file__), *list(getattr(pkg, "__path__", [])), services_dir]
    uvicorn.run(
        "devenv.server:app_from_env",
        factory=True,
        host=host,
        port=port or svc.port or 8080,
        reload=reload,
        reload_dirs=reload_dirs,
        log_config=None,  # the factory installs JSON logging
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@app.command()
def tools(
    service: Annotated[Optional[str], typer.Argument(help="Only this service")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the MCP tool definitions as JSON")] = False,
) -> None:
    """List tools, in whichever mode the environment says (K8S_MODE)."""
    from .client import MCPClient
    from .errors import DevenvError
    from .tools import default_registry

    names = [service] if service else default_registry().names()
    client = MCPClient()
    try:
        listing = {name: client.list_tools(name) for name in names}
    except DevenvError as exc:
        raise _fail(str(exc)) from None
    finally:
        client.close()
    if as_json:
        typer.echo(json.dumps(listing, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("tool", "annotations", "description", title=f"tools ({client.mode})")
    for name, defs in listing.items():
        for d in defs:
            hints = ", ".join(k.removesuffix("Hint") for k, v in d.get("annotations", {}).items() if v is True)
            table.add_row(f"{name}/{d['name']}", hints, (d.get("description") or "").splitlines()[0])
    Console().print(table)


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
    app()
