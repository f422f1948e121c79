"""The official MCP SDK client is the referee: it must work against a devenv service in both modes."""

from __future__ import annotations

import pytest
from mcp import Client, MCPError

from devenv import create_app
from tests.conftest import serve_in_thread
from tests.unit.demo_service import make_service


@pytest.fixture(scope="module")
def mcp_url():
    with serve_in_thread(create_app(make_service())) as url:
        yield f"{url}/mcp"


@pytest.mark.parametrize("mode, version", [("auto", "2026-07-28"), ("legacy", "2025-11-25")])
async def test_sdk_client_handshake_list_and_call(mcp_url, mode, version):
    async with Client(mcp_url, mode=mode) as client:
        # auto probes server/discover and stays modern (no fallback); legacy runs the initialize handshake
        assert client.protocol_version == version
        assert client.server_info.name == "demo"
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == set(make_service().tools)
        assert tools["echo"].annotations.read_only_hint is True
        assert tools["echo"].input_schema["properties"]["times"]["maximum"] == 5

        result = await client.call_tool("make_box", {"label": "k", "corners": [{"x": 1, "y": 1}]})
        assert result.is_error is False
        assert result.structured_content == {"label": "k", "corners": [{"x": 1, "y": 1}]}

        echoed = await client.call_tool("echo", {"text": "yo", "times": 2})
        assert echoed.structured_content == {"result": "yoyo"}
        assert echoed.content[0].text == '{"result":"yoyo"}'


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_sdk_client_sees_errors_the_mcp_way(mcp_url, mode):
    async with Client(mcp_url, mode=mode) as client:
        bad_args = await client.call_tool("echo", {"text": 1})
        assert bad_args.is_error is True
        assert "text" in bad_args.content[0].text

        failed = await client.call_tool("fail", {"message": "disk full"})
        assert failed.is_error is True
        assert "disk full" in failed.content[0].text

        with pytest.raises(MCPError) as unknown:
            await client.call_tool("missing", {})
        assert unknown.value.error.code == -32602


@pytest.mark.filterwarnings("ignore:ping is removed:UserWarning")
async def test_sdk_client_ping(mcp_url):
    async with Client(mcp_url, mode="legacy") as client:
        await client.send_ping()


@pytest.fixture(scope="module")
def wire_mcp_url():
    from tests.unit.test_mcp_wire_2026 import wire_service

    with serve_in_thread(create_app(wire_service())) as url:
        yield f"{url}/mcp"


async def test_sdk_client_mirrors_marked_arguments_into_the_headers_devenv_checks(wire_mcp_url):
    async with Client(wire_mcp_url, mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        # The SDK sends Mcp-Param-Region / Mcp-Param-Shard (Base64 for the non-ASCII value);
        # devenv answers 400 -32020 if they were missing or different.
        result = await client.call_tool("route", {"region": "köln", "shard": 3, "query": "q"})
        assert result.is_error is False
        assert result.structured_content == {"result": "köln/3/q"}


async def test_sdk_client_gets_missing_capability_for_an_undeclared_capability(wire_mcp_url):
    async with Client(wire_mcp_url, mode="auto") as client:
        with pytest.raises(MCPError) as missing:
            await client.call_tool("summarise", {"text": "long text"})
        assert missing.value.error.code == -32021
        assert missing.value.error.data == {"requiredCapabilities": {"sampling": {}}}
