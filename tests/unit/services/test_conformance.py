"""The conformance service: in-process answers are the JSON its /mcp results carry."""

from __future__ import annotations

import httpx
import pytest

from devenv import MCPClient, Registry, create_app
from devenv.transports.inprocess import InProcessTransport
from services.conformance.service import service
from tests.conftest import serve_in_thread

ACCEPT = {"accept": "application/json, text/event-stream"}
WIRE_ONLY = {"resultType", "_meta", "ttlMs", "cacheScope"}  # framing the 2026-07-28 wire adds


@pytest.fixture(scope="module")
def http():
    with serve_in_thread(create_app(service)) as url, httpx.Client(base_url=url, headers=ACCEPT) as client:
        yield client


def wire(http, method, params):
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    result = http.post("/mcp", json=body).json()["result"]
    return {k: v for k, v in result.items() if k not in WIRE_ONLY}


@pytest.fixture
def local():
    return InProcessTransport(Registry(None, [service]))


@pytest.mark.parametrize("uri", ["test://static-text", "test://static-binary", "test://template/7/data"])
def test_resources_read_the_same_in_process(http, local, uri):
    assert local.read_resource("conformance", uri) == wire(http, "resources/read", {"uri": uri})


async def test_async_resource_reads_match_too(http, local):
    uri = "test://template/9/data"
    assert await local.aread_resource("conformance", uri) == wire(http, "resources/read", {"uri": uri})


def test_lists_match(http, local):
    assert local.list_resources("conformance") == wire(http, "resources/list", {})["resources"]
    templates = wire(http, "resources/templates/list", {})["resourceTemplates"]
    assert local.list_resource_templates("conformance") == templates
    assert local.list_prompts("conformance") == wire(http, "prompts/list", {})["prompts"]


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("test_simple_prompt", None),
        ("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"}),
        ("test_prompt_with_embedded_resource", {"resourceUri": "test://x"}),
        ("test_prompt_with_image", None),
    ],
)
async def test_prompts_render_the_same_in_process(http, local, name, arguments):
    params = {"name": name, **({"arguments": arguments} if arguments else {})}
    expected = wire(http, "prompts/get", params)
    assert local.get_prompt("conformance", name, arguments) == expected
    assert await local.aget_prompt("conformance", name, arguments) == expected


def test_completion_matches(http, local):
    ref, argument = {"type": "ref/prompt", "name": "test_prompt_with_arguments"}, {"name": "arg1", "value": "te"}
    assert local.complete("conformance", ref, argument) == wire(
        http, "completion/complete", {"ref": ref, "argument": argument}
    )


@pytest.mark.parametrize(
    "tool", ["test_simple_text", "test_image_content", "test_audio_content", "test_multiple_content_types"]
)
def test_content_tools_answer_the_wire_content_in_process(http, tool):
    with MCPClient(services=[service]) as client:
        assert client.call(f"conformance/{tool}") == wire(http, "tools/call", {"name": tool})["content"]


def test_fixture_media_are_real_files():
    from services.conformance.service import RED_PIXEL, SILENCE

    assert RED_PIXEL.startswith(b"\x89PNG\r\n\x1a\n") and b"IHDR" in RED_PIXEL and RED_PIXEL.endswith(b"IEND\xaeB`\x82")
    assert SILENCE[:4] == b"RIFF" and SILENCE[8:12] == b"WAVE"
