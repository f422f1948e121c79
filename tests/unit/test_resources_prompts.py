"""Resources, prompts and completion declared on a Service, and every bad declaration or request."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from devenv import InvalidArguments, Service, ToolError
from devenv.completion import MAX_VALUES
from devenv.content import EmbeddedResource, Image, Message, Text
from devenv.errors import ConfigError, PromptNotFound, ResourceNotFound


class Area(BaseModel):
    id: str
    name: str


@pytest.fixture
def service():
    svc = Service("surface-demo")

    @svc.resource("demo://readme", mime_type="text/markdown")
    def readme() -> str:
        """The readme.

        More text that is not the description."""
        return "# hi"

    @svc.resource("demo://logo")
    def logo() -> bytes:
        return b"\x00\x01"

    @svc.resource("demo://areas/{area}", complete={"area": ["10-19", "20-29", "11"]})
    async def area(area: str) -> Area:
        return Area(id=area, name=f"area {area}")

    @svc.resource("demo://areas/{area}/items/{item}")
    def item(area: str, item: str) -> dict[str, str]:
        if item == "boom":
            raise LookupError("no such item")
        return {"area": area, "item": item}

    @svc.resource("demo://areas/special")  # a static URI wins over the template that also matches it
    def special() -> str:
        return "special"

    @svc.prompt(complete={"language": lambda value, args: [v for v in ("python", "perl") if v.startswith(value)]})
    def review(code: str, language: str = "python") -> str:
        """Review some code.

        Args:
            code: the code to review
            language: its language
        """
        return f"Review this {language}: {code}"

    @svc.prompt(name="rich", title="Rich prompt")
    async def rich_prompt() -> list[Message | Image | str]:
        return [Message("assistant", Text("hello")), Image(b"png", "image/png"), "and text"]

    @svc.prompt
    def broken() -> int:  # type: ignore[misc]
        return 42  # type: ignore[return-value]

    return svc


def test_resources_and_templates_list_apart(service):
    assert service.list_resources() == [
        {"uri": "demo://readme", "name": "readme", "description": "The readme.", "mimeType": "text/markdown"},
        {"uri": "demo://logo", "name": "logo"},
        {"uri": "demo://areas/special", "name": "special"},
    ]
    assert [t["uriTemplate"] for t in service.list_resource_templates()] == [
        "demo://areas/{area}",
        "demo://areas/{area}/items/{item}",
    ]


def test_read_text_binary_json_and_templates(service):
    assert service.read_resource("demo://readme") == {
        "contents": [{"uri": "demo://readme", "mimeType": "text/markdown", "text": "# hi"}]
    }
    assert service.read_resource("demo://logo")["contents"][0] == {
        "uri": "demo://logo",
        "mimeType": "application/octet-stream",
        "blob": "AAE=",
    }
    assert service.read_resource("demo://areas/11") == {
        "contents": [{"uri": "demo://areas/11", "mimeType": "application/json", "text": '{"id":"11","name":"area 11"}'}]
    }
    assert service.read_resource("demo://areas/a%20b/items/x")["contents"][0]["text"] == '{"area":"a b","item":"x"}'
    assert service.read_resource("demo://areas/special")["contents"][0]["text"] == "special"


async def test_async_reads_give_the_same_json(service):
    for uri in ("demo://readme", "demo://areas/11", "demo://areas/1/items/2"):
        assert await service.aread_resource(uri) == service.read_resource(uri)


@pytest.mark.parametrize(
    "uri",
    ["demo://nope", "demo://areas/1/2", "other://readme", "demo://areas/", "demo://areas/..", "demo://areas/a%2Fb"],
)
def test_an_unknown_uri_is_resource_not_found(service, uri):
    with pytest.raises(ResourceNotFound) as missing:
        service.read_resource(uri)
    assert missing.value.uri == uri
    assert uri in str(missing.value)


@pytest.mark.parametrize("uri", [None, "", 5])
def test_a_malformed_uri_names_the_field(service, uri):
    with pytest.raises(ValueError, match='"uri" must be a non-empty string'):
        service.read_resource(uri)


def test_a_resource_that_raises_is_a_tool_error(service):
    with pytest.raises(ToolError) as failed:
        service.read_resource("demo://areas/1/items/boom")
    assert failed.value.error_type == "LookupError"
    assert "no such item" in failed.value.message


@pytest.mark.parametrize(
    ("uri", "fn_params", "message"),
    [
        ("no-scheme", "", "needs a scheme"),
        ("x://{a}/{b}", "a", "must be the template's variables"),
        ("x://{+path}", "path", "not a simple variable"),
        ("x://{a}/{a}", "a", "repeats a variable"),
    ],
)
def test_bad_resource_declarations_are_config_errors(uri, fn_params, message):
    svc = Service("bad")
    namespace: dict = {}
    exec(f"def fn({fn_params}): return ''", namespace)
    with pytest.raises(ConfigError, match=message):
        svc.resource(uri)(namespace["fn"])


def test_a_resource_uri_is_registered_once(service):
    with pytest.raises(ConfigError, match="already has a resource 'demo://readme'"):
        service.resource("demo://readme")(lambda: "")


def test_prompts_list_with_arguments_from_the_signature(service):
    prompts = {p["name"]: p for p in service.list_prompts()}
    assert prompts["review"] == {
        "name": "review",
        "description": "Review some code.",
        "arguments": [
            {"name": "code", "required": True, "description": "the code to review"},
            {"name": "language", "required": False, "description": "its language"},
        ],
    }
    assert prompts["rich"] == {"name": "rich", "title": "Rich prompt", "arguments": []}


def test_get_prompt_renders_messages(service):
    assert service.get_prompt("review", {"code": "x = 1"}) == {
        "messages": [{"role": "user", "content": {"type": "text", "text": "Review this python: x = 1"}}],
        "description": "Review some code.",
    }
    assert service.get_prompt("rich")["messages"] == [
        {"role": "assistant", "content": {"type": "text", "text": "hello"}},
        {"role": "user", "content": {"type": "image", "data": "cG5n", "mimeType": "image/png"}},
        {"role": "user", "content": {"type": "text", "text": "and text"}},
    ]


async def test_async_get_prompt_gives_the_same_json(service):
    assert await service.aget_prompt("review", {"code": "y"}) == service.get_prompt("review", {"code": "y"})


@pytest.mark.parametrize(
    ("arguments", "fields"),
    [
        ({}, ["code"]),
        ({"code": 1}, ["code"]),
        ({"code": "x", "extra": "y"}, ["extra"]),
        ("code", [""]),
    ],
)
def test_bad_prompt_arguments_name_the_fields(service, arguments, fields):
    with pytest.raises(InvalidArguments) as bad:
        service.get_prompt("review", arguments)
    assert bad.value.fields == fields


def test_an_unknown_prompt_lists_the_known_ones(service):
    with pytest.raises(PromptNotFound, match="its prompts: broken, review, rich"):
        service.get_prompt("nope")


def test_a_prompt_returning_what_is_not_a_message_is_a_result_error(service):
    with pytest.raises(ToolError, match="int, not a str, a Content value or a Message"):
        service.get_prompt("broken")


def test_prompt_arguments_must_be_strings():
    svc = Service("bad")

    def typed(n: int) -> str:
        return ""

    with pytest.raises(ConfigError, match="parameter 'n' must be a str"):
        svc.prompt(typed)


def test_completion_for_prompts_and_templates(service):
    assert service.complete({"type": "ref/prompt", "name": "review"}, {"name": "language", "value": "p"}) == {
        "completion": {"values": ["python", "perl"], "total": 2, "hasMore": False}
    }
    ref = {"type": "ref/resource", "uri": "demo://areas/{area}"}
    assert service.complete(ref, {"name": "area", "value": "1"})["completion"]["values"] == ["10-19", "11"]
    # an argument without a completer: an empty answer, not an error
    assert service.complete({"type": "ref/prompt", "name": "review"}, {"name": "code", "value": ""}) == {
        "completion": {"values": [], "total": 0, "hasMore": False}
    }
    assert "completions" in service.capabilities()


def test_completion_caps_the_values_at_the_spec_limit():
    svc = Service("many")

    @svc.prompt(complete={"word": [f"w{i}" for i in range(250)]})
    def p(word: str) -> str:
        return word

    completion = svc.complete({"type": "ref/prompt", "name": "p"}, {"name": "word", "value": "w"})["completion"]
    assert len(completion["values"]) == MAX_VALUES
    assert completion["total"] == 250
    assert completion["hasMore"] is True


@pytest.mark.parametrize(
    ("ref", "argument", "context", "error", "message"),
    [
        ("ref/prompt", {"name": "a", "value": ""}, None, ValueError, '"ref" must be an object'),
        ({"type": "ref/tool"}, {"name": "a", "value": ""}, None, ValueError, '"ref.type" must be'),
        ({"type": "ref/prompt", "name": "review"}, {"value": "x"}, None, ValueError, '"argument" must be an object'),
        ({"type": "ref/prompt", "name": "review"}, {"name": "language", "value": 3}, None, ValueError, "value"),
        ({"type": "ref/prompt", "name": "review"}, {"name": "language", "value": ""}, [], ValueError, '"context"'),
        ({"type": "ref/prompt", "name": "zzz"}, {"name": "a", "value": ""}, None, PromptNotFound, "zzz"),
        ({"type": "ref/resource", "uri": "demo://x/{y}"}, {"name": "y", "value": ""}, None, ResourceNotFound, "x/"),
    ],
)
def test_bad_completion_requests_say_what_is_wrong(service, ref, argument, context, error, message):
    with pytest.raises(error, match=message):
        service.complete(ref, argument, context)


def test_bad_completion_declarations_are_config_errors():
    svc = Service("bad")
    with pytest.raises(ConfigError, match="names 'nope', which is not one of its arguments"):
        svc.prompt(name="p1", complete={"nope": ["a"]})(lambda word: word)
    with pytest.raises(ConfigError, match="must be a list of strings or a function"):
        svc.prompt(name="p2", complete={"word": [1, 2]})(lambda word: word)

    async def suggest(value, arguments):
        return []

    with pytest.raises(ConfigError, match="must be a plain function; completion does not await"):
        svc.prompt(name="p3", complete={"word": suggest})(lambda word: word)
    with pytest.raises(ConfigError, match="complete= is for templates"):
        svc.resource("x://static", complete={"a": ["b"]})(lambda: "")


def test_capabilities_name_only_what_the_service_has():
    svc = Service("bare")
    assert svc.capabilities() == {}

    @svc.tool
    def t() -> str:
        return ""

    assert svc.capabilities() == {"tools": {"listChanged": False}}

    @svc.resource("x://r")
    def r() -> str:
        return ""

    @svc.prompt
    def p() -> EmbeddedResource:
        return EmbeddedResource("x://r", text="")

    assert set(svc.capabilities()) == {"tools", "resources", "prompts"}  # no completer, no Context: no more
    assert svc.describe()["resources"] == ["x://r"]
    assert svc.describe()["prompts"] == ["p"]
