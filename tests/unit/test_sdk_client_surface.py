"""The official MCP SDK client reads resources, prompts, completion, progress and logs from devenv.

Both eras: ``mode="auto"`` negotiates 2026-07-28 with a devenv service, ``mode="legacy"``
speaks 2025-11-25 with its initialize handshake.
"""

from __future__ import annotations

import base64

import pytest
from mcp import Client, MCPError
from mcp.types import PromptReference, ResourceTemplateReference

from devenv import create_app
from services.conformance.service import RED_PIXEL, service
from tests.conftest import serve_in_thread

MODES = ["auto", "legacy"]


@pytest.fixture(scope="module")
def mcp_url():
    with serve_in_thread(create_app(service)) as url:
        yield f"{url}/mcp"


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_sees_the_declared_capabilities(mcp_url, mode):
    async with Client(mcp_url, mode=mode) as client:
        assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        caps = client.server_capabilities
        assert caps.resources is not None and caps.prompts is not None
        assert caps.completions is not None and caps.logging is not None


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_lists_and_reads_resources(mcp_url, mode):
    async with Client(mcp_url, mode=mode) as client:
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        assert set(listed) == {"test://static-text", "test://static-binary", "test://watched-resource"}
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["test://template/{id}/data"]

        text = (await client.read_resource("test://static-text")).contents[0]
        assert text.text == "This is the content of the static text resource."
        assert text.mime_type == "text/plain"
        blob = (await client.read_resource("test://static-binary")).contents[0]
        assert base64.b64decode(blob.blob) == RED_PIXEL
        templated = (await client.read_resource("test://template/123/data")).contents[0]
        assert '"id":"123"' in templated.text

        with pytest.raises(MCPError) as missing:
            await client.read_resource("test://nothing-here")
        assert missing.value.error.code == -32602


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_gets_prompts_and_completions(mcp_url, mode):
    async with Client(mcp_url, mode=mode) as client:
        names = {p.name for p in (await client.list_prompts()).prompts}
        assert "test_prompt_with_arguments" in names
        got = await client.get_prompt("test_prompt_with_arguments", {"arg1": "hello", "arg2": "world"})
        assert got.messages[0].content.text == "Prompt with arguments: arg1='hello', arg2='world'"
        image = await client.get_prompt("test_prompt_with_image")
        assert image.messages[0].content.type == "image"

        with pytest.raises(MCPError) as missing_arg:
            await client.get_prompt("test_prompt_with_arguments", {"arg1": "only one"})
        assert missing_arg.value.error.code == -32602

        done = await client.complete(
            PromptReference(type="ref/prompt", name="test_prompt_with_arguments"), {"name": "arg1", "value": "par"}
        )
        assert done.completion.values == ["paris", "park", "party"]
        ref = ResourceTemplateReference(type="ref/resource", uri="test://template/{id}/data")
        assert (await client.complete(ref, {"name": "id", "value": "4"})).completion.values == ["456"]


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_gets_rich_content(mcp_url, mode):
    async with Client(mcp_url, mode=mode) as client:
        mixed = await client.call_tool("test_multiple_content_types", {})
        assert [c.type for c in mixed.content] == ["text", "image", "resource"]
        assert base64.b64decode(mixed.content[1].data) == RED_PIXEL
        assert mixed.structured_content is None


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_receives_progress(mcp_url, mode):
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with Client(mcp_url, mode=mode) as client:
        result = await client.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
    assert result.content[0].text == "Progress test completed"
    assert seen == [(0, 100), (50, 100), (100, 100)]


async def test_sdk_client_receives_logs_at_the_level_it_asked_for(mcp_url):
    logs: list[str] = []

    async def on_log(params) -> None:
        logs.append(params.data)

    async with Client(mcp_url, mode="auto", logging_callback=on_log, log_level="info") as client:
        assert client.protocol_version == "2026-07-28"
        await client.call_tool("test_tool_with_logging", {})
    assert logs == ["Tool execution started", "Tool processing data", "Tool execution completed"]

    quiet: list[str] = []

    async def on_quiet(params) -> None:
        quiet.append(params.data)

    async with Client(mcp_url, mode="auto", logging_callback=on_quiet, log_level="error") as client:
        await client.call_tool("test_tool_with_logging", {})
    assert quiet == []  # info is below the requested level: nothing is sent


@pytest.mark.filterwarnings("ignore:The logging capability is deprecated")
async def test_sdk_legacy_client_gets_logs_after_set_level(mcp_url):
    logs: list[str] = []

    async def on_log(params) -> None:
        logs.append(params.data)

    async with Client(mcp_url, mode="legacy", logging_callback=on_log) as client:
        await client.set_logging_level("debug")
        await client.call_tool("test_tool_with_logging", {})
        await client.set_logging_level("emergency")  # leave the process quiet for the other tests
    assert logs == ["Tool execution started", "Tool processing data", "Tool execution completed"]
