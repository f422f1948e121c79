"""The Dockerfile's images: non-root, no compilers, a HEALTHCHECK the engine acts on, one CMD for every service."""

from __future__ import annotations

import time

import pytest

from devenv.stack.docker import APP_UID, DockerStack, container_name


def run(client, image: str, *command: str) -> str:
    return client.containers.run(image, list(command), remove=True, network_mode="none").decode().strip()


def test_runs_as_the_non_root_user(docker_client, images):
    for image in images.values():
        assert run(docker_client, image, "id", "-u") == str(APP_UID)  # docker run --rm IMAGE id -u
    assert docker_client.images.get(images["jd-classifier"]).attrs["Config"]["User"] == f"{APP_UID}:{APP_UID}"


def test_no_compilers_or_pip_in_the_final_image(docker_client, images):
    found = run(
        docker_client,
        images["jd-classifier"],
        "sh",
        "-c",
        "for tool in gcc cc c++ g++ clang tcc make pip pip3; do command -v $tool; done; true",
    )
    assert found == ""
    assert run(docker_client, images["jd-classifier"], "sh", "-c", "ls /usr/lib/gcc 2>/dev/null | wc -l") == "0"


def test_the_image_can_export_traces_once_an_endpoint_is_set(docker_client, images):
    """The otel extra is installed (Dockerfile EXTRAS=otel); unset, tracing stays off and loads none of it."""
    check = (
        "import os, sys; from devenv import tracing; assert not tracing.enabled(); "
        "assert not [m for m in sys.modules if m.startswith('opentelemetry.sdk')]; "
        "tracing.disable(); os.environ['OTEL_EXPORTER_OTLP_ENDPOINT'] = 'http://127.0.0.1:4318'; "
        "assert tracing.enabled(); print('traces')"
    )
    assert run(docker_client, images["jd-classifier"], "python3", "-c", check) == "traces"


def test_healthcheck_and_cmd_in_the_image_config(docker_client, images):
    for service, image in images.items():
        config = docker_client.images.get(image).attrs["Config"]
        assert "/health" in " ".join(config["Healthcheck"]["Test"])
        assert config["Cmd"][-1] == "exec devenv serve $SERVICE --host 0.0.0.0 --port 8080"
        assert f"SERVICE={service}" in config["Env"]
        assert "8080/tcp" in config["ExposedPorts"]


def test_the_engine_finds_a_running_service_healthy(docker_client, docker_stack):
    """The HEALTHCHECK really runs in the container (as uid 1001, with the image's python3)."""
    container = docker_client.containers.get(docker_stack.name_prefix + container_name("jd-classifier"))
    deadline = time.monotonic() + 45  # first check after --interval=10s
    while (health := container.attrs["State"]["Health"]["Status"]) != "healthy" and time.monotonic() < deadline:
        assert health in ("starting", "healthy"), container.attrs["State"]["Health"]
        time.sleep(1)
        container.reload()
    assert health == "healthy"


def test_images_are_tagged_by_content_and_reused(docker_stack, images):
    tags = {image.rsplit(":", 1)[1] for image in images.values()}
    assert len(tags) == 1 and len(next(iter(tags))) == 12  # one content hash for the whole build
    said: list[str] = []
    again = DockerStack(docker_stack.state_dir, env=docker_stack.env, progress=said.append).build()
    assert again == images
    assert said == [f"images up to date ({tags.pop()}); nothing to build"]


@pytest.mark.parametrize("service", ["jd-classifier", "inbox-agent"])
def test_each_image_serves_its_own_service(docker_client, images, service):
    out = run(docker_client, images[service], "python3", "-c", "import os, devenv; print(os.environ['SERVICE'])")
    assert out == service
