"""DockerStack's edges: down from another process, a name taken, a service that dies, no engine."""

from __future__ import annotations

import pytest

from devenv import default_registry
from devenv.stack import DockerStack, StackError, TargetUnavailable
from devenv.stack.docker import LABEL_STACK, container_name
from tests.docker.conftest import project_copy, unique_prefix


def leftovers(docker_client, stack: DockerStack) -> tuple[list, list]:
    label = f"{LABEL_STACK}={stack.state_dir}"
    return (
        docker_client.containers.list(all=True, filters={"label": label}),
        [n for n in docker_client.networks.list() if n.name == stack.network],
    )


def test_down_from_another_instance_leaves_nothing(docker_client, tmp_path, data_dirs):
    stack = DockerStack(tmp_path / "state", env=data_dirs, name_prefix=unique_prefix())
    urls = stack.up(["jd-classifier"], timeout=60)
    assert list(urls) == ["jd-classifier"]
    assert len(leftovers(docker_client, stack)[0]) == 2  # the service and Redis

    other = DockerStack(tmp_path / "state")  # `devenv down --target docker` in another process
    assert other.down() == ["jd-classifier"]
    assert leftovers(docker_client, stack) == ([], [])
    assert other.endpoints() == {} and other.status() == []
    assert "Uvicorn running" in other.logs("jd-classifier")  # kept in the state dir
    assert other.down() == []


def test_a_name_taken_by_another_container_is_reported(docker_client, tmp_path, docker_stack):
    prefix = unique_prefix()
    squatter = docker_client.containers.create(
        docker_stack.build(["jd-classifier"])["jd-classifier"], name=f"{prefix}{container_name('jd-classifier')}"
    )
    try:
        stack = DockerStack(tmp_path / "state", name_prefix=prefix)
        with pytest.raises(StackError, match=r"already exists, started by something other than devenv.*docker rm -f"):
            stack.up(["jd-classifier"])
        assert leftovers(docker_client, stack) == ([], [])
    finally:
        squatter.remove(force=True)


def test_a_service_that_dies_at_start_fails_up_with_its_log(docker_client, tmp_path, docker_stack):
    stack = DockerStack(
        tmp_path / "state",
        env={"DEVENV_MAX_BODY_BYTES": "lots"},  # the server refuses to start on it
        registry=default_registry(),
        name_prefix=unique_prefix(),
    )
    with pytest.raises(StackError, match=r"(?s)'jd-classifier'.*exited with code \d+.*DEVENV_MAX_BODY_BYTES"):
        stack.up(["jd-classifier"], timeout=60)
    assert leftovers(docker_client, stack) == ([], [])


def test_reload_serves_the_edited_source(docker_client, tmp_path, docker_stack):
    """reload=True: the image's dev stage, the project's source mounted over it, uvicorn --reload."""
    import time

    import httpx

    project = project_copy(tmp_path / "project")
    stack = DockerStack(tmp_path / "state", project_dir=project, reload=True, name_prefix=unique_prefix())
    url = stack.up(["jd-classifier"], timeout=60)["jd-classifier"]
    try:
        service_py = project / "services" / "jd_classifier" / "service.py"
        service_py.write_text(
            service_py.read_text()
            + '\n\n@service.tool\ndef live_update_marker() -> str:\n    """Added by a test."""\n    return "edited"\n'
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(f"{url}/tools/live_update_marker", json={}, timeout=2)
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass  # restarting
            assert time.monotonic() < deadline, stack.logs("jd-classifier")[-2000:]
            time.sleep(0.5)
        assert "edited" in answer.text
        container = docker_client.containers.get(stack.name_prefix + container_name("jd-classifier"))
        assert container.attrs["Config"]["Cmd"][-1].endswith("--reload")
        assert container.image.tags[0].endswith("-dev")
    finally:
        stack.down()
    assert leftovers(docker_client, stack) == ([], [])


def test_no_engine_is_target_unavailable(tmp_path, monkeypatch):
    """Needs no engine: runs everywhere."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    stack = DockerStack(tmp_path / "state")
    with pytest.raises(TargetUnavailable, match=r"cannot reach the Docker engine at unix://.*is dockerd running\?"):
        stack.up()
    assert isinstance(TargetUnavailable("x"), StackError)
    assert stack.endpoints() == {} and stack.down() == []
