"""DockerStack against a real engine: endpoints, calls over HTTP, calls between containers, logs, status."""

from __future__ import annotations

import os

import pytest

from devenv import MCPClient, ToolError
from devenv.stack import DockerStack, StackError
from devenv.stack.docker import REDIS_CONTAINER, container_name


def containers(docker_client, stack: DockerStack) -> dict[str, object]:
    names = {name: container_name(name) for name in stack.endpoints()} | {"redis": REDIS_CONTAINER}
    return {name: docker_client.containers.get(stack.name_prefix + c) for name, c in names.items()}


def test_endpoints_are_published_on_loopback_only(docker_client, docker_stack):
    urls = docker_stack.endpoints()
    assert sorted(urls) == [
        "conformance",
        "content-classifier",
        "file-system",
        "inbox-agent",
        "jd-classifier",
        "notifications",
    ]
    assert all(url.startswith("http://127.0.0.1:") for url in urls.values())
    for container in containers(docker_client, docker_stack).values():
        bindings = [b for port in container.attrs["HostConfig"]["PortBindings"].values() for b in port]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings)


def test_a_tool_over_http(stack_env):
    with MCPClient() as client:
        assert client.mode == "http"
        tax = client.call("jd-classifier/find_category", {"query": "tax"})
        assert (tax["id"], tax["label"]) == ("11", "11 Tax")
        with pytest.raises(ToolError):
            client.call("file-system/read_file", {"path": "../escape.txt"})


def test_services_call_each_other_inside_the_network(docker_client, docker_stack, stack_env, data_dirs):
    """inbox-agent → content-classifier, jd-classifier, file-system, notifications (Redis), all by DNS name."""
    from pathlib import Path

    unsorted, vault = Path(data_dirs["UNSORTED_ROOT"]), Path(data_dirs["VAULT_ROOT"])
    tag = os.urandom(4).hex()
    (unsorted / f"{tag} tax.txt").write_text("HMRC tax return for the tax year: VAT deduction and withholding.")
    with MCPClient() as client:
        report = client.call("inbox-agent/process_inbox")
        moved = {m["source"]: m for m in report["moved"]}
        assert moved[f"{tag} tax.txt"]["category"] == "11 Tax"
        assert (vault / moved[f"{tag} tax.txt"]["destination"]).read_text().startswith("HMRC tax return")
        assert not (unsorted / f"{tag} tax.txt").exists()
        notes = client.call("notifications/list_notifications", {"limit": 5})
        assert report["notification_id"] in [n["id"] for n in notes]
    env = dict(e.split("=", 1) for e in containers(docker_client, docker_stack)["inbox-agent"].attrs["Config"]["Env"])
    assert env["K8S_MODE"] == "true"
    assert env["REDIS_URL"] == f"redis://{REDIS_CONTAINER}:6379/0"
    assert not [k for k in env if k.startswith("DEVENV_URL_")]  # so it found them at http://<service>-service:8080


def test_containers_answer_to_their_kubernetes_service_names(docker_client, docker_stack):
    agent = containers(docker_client, docker_stack)["inbox-agent"]
    probe = (
        "import json, urllib.request; print(json.load(urllib.request.urlopen("
        f"'http://{container_name('jd-classifier')}:8080/health', timeout=5))['service'])"
    )
    result = agent.exec_run(["python3", "-c", probe])
    assert result.exit_code == 0, result.output
    assert result.output.decode().strip() == "jd-classifier"


def test_host_folders_created_later_are_writable_for_the_containers(docker_stack, stack_env, data_dirs):
    from pathlib import Path

    folder = Path(data_dirs["VAULT_ROOT"]) / f"made-by-host-{os.urandom(3).hex()}"
    folder.mkdir()  # 0755, owned by this process: the default ACL lets uid 1001 in
    with MCPClient() as client:
        client.call("file-system/write_file", {"path": f"{folder.name}/note.txt", "content": "from a container"})
    assert (folder / "note.txt").read_text() == "from a container"


def test_logs_come_from_the_container(docker_stack, stack_env):
    with MCPClient() as client:
        client.call("jd-classifier/find_category", {"query": "banking"})
    log = docker_stack.logs("jd-classifier")
    assert "Uvicorn running on http://0.0.0.0:8080" in log
    assert "redis-server" not in log
    assert "Ready to accept connections" in docker_stack.logs("redis")
    with pytest.raises(StackError, match="no log for service 'nope'"):
        docker_stack.logs("nope")


def test_status_and_endpoints_from_another_instance(docker_stack):
    other = DockerStack(docker_stack.state_dir)  # as `devenv status --target docker` in another process
    assert other.endpoints() == docker_stack.endpoints()
    statuses = other.status()
    assert {s.name for s in statuses} == set(docker_stack.endpoints())
    assert all(s.healthy and s.pid for s in statuses), statuses


def test_a_second_up_from_the_same_state_is_refused(docker_stack):
    with pytest.raises(StackError, match="already running"):
        DockerStack(docker_stack.state_dir, name_prefix=docker_stack.name_prefix).up()
