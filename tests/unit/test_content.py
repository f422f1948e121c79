"""Typed content values and tools that return them: the JSON blocks, in-process as on the wire."""

from __future__ import annotations

import base64

import pytest

from devenv import Service, ToolError
from devenv.content import Audio, EmbeddedResource, Image, Message, ResourceLink, Text, content_blocks
from devenv.context import Context
from devenv.errors import ConfigError


def test_each_content_value_is_its_mcp_block():
    assert Text("hi").to_json() == {"type": "text", "text": "hi"}
    assert Image(b"\x89PNG", "image/png").to_json() == {
        "type": "image",
        "data": base64.b64encode(b"\x89PNG").decode(),
        "mimeType": "image/png",
    }
    assert Audio("AAAA", "audio/wav").to_json() == {"type": "audio", "data": "AAAA", "mimeType": "audio/wav"}
    assert EmbeddedResource("x://a", text="t").to_json() == {
        "type": "resource",
        "resource": {"uri": "x://a", "mimeType": "text/plain", "text": "t"},
    }
    assert EmbeddedResource("x://b", blob=b"\x00").to_json()["resource"] == {
        "uri": "x://b",
        "mimeType": "application/octet-stream",
        "blob": "AA==",
    }
    assert ResourceLink("x://c", "c", mime_type="text/plain").to_json() == {
        "type": "resource_link",
        "uri": "x://c",
        "name": "c",
        "mimeType": "text/plain",
    }
    assert Message("assistant", "ok").to_json() == {"role": "assistant", "content": {"type": "text", "text": "ok"}}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (Image("not base64!", "image/png"), "not valid base64"),
        (Image(b"x", "png"), "MIME type like 'image/png'"),
        (Audio(12, "audio/wav"), "bytes or a base64 str"),  # type: ignore[arg-type]
        (EmbeddedResource("x://a"), "exactly one of text= or blob="),
        (EmbeddedResource("x://a", text="t", blob=b"b"), "exactly one of text= or blob="),
        ("plain str", "got str"),
    ],
)
def test_malformed_content_says_what_is_wrong(value, message):
    with pytest.raises((TypeError, ValueError), match=message):
        content_blocks(value)


@pytest.fixture
def service():
    svc = Service("content-demo")

    @svc.tool
    def one() -> Image:
        return Image(b"png", "image/png")

    @svc.tool
    def mixed(n: int = 1) -> list[Text | Image]:
        return [Text("a" * n), Image(b"png", "image/png")]

    @svc.tool
    def lies() -> Text:
        return "not a Text value"  # type: ignore[return-value]

    @svc.tool
    def plain() -> str:
        return "structured"

    return svc


def test_a_content_tool_has_no_output_schema_and_runs_to_blocks(service):
    definition = service.tools["one"].definition()
    assert "outputSchema" not in definition
    assert service.tools["one"].run({}) == [{"type": "image", "data": "cG5n", "mimeType": "image/png"}]
    assert service.tools["mixed"].run({"n": 2}) == [
        {"type": "text", "text": "aa"},
        {"type": "image", "data": "cG5n", "mimeType": "image/png"},
    ]


async def test_the_async_run_gives_the_same_blocks(service):
    assert await service.tools["mixed"].arun({"n": 3}, thread_sync=False) == service.tools["mixed"].run({"n": 3})


def test_call_result_is_content_for_content_tools_and_structured_otherwise(service):
    blocks = service.tools["one"].run({})
    assert service.tools["one"].call_result(blocks) == {"content": blocks, "isError": False}
    result = service.tools["plain"].call_result("structured")
    assert result["structuredContent"] == {"result": "structured"}
    assert result["content"] == [{"type": "text", "text": '{"result":"structured"}'}]


def test_a_content_tool_returning_something_else_is_a_result_error(service):
    with pytest.raises(ToolError) as failed:
        service.tools["lies"].run({})
    assert failed.value.error_type == "ResultError"
    assert "expected Text, Image" in failed.value.message


def test_a_prompt_message_has_a_known_role_and_content():
    with pytest.raises(ValueError, match="'user' or 'assistant'"):
        Message("system", "hi").to_json()  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="content is Text, Image, ... or a str"):
        Message("user", 5).to_json()  # type: ignore[arg-type]


def test_a_tool_may_take_one_context_only():
    svc = Service("ctx-demo")
    with pytest.raises(ConfigError, match="only one parameter may take the Context"):

        @svc.tool
        def two(a: Context, b: Context) -> str:
            return ""
