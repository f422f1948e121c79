"""The `devenv` command: start-up import weight, and `call`, `tools`, `serve` against a throwaway package."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
import uuid

import pytest
from typer.testing import CliRunner

from devenv import ConfigError, Service, config, tools
from devenv.cli import app

HEAVY = ("fastapi", "uvicorn", "httpx", "redis", "pydantic", "prometheus_client", "starlette")

# -- import weight (like typer's tests/test_rich_import.py) ---------------------------------


def loaded_heavy_modules(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; return the heavy top-level packages it left in sys.modules."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import sys
        print("HEAVY=" + " ".join(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("HEAVY=")]
    return line.removeprefix("HEAVY=").split()


def test_importing_the_cli_loads_no_heavy_module():
    assert loaded_heavy_modules("import devenv.cli") == []


def test_cli_help_loads_no_heavy_module():
    code = """
        import devenv.cli
        try:
            devenv.cli.app(["--help"], prog_name="devenv")
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        else:
            raise AssertionError("--help did not exit")
        """
    assert loaded_heavy_modules(code) == []


def test_the_probe_would_notice_a_heavy_import():
    # Guards the test above against passing vacuously.
    assert "pydantic" in loaded_heavy_modules("import devenv.cli, devenv.tools")


# -- a throwaway services package -----------------------------------------------------------

GREETER = '''
from devenv import Service

service = Service("greeter")


@service.tool(read_only=True)
def hello(name: str, punctuation: str = "!") -> dict:
    """Greet someone by name."""
    return {"greeting": "hello " + name + punctuation}


@service.tool
def shout(words: list[str]) -> str:
    """Shout some words."""
    return " ".join(words).upper() + " ünïcode"


@service.tool(destructive=True)
def fail(message: str) -> None:
    """Always raises ValueError."""
    raise ValueError(message)
'''


@pytest.fixture
def services_package(tmp_path, monkeypatch):
    """A services package with one service, made the default registry's package for this test."""
    name = f"devenv_cli_test_pkg_{uuid.uuid4().hex[:12]}"
    root = tmp_path / name
    (root / "greeter").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "greeter" / "__init__.py").write_text("")
    (root / "greeter" / "service.py").write_text(GREETER)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr(config, "_dotenv_loaded", True)  # no ./.env leaks into these tests
    monkeypatch.setenv("DEVENV_SERVICES_PACKAGE", name)
    monkeypatch.delenv("K8S_MODE", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(tools, "_default", None)  # rebuilt over our package on first use
    yield name
    for module in list(sys.modules):
        if module == name or module.startswith(name + "."):
            del sys.modules[module]


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


# -- devenv call ----------------------------------------------------------------------------


def test_call_prints_the_json_result(services_package, cli):
    result = cli("call", "greeter/hello", '{"name": "Ada"}')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"greeting": "hello Ada!"}
    assert tools.default_registry().package == services_package


def test_call_prints_non_object_results_and_unicode(services_package, cli):
    result = cli("call", "greeter/shout", '{"words": ["a", "b"]}')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == "A B ünïcode"
    assert "ünïcode" in result.stdout  # not \\u-escaped


def test_call_without_arguments_sends_an_empty_object(services_package, cli):
    result = cli("call", "greeter/hello")
    assert result.exit_code == 1
    assert "InvalidArguments" in result.stderr
    assert "name: Field required" in result.stderr


@pytest.mark.parametrize("arguments", ['{"name": ', "{'name': 'x'}", "not json", ""])
def test_call_with_malformed_json_exits_2(services_package, cli, arguments):
    result = cli("call", "greeter/hello", arguments)
    assert result.exit_code == 2
    assert "error: arguments are not valid JSON" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("arguments", ["[1, 2]", '"text"', "3", "null", "true"])
def test_call_with_non_object_json_exits_2(services_package, cli, arguments):
    result = cli("call", "greeter/hello", arguments)
    assert result.exit_code == 2
    assert "error: arguments must be a JSON object" in result.stderr


def test_call_unknown_service_exits_1_naming_it(services_package, cli):
    result = cli("call", "nope/hello", "{}")
    assert result.exit_code == 1
    assert "error: ServiceNotFound: unknown service 'nope'; known services: greeter" in result.stderr


def test_call_unknown_tool_exits_1_listing_the_tools(services_package, cli):
    result = cli("call", "greeter/nope", "{}")
    assert result.exit_code == 1
    assert "error: ToolNotFound: service 'greeter' has no tool 'nope'; its tools: fail, hello, shout" in result.stderr


def test_call_a_failing_tool_exits_1_with_the_tool_error(services_package, cli):
    result = cli("call", "greeter/fail", '{"message": "it broke"}')
    assert result.exit_code == 1
    assert "error: ToolError: tool 'fail' failed: ValueError: it broke" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("uri", ["greeter", "greeter/", "/hello", "greeter/hello/extra"])
def test_call_with_a_malformed_uri_exits_1(services_package, cli, uri):
    result = cli("call", uri, "{}")
    assert result.exit_code == 1
    assert "error: ValueError: a tool is named 'service/tool'" in result.stderr


# -- devenv tools ---------------------------------------------------------------------------


def test_tools_json_lists_tool_definitions(services_package, cli):
    result = cli("tools", "--json")
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert list(listing) == ["greeter"]
    by_name = {d["name"]: d for d in listing["greeter"]}
    assert set(by_name) == {"hello", "shout", "fail"}
    hello = by_name["hello"]
    assert hello["description"] == "Greet someone by name."
    assert hello["inputSchema"]["required"] == ["name"]
    assert hello["inputSchema"]["additionalProperties"] is False
    assert hello["annotations"] == {"readOnlyHint": True, "idempotentHint": True}
    assert by_name["shout"]["outputSchema"]["x-devenv-wrapped"] is True
    assert by_name["fail"]["annotations"]["destructiveHint"] is True


def test_tools_json_for_one_service(services_package, cli):
    result = cli("tools", "greeter", "--json")
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)) == ["greeter"]


def test_tools_table(services_package, cli):
    result = cli("tools")
    assert result.exit_code == 0, result.output
    for uri in ("greeter/hello", "greeter/shout", "greeter/fail"):
        assert uri in result.stdout
    assert "Greet someone by name." in result.stdout
    assert "inprocess" in result.stdout


def test_tools_unknown_service_exits_1(services_package, cli):
    result = cli("tools", "nope", "--json")
    assert result.exit_code == 1
    assert "unknown service 'nope'" in result.stderr


# -- devenv serve ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["unknown", "Not_Valid"])
def test_serve_unknown_service_exits_1_naming_it(services_package, cli, name):
    result = cli("serve", name)
    assert result.exit_code == 1
    assert f"error: unknown service '{name}'; known services: greeter" in result.stderr


def test_no_arguments_shows_help(cli):
    result = cli()
    assert result.exit_code in (0, 2)  # click's no_args_is_help exit code differs across versions
    for command in ("serve", "tools", "call"):
        assert command in result.output


# -- devenv services ------------------------------------------------------------------------


def test_services_json_prints_each_declaration(services_package, cli):
    result = cli("services", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {
            "name": "greeter",
            "version": "0.1.0",
            "port": None,
            "requires": [],
            "calls": [],
            "secrets": [],
            "settings": [],
            "replicas": 2,
            "limits": {"cpu": "500m", "memory": "256Mi"},
            "tools": ["fail", "hello", "shout"],
            "resources": [],
            "prompts": [],
        }
    ]


def test_services_of_the_examples_declare_the_agents_calls():
    out = subprocess.run(
        [sys.executable, "-m", "devenv.cli", "services", "--json"], capture_output=True, text=True, check=True
    ).stdout
    by_name = {entry["name"]: entry for entry in json.loads(out)}
    assert set(by_name["inbox-agent"]["calls"]) == {
        "jd-classifier",
        "content-classifier",
        "file-system",
        "notifications",
    }
    assert by_name["jd-classifier"]["port"] == 8101


@pytest.mark.parametrize("calls", [("Bad Name",), ("greeter",), (1,)])
def test_calls_must_name_other_services(calls):
    with pytest.raises(ConfigError, match="calls="):
        Service("greeter", calls=calls)
