"""The devenv pytest plugin, tested the way pytest plugins are: with pytester."""

from __future__ import annotations

import re
import textwrap

import pytest

pytest_plugins = ["pytester"]

SERVICE = '''
from devenv import Service

service = Service("greeter")


@service.tool(read_only=True)
def hello(name: str) -> str:
    """Say hello."""
    return f"hello {name}"
'''


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A user's project: a services package with one service, importable by the test run and its stacks."""
    pkg = pytester.path / "plugsvc"
    (pkg / "greeter").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "greeter" / "__init__.py").write_text("")
    (pkg / "greeter" / "service.py").write_text(SERVICE)
    monkeypatch.setenv("DEVENV_SERVICES_PACKAGE", "plugsvc")
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    monkeypatch.syspath_prepend(str(pytester.path))
    monkeypatch.setattr("devenv.tools._default", None)
    for var in ("DEVENV_TARGET", "K8S_MODE", "DEVENV_REQUIRE_TARGETS"):
        monkeypatch.delenv(var, raising=False)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


TEST_CALL = """
def test_hello(mcp_client, devenv_target):
    assert mcp_client.call("greeter/hello", {"name": "ada"}) == "hello ada"
    assert mcp_client.mode == ("http" if devenv_target.remote else "inprocess")
"""


def test_options_are_in_the_help(project: pytest.Pytester):
    result = project.runpytest("--help")
    result.stdout.fnmatch_lines(
        ["devenv: a stack of MCP services for the tests:", "*--devenv-target*", "*--devenv-keep*"]
    )


def test_default_target_is_inprocess(project: pytest.Pytester):
    project.makepyfile(TEST_CALL)
    result = project.runpytest("-v")
    result.stdout.fnmatch_lines(["*test_hello?inprocess? PASSED*"])
    result.assert_outcomes(passed=1)


def test_each_target_runs_the_test_once(project: pytest.Pytester):
    project.makepyfile(TEST_CALL)
    result = project.runpytest_subprocess("-v", "--devenv-target=inprocess,local", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*test_hello?inprocess? PASSED*", "*test_hello?local? PASSED*"])
    result.assert_outcomes(passed=2)
    assert not (project.path / ".devenv" / "pytest-local" / "state.json").exists()  # torn down


def test_target_from_the_environment(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DEVENV_TARGET", "local")
    project.makepyfile(TEST_CALL)
    result = project.runpytest_subprocess("-v", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*test_hello?local? PASSED*"])


def test_unknown_target_is_a_usage_error(project: pytest.Pytester):
    project.makepyfile(TEST_CALL)
    result = project.runpytest("--devenv-target=moon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown moon; choose from inprocess, local, docker, kind*"])


def test_marker_limits_targets(project: pytest.Pytester):
    project.makepyfile(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.devenv_targets("local")
            def test_only_local(devenv_target):
                assert devenv_target.name == "local"
            """
        )
    )
    result = project.runpytest("-rs", "--devenv-target=inprocess")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*got empty parameter set for (devenv_target)*"])


def test_failing_test_report_carries_the_service_logs(project: pytest.Pytester):
    project.makepyfile(
        """
        def test_fails(mcp_client):
            mcp_client.call("greeter/hello", {"name": "log-me"})
            assert False, "on purpose"
        """
    )
    result = project.runpytest_subprocess("--devenv-target=local", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*devenv local: greeter log*", '*"tool": "hello"*'])


def test_keep_leaves_the_stack_for_the_next_run(project: pytest.Pytester):
    project.makepyfile(
        """
        def test_pid(devenv_target, mcp_client):
            assert mcp_client.call("greeter/hello", {"name": "x"}) == "hello x"
            print("PID", devenv_target.stack.status()[0].pid)
        """
    )
    first = project.runpytest_subprocess("-s", "--devenv-target=local", "--devenv-keep", "-p", "no:cacheprovider")
    second = project.runpytest_subprocess("-s", "--devenv-target=local", "-p", "no:cacheprovider")
    pids = re.findall(r"PID (\d+)", "\n".join(first.outlines + second.outlines))
    first.assert_outcomes(passed=1)
    second.assert_outcomes(passed=1)
    assert len(pids) == 2 and pids[0] == pids[1]  # the second run reused the kept stack ...
    assert not (project.path / ".devenv" / "pytest-local" / "state.json").exists()  # ... and, without --keep, downed it


def test_an_unavailable_target_skips_with_its_reason(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    project.makeconftest(
        """
        import devenv.stack as stack
        from devenv.stack.base import TargetUnavailable

        class NoEngine(stack.LocalStack):
            def up(self, *args, **kwargs):
                raise TargetUnavailable("kind not found on PATH")

        stack.TARGETS["kind"] = NoEngine
        """
    )
    project.makepyfile(TEST_CALL)
    # In subprocesses: the conftest swaps a target class, which must not leak into this session.
    skipped = project.runpytest_subprocess("-rs", "--devenv-target=kind", "-p", "no:cacheprovider")
    skipped.stdout.fnmatch_lines(["*devenv target 'kind' unavailable: kind not found on PATH*"])
    skipped.assert_outcomes(skipped=1)
    monkeypatch.setenv("DEVENV_REQUIRE_TARGETS", "kind")
    required = project.runpytest_subprocess("--devenv-target=kind", "-p", "no:cacheprovider")
    required.assert_outcomes(errors=1)
    required.stdout.fnmatch_lines(["*required but unavailable: kind not found on PATH*"])
