"""devenv.tools: schemas from signatures, validation, execution, caching, readiness and the registry."""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from devenv import config
from devenv.cache import MemoryCache, RedisCache
from devenv.errors import (
    ConfigError,
    InvalidArguments,
    ServiceNotFound,
    ServiceUnavailable,
    ToolError,
    ToolNotFound,
)
from devenv.testing import free_port
from devenv.tools import WRAPPED_KEY, Registry, Service, Tool


class Point(BaseModel):
    x: int
    y: int


class Box(BaseModel):
    label: str
    corners: list[Point]


def make_service(name: str = "demo", **kwargs: Any) -> Service:
    """A service with an explicit in-memory cache, so no test depends on $REDIS_URL."""
    service = Service(name, **kwargs)
    service.cache = MemoryCache()
    return service


def unique_name(prefix: str = "svc") -> str:
    """A service name no other test uses (cache keys include it, and Redis is shared by the session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def single_tool(fn, **options: Any) -> Tool:
    service = make_service()
    service.tool(fn, **options)
    return service.tools[options.get("name") or fn.__name__]


# -- input schema ---------------------------------------------------------------------------


def test_input_schema_from_types_defaults_and_required():
    def search(query: str, limit: int = 10, exact: bool = False, tags: list[str] | None = None) -> list[str]:
        return []

    schema = single_tool(search).input_schema
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["query"]
    props = schema["properties"]
    assert props["query"]["type"] == "string"
    assert props["limit"] == {"default": 10, "title": "Limit", "type": "integer"}
    assert props["exact"]["type"] == "boolean" and props["exact"]["default"] is False
    assert props["tags"]["default"] is None
    assert {"type": "array", "items": {"type": "string"}} in props["tags"]["anyOf"]


def test_input_schema_without_parameters_is_an_empty_closed_object():
    def now() -> str:
        return "now"

    schema = single_tool(now).input_schema
    assert schema["properties"] == {}
    assert "required" not in schema
    assert schema["additionalProperties"] is False


def test_input_schema_carries_annotated_field_constraints():
    def page(
        size: Annotated[int, Field(ge=1, le=100)] = 20,
        name: Annotated[str, Field(min_length=2, max_length=8, pattern=r"^[a-z]+$")] = "ab",
        ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5,
    ) -> int:
        return size

    props = single_tool(page).input_schema["properties"]
    assert (props["size"]["minimum"], props["size"]["maximum"], props["size"]["default"]) == (1, 100, 20)
    assert (props["name"]["minLength"], props["name"]["maxLength"]) == (2, 8)
    assert props["name"]["pattern"] == "^[a-z]+$"
    assert (props["ratio"]["exclusiveMinimum"], props["ratio"]["exclusiveMaximum"]) == (0, 1)


def test_input_schema_describes_nested_models_through_defs():
    def draw(box: Box) -> int:
        return len(box.corners)

    schema = single_tool(draw).input_schema
    assert schema["properties"]["box"] == {"$ref": "#/$defs/Box"}
    assert set(schema["$defs"]) == {"Box", "Point"}
    assert schema["$defs"]["Point"]["required"] == ["x", "y"]


def test_docstring_args_section_describes_parameters_and_is_not_in_the_description():
    def classify(text: str, top_k: int = 3, language: str = "en") -> list[str]:
        """Classify a text into categories.

        Longer explanation that stays in the description.

        Args:
            text: The text to classify,
                possibly spanning lines.
            top_k (int): How many categories to return.

        Returns:
            language: not an argument description, it is under Returns.
        """
        return []

    tool = single_tool(classify)
    props = tool.input_schema["properties"]
    assert props["text"]["description"] == "The text to classify, possibly spanning lines."
    assert props["top_k"]["description"] == "How many categories to return."
    assert "description" not in props["language"]
    assert tool.description == "Classify a text into categories.\n\nLonger explanation that stays in the description."


def test_annotated_field_description_survives_without_a_docstring_entry():
    def lookup(key: Annotated[str, Field(description="The key to look up.", min_length=1)]) -> str:
        return key

    prop = single_tool(lookup).input_schema["properties"]["key"]
    assert prop["minLength"] == 1
    assert prop["description"] == "The key to look up."


# -- output schema --------------------------------------------------------------------------


def test_object_model_result_is_not_wrapped():
    def build(label: str) -> Box:
        return Box(label=label, corners=[])

    tool = single_tool(build)
    assert tool.wraps_result is False
    assert tool.output_schema["type"] == "object"
    assert set(tool.output_schema["properties"]) == {"label", "corners"}
    assert tool.output_schema[WRAPPED_KEY] is False
    result = tool.run({"label": "a"})
    assert tool.structured(result) == {"label": "a", "corners": []}


def test_dict_result_is_not_wrapped():
    def counts() -> dict[str, int]:
        return {"a": 1}

    tool = single_tool(counts)
    assert tool.output_schema[WRAPPED_KEY] is False
    assert tool.structured(tool.run({})) == {"a": 1}


@pytest.mark.parametrize(
    ("annotation", "inner"),
    [
        (int, {"type": "integer"}),
        (str, {"type": "string"}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (type(None), {"type": "null"}),
        (Any, {}),
    ],
    ids=["int", "str", "list", "none", "any"],
)
def test_non_object_result_is_wrapped_as_result(annotation, inner):
    def fn():
        return None

    fn.__annotations__ = {"return": annotation}
    tool = single_tool(fn)
    assert tool.wraps_result is True
    assert tool.output_schema == {
        "type": "object",
        "properties": {"result": inner},
        "required": ["result"],
        WRAPPED_KEY: True,
    }
    assert tool.structured(7) == {"result": 7}


def test_wrapped_list_of_models_keeps_its_defs_at_the_top():
    def points() -> list[Point]:
        return [Point(x=1, y=2)]

    schema = single_tool(points).output_schema
    assert schema["properties"]["result"] == {"type": "array", "items": {"$ref": "#/$defs/Point"}}
    assert "Point" in schema["$defs"]
    assert "$defs" not in schema["properties"]["result"]


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (Box, Box(label="b", corners=[Point(x=1, y=2)])),
        (list[Point], [Point(x=1, y=2), Point(x=3, y=4)]),
        (Point | None, None),
        (tuple[int, str], (1, "a")),
        (datetime, datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        (dict[str, list[int]], {"a": [1, 2]}),
        (float, 1.5),
    ],
    ids=["model", "list-of-models", "optional-none", "tuple", "datetime", "dict", "float"],
)
def test_structured_results_validate_against_the_output_schema(annotation, value):
    jsonschema = pytest.importorskip("jsonschema")

    def fn():
        return value

    fn.__annotations__ = {"return": annotation}
    tool = single_tool(fn)
    structured = tool.structured(tool.run({}))
    jsonschema.validate(structured, tool.output_schema)


# -- annotations and description ------------------------------------------------------------


def _noop() -> None:
    return None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"readOnlyHint": False, "idempotentHint": False}),
        ({"read_only": True}, {"readOnlyHint": True, "idempotentHint": True}),
        ({"idempotent": True}, {"readOnlyHint": False, "idempotentHint": True}),
        ({"destructive": True}, {"readOnlyHint": False, "idempotentHint": False, "destructiveHint": True}),
        ({"destructive": False}, {"readOnlyHint": False, "idempotentHint": False, "destructiveHint": False}),
        ({"read_only": True, "destructive": True}, {"readOnlyHint": True, "idempotentHint": True}),
        ({"open_world": True}, {"readOnlyHint": False, "idempotentHint": False, "openWorldHint": True}),
        (
            {"read_only": True, "open_world": False},
            {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
        ),
    ],
)
def test_annotations_mapping(options, expected):
    tool = single_tool(_noop, **options)
    assert tool.annotations == expected
    assert tool.definition()["annotations"] == expected


def test_read_only_tools_are_idempotent():
    tool = single_tool(_noop, read_only=True)
    assert tool.read_only is True and tool.idempotent is True


def test_description_falls_back_to_the_name_without_a_docstring():
    def find_category_name(q: str) -> str:
        return q

    assert single_tool(find_category_name).description == "find category name"


def test_explicit_description_and_name_override_the_function():
    def fn() -> None:
        """Docstring summary."""

    tool = single_tool(fn, name="renamed.tool-v2", description="Explicit.")
    assert (tool.name, tool.description) == ("renamed.tool-v2", "Explicit.")
    assert tool.uri == "demo/renamed.tool-v2"


def test_definition_has_the_mcp_tools_list_shape():
    def echo(text: str) -> str:
        """Repeat text."""
        return text

    tool = single_tool(echo, read_only=True)
    definition = tool.definition()
    assert set(definition) == {"name", "description", "inputSchema", "outputSchema", "annotations"}
    assert definition["name"] == "echo"
    assert definition["description"] == "Repeat text."
    assert definition["inputSchema"] is tool.input_schema
    assert definition["outputSchema"] is tool.output_schema


def test_decorator_returns_the_plain_function():
    service = make_service()

    @service.tool(read_only=True)
    def double(n: int) -> int:
        return n * 2

    @service.tool
    def triple(n: int) -> int:
        return n * 3

    assert double(4) == 8 and triple(2) == 6  # still directly callable
    assert list(service.tools) == ["double", "triple"]
    assert service.tools["double"].fn is double


# -- validation -----------------------------------------------------------------------------


def _typed(text: str, count: Annotated[int, Field(ge=1, le=5)] = 1, corner: Point | None = None) -> str:
    return text * count


def test_validation_names_every_bad_field():
    tool = single_tool(_typed)
    with pytest.raises(InvalidArguments) as info:
        tool.run({"count": 9, "corner": {"x": "left"}, "colour": "red"})
    exc = info.value
    assert exc.tool == "_typed"
    by_field = {e["field"]: e["type"] for e in exc.errors}
    assert by_field == {
        "text": "missing",
        "count": "less_than_equal",
        "corner.x": "int_parsing",
        "corner.y": "missing",
        "colour": "extra_forbidden",
    }
    for field in by_field:
        assert field in str(exc)


@pytest.mark.parametrize(
    ("arguments", "field", "kind"),
    [
        ({"text": 5}, "text", "string_type"),
        ({}, "text", "missing"),
        ({"text": "a", "extra": 1}, "extra", "extra_forbidden"),
        ({"text": "a", "count": 0}, "count", "greater_than_equal"),
        ({"text": "a", "count": "many"}, "count", "int_parsing"),
    ],
    ids=["wrong-type", "missing", "extra", "constraint", "unparsable"],
)
def test_validation_reports_each_kind_of_error(arguments, field, kind):
    tool = single_tool(_typed)
    with pytest.raises(InvalidArguments) as info:
        tool.run(arguments)
    assert info.value.fields == [field]
    assert info.value.errors[0]["type"] == kind
    assert info.value.errors[0]["message"]


@pytest.mark.parametrize("arguments", [[1, 2], "text", 3, True], ids=["list", "str", "int", "bool"])
def test_non_dict_arguments_are_rejected(arguments):
    tool = single_tool(_typed)
    with pytest.raises(InvalidArguments) as info:
        tool.run(arguments)
    assert info.value.errors == [{"field": "", "message": "arguments must be a JSON object", "type": "dict_type"}]
    assert "(arguments)" in str(info.value)


def test_none_arguments_mean_no_arguments():
    def ping() -> str:
        return "pong"

    assert single_tool(ping).run(None) == "pong"
    with pytest.raises(InvalidArguments) as info:
        single_tool(_typed).run(None)
    assert info.value.fields == ["text"]


def test_function_receives_validated_models_and_defaults():
    seen = {}

    def place(corner: Point, label: str = "dflt") -> str:
        seen["corner"], seen["label"] = corner, label
        return label

    single_tool(place).run({"corner": {"x": 1, "y": 2}})
    assert seen == {"corner": Point(x=1, y=2), "label": "dflt"}


# -- results --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        (datetime, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (date, date(2024, 1, 2), "2024-01-02"),
        (tuple[int, str], (1, "a"), [1, "a"]),
        (set[int], {3}, [3]),
        (Box, Box(label="b", corners=[Point(x=1, y=2)]), {"label": "b", "corners": [{"x": 1, "y": 2}]}),
        (dict[int, str], {1: "one"}, {"1": "one"}),
        (Any, (1, 2), [1, 2]),
    ],
    ids=["datetime", "date", "tuple", "set", "model", "int-keys", "unannotated-tuple"],
)
def test_result_is_what_json_gives(annotation, value, expected):
    def fn():
        return value

    fn.__annotations__ = {"return": annotation}
    assert single_tool(fn).run({}) == expected


@pytest.mark.parametrize(
    ("annotation", "value"),
    [(int, "not a number"), (Point, {"x": 1}), (list[int], 5), (Any, object())],
    ids=["str-for-int", "dict-for-model", "int-for-list", "unserialisable"],
)
def test_result_that_does_not_match_the_annotation_is_a_result_error(annotation, value):
    def wrong():
        return value

    wrong.__annotations__ = {"return": annotation}
    with pytest.raises(ToolError) as info:
        single_tool(wrong).run({})
    assert info.value.error_type == "ResultError"
    assert info.value.tool == "wrong"
    assert "return annotation" in info.value.message
    assert info.value.__cause__ is not None


def test_a_raising_tool_becomes_tool_error_with_type_message_and_cause():
    def fail(message: str) -> None:
        raise ValueError(message)

    with pytest.raises(ToolError) as info:
        single_tool(fail).run({"message": "bad input"})
    exc = info.value
    assert (exc.tool, exc.error_type, exc.message) == ("fail", "ValueError", "bad input")
    assert isinstance(exc.__cause__, ValueError) and str(exc.__cause__) == "bad input"
    assert exc.traceback is None
    assert str(exc) == "tool 'fail' failed: ValueError: bad input"


def test_traceback_is_attached_only_in_debug():
    def explode_deeply() -> int:
        raise KeyError("missing-thing")

    quiet = make_service("quiet")
    quiet.tool(explode_deeply)
    loud = make_service("loud", debug=True)
    loud.tool(explode_deeply)

    with pytest.raises(ToolError) as without:
        quiet.tools["explode_deeply"].run({})
    with pytest.raises(ToolError) as with_tb:
        loud.tools["explode_deeply"].run({})
    assert without.value.traceback is None
    assert "Traceback" in with_tb.value.traceback
    assert "explode_deeply" in with_tb.value.traceback
    assert "KeyError: 'missing-thing'" in with_tb.value.traceback


# -- async and threads ----------------------------------------------------------------------


def _async_tools() -> Service:
    service = make_service()

    @service.tool
    async def make_box(label: str, corners: list[Point]) -> Box:
        return Box(label=label, corners=corners)

    @service.tool
    async def afail(message: str) -> int:
        raise LookupError(message)

    return service


def test_async_tool_via_run():
    service = _async_tools()
    tool = service.tools["make_box"]
    assert tool.is_async is True
    assert tool.run({"label": "a", "corners": [{"x": 1, "y": 2}]}) == {"label": "a", "corners": [{"x": 1, "y": 2}]}


def test_async_tool_raising_via_run_is_tool_error():
    with pytest.raises(ToolError) as info:
        _async_tools().tools["afail"].run({"message": "nope"})
    assert (info.value.error_type, info.value.message) == ("LookupError", "nope")
    assert isinstance(info.value.__cause__, LookupError)


async def test_async_tool_via_arun():
    service = _async_tools()
    result = await service.tools["make_box"].arun({"label": "b", "corners": []})
    assert result == {"label": "b", "corners": []}
    with pytest.raises(ToolError) as info:
        await service.tools["afail"].arun({"message": "x"})
    assert info.value.error_type == "LookupError"
    with pytest.raises(InvalidArguments):
        await service.tools["make_box"].arun({"label": "b"})


@pytest.mark.parametrize("thread_sync", [True, False])
async def test_sync_tool_via_arun_runs_in_a_worker_thread_only_when_asked(thread_sync):
    ran_in = []

    def where(n: int) -> datetime:
        ran_in.append(threading.get_ident())
        return datetime(2024, 1, 1, tzinfo=UTC)

    tool = single_tool(where)
    assert await tool.arun({"n": 1}, thread_sync=thread_sync) == "2024-01-01T00:00:00Z"
    assert (ran_in[0] != threading.get_ident()) is thread_sync


async def test_sync_tool_raising_via_arun_is_tool_error():
    def fail() -> None:
        raise RuntimeError("in a thread")

    with pytest.raises(ToolError) as info:
        await single_tool(fail).arun({})
    assert (info.value.error_type, info.value.message) == ("RuntimeError", "in a thread")


async def test_arun_checks_the_return_annotation_too():
    def wrong() -> int:
        return "nope"  # type: ignore[return-value]

    with pytest.raises(ToolError) as info:
        await single_tool(wrong).arun({}, thread_sync=False)
    assert info.value.error_type == "ResultError"


# -- result caching -------------------------------------------------------------------------


def _cached_service(cache, ttl: float = 60) -> tuple[Service, list[tuple[int, int]]]:
    service = Service(unique_name("cached"))
    service.cache = cache
    calls: list[tuple[int, int]] = []

    @service.tool(read_only=True, cache_ttl=ttl)
    def power(n: int, exp: int = 2) -> int:
        calls.append((n, exp))
        return n**exp

    return service, calls


def test_cache_ttl_runs_the_function_once_for_equal_arguments():
    service, calls = _cached_service(MemoryCache())
    tool = service.tools["power"]
    assert tool.run({"n": 3}) == 9
    assert tool.run({"n": 3}) == 9
    assert tool.run({"n": 3, "exp": 2}) == 9  # the default filled in is the same call
    assert tool.run({"exp": 2, "n": 3}) == 9  # key order does not matter
    assert calls == [(3, 2)]
    assert tool.run({"n": 3, "exp": 3}) == 27
    assert tool.run({"n": 4}) == 16
    assert calls == [(3, 2), (3, 3), (4, 2)]


def test_cached_results_expire_after_the_ttl():
    service, calls = _cached_service(MemoryCache(), ttl=0.05)
    tool = service.tools["power"]
    tool.run({"n": 2})
    time.sleep(0.2)
    tool.run({"n": 2})
    assert calls == [(2, 2), (2, 2)]


_EDITED_SERVICE = """from devenv import Service

service = Service("edited")


@service.tool(read_only=True, cache_ttl=300)
def answer() -> int:
    return {value}
"""


def _load_edited(package, value: int, *, helper: str | None = None):
    """Write ``<package>/service.py`` (and maybe a helper beside it), then import it afresh."""
    import importlib.util

    (package / "__init__.py").write_text("")
    (package / "service.py").write_text(_EDITED_SERVICE.format(value=value))
    if helper is not None:
        (package / "helper.py").write_text(helper)
    name = f"edited_{package.name}_{value}_{helper is not None}"
    spec = importlib.util.spec_from_file_location(name, package / "service.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.service


def test_cached_results_of_old_code_are_not_served_after_an_edit(tmp_path):
    """A cache that outlives the process (Redis) must not answer for code that changed since."""
    shared = MemoryCache()
    before = _load_edited(tmp_path, 1)
    before.cache = shared
    assert before.tools["answer"].run({}) == 1
    after = _load_edited(tmp_path, 2)  # the reload: same service, same version, new code
    after.cache = shared
    assert after.tools["answer"].run({}) == 2
    again = _load_edited(tmp_path, 2)  # unchanged code keeps its entries
    again.cache = shared
    assert again.tools["answer"]._cache_key(again.tools["answer"].validate({})) == after.tools["answer"]._cache_key(
        after.tools["answer"].validate({})
    )


def test_an_edit_to_a_helper_module_of_the_service_changes_the_cache_key(tmp_path):
    service = _load_edited(tmp_path, 1, helper="RATE = 1\n")
    key = service.tools["answer"]._cache_key(service.tools["answer"].validate({}))
    edited = _load_edited(tmp_path, 1, helper="RATE = 2  # the helper the tool imports changed\n")
    assert edited.tools["answer"]._cache_key(edited.tools["answer"].validate({})) != key


def test_tools_without_cache_ttl_always_run():
    service = make_service()
    calls = []

    @service.tool(read_only=True)
    def f(n: int) -> int:
        calls.append(n)
        return n

    service.tools["f"].run({"n": 1})
    service.tools["f"].run({"n": 1})
    assert calls == [1, 1]


def test_cached_result_is_the_same_json_as_a_fresh_one():
    service = Service(unique_name())
    service.cache = MemoryCache()
    calls = []

    @service.tool(cache_ttl=60)
    def stamp(day: int) -> Box:
        calls.append(day)
        return Box(label=str(day), corners=[Point(x=day, y=day)])

    first = service.tools["stamp"].run({"day": 1})
    second = service.tools["stamp"].run({"day": 1})
    assert first == second == {"label": "1", "corners": [{"x": 1, "y": 1}]}
    assert len(calls) == 1


def test_failures_are_not_cached():
    service = make_service()
    calls = []

    @service.tool(cache_ttl=60)
    def flaky(n: int) -> int:
        calls.append(n)
        if len(calls) == 1:
            raise ConnectionError("first call fails")
        return n

    with pytest.raises(ToolError):
        service.tools["flaky"].run({"n": 1})
    assert service.tools["flaky"].run({"n": 1}) == 1
    assert service.tools["flaky"].run({"n": 1}) == 1
    assert calls == [1, 1]


def test_cache_is_shared_through_redis(redis_url):
    first_cache, second_cache = RedisCache(redis_url), RedisCache(redis_url)
    try:
        name = unique_name("shared")
        replicas = []
        calls: list[int] = []
        for cache in (first_cache, second_cache):  # two replicas of one service
            service = Service(name)
            service.cache = cache

            @service.tool(cache_ttl=60)
            def square(n: int) -> int:
                calls.append(n)
                return n * n

            replicas.append(service)
        assert replicas[0].tools["square"].run({"n": 5}) == 25
        assert replicas[1].tools["square"].run({"n": 5}) == 25
        assert calls == [5]
    finally:
        first_cache.close()
        second_cache.close()


async def test_arun_caches_through_a_blocking_redis_cache(redis_url):
    cache = RedisCache(redis_url)
    try:
        service, calls = _cached_service(cache)
        tool = service.tools["power"]
        assert await tool.arun({"n": 6}) == 36
        assert await tool.arun({"n": 6, "exp": 2}) == 36
        assert tool.run({"n": 6}) == 36  # sync and async share one cache entry
        assert calls == [(6, 2)]
    finally:
        cache.close()


async def test_arun_caches_through_memory():
    service, calls = _cached_service(MemoryCache())
    tool = service.tools["power"]
    await tool.arun({"n": 2}, thread_sync=False)
    await tool.arun({"n": 2})
    assert calls == [(2, 2)]


class UnreachableCache:
    """A cache backend whose every call fails the way an unreachable Redis does."""

    blocking = False

    def __init__(self) -> None:
        self.attempts = 0

    def _fail(self, *args: Any) -> Any:
        self.attempts += 1
        raise ServiceUnavailable("redis", "redis://cache:6379/0", "connection refused")

    get = set = delete = push = items = ping = _fail


def test_a_failing_cache_degrades_to_no_cache(caplog):
    cache = UnreachableCache()
    service, calls = _cached_service(cache)
    with caplog.at_level(logging.WARNING, logger="devenv.tools"):
        assert service.tools["power"].run({"n": 3}) == 9
        assert service.tools["power"].run({"n": 3}) == 9
    assert calls == [(3, 2), (3, 2)]
    assert cache.attempts == 4  # a read and a write per call, each one tried
    assert "cache read skipped" in caplog.text and "cache write skipped" in caplog.text


async def test_an_unreachable_redis_degrades_to_no_cache_in_arun():
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    try:
        service, calls = _cached_service(cache)
        assert await service.tools["power"].arun({"n": 2}) == 4
        assert service.tools["power"].run({"n": 2}) == 4
        assert calls == [(2, 2), (2, 2)]
    finally:
        cache.close()


def test_service_cache_defaults_to_redis_when_redis_url_is_set(monkeypatch, redis_url):
    monkeypatch.setattr(config, "_dotenv_loaded", True)
    monkeypatch.setenv("REDIS_URL", redis_url)
    with_redis = Service("with-redis")
    assert isinstance(with_redis.cache, RedisCache)
    assert with_redis.cache is with_redis.cache  # made once
    monkeypatch.delenv("REDIS_URL")
    assert isinstance(Service("without-redis").cache, MemoryCache)


# -- configuration errors -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Demo", "demo_service", "-demo", "demo-", "demo--x", "1demo", "", "demo service"])
def test_bad_service_names_are_config_errors(name):
    with pytest.raises(ConfigError, match="lowercase words joined by '-'"):
        Service(name)


@pytest.mark.parametrize("name", ["demo", "jd-classifier", "a1-b2-c3"])
def test_good_service_names(name):
    assert Service(name).name == name


@pytest.mark.parametrize("name", ["has space", "1starts-with-digit", "semi;colon", "a" * 129, "slash/name"])
def test_bad_tool_names_are_config_errors(name):
    with pytest.raises(ConfigError, match="must match"):
        make_service().tool(_noop, name=name)


def test_duplicate_tools_are_config_errors():
    service = make_service()
    service.tool(_noop)
    with pytest.raises(ConfigError, match="already has a tool named '_noop'"):
        service.tool(_noop)
    service.tool(_noop, name="renamed")
    with pytest.raises(ConfigError, match="already has a tool named 'renamed'"):
        service.tool(_typed, name="renamed")
    assert service.tools["renamed"].fn is _noop  # the first registration stands


@pytest.mark.parametrize("ttl", [0, -1, -0.5])
def test_non_positive_cache_ttl_is_a_config_error(ttl):
    with pytest.raises(ConfigError, match="cache_ttl of '_noop' must be positive"):
        make_service().tool(_noop, cache_ttl=ttl)


def _positional_only(a: int, /) -> int:
    return a


def _var_positional(*items: int) -> int:
    return len(items)


def _var_keyword(**options: int) -> int:
    return len(options)


@pytest.mark.parametrize(
    ("fn", "param"),
    [(_positional_only, "a"), (_var_positional, "items"), (_var_keyword, "options")],
    ids=["positional-only", "*args", "**kwargs"],
)
def test_parameters_that_cannot_be_json_fields_are_config_errors(fn, param):
    service = make_service()
    with pytest.raises(ConfigError, match=f"parameter '{param}' must be a named parameter"):
        service.tool(fn)
    assert service.tools == {}


def test_underscore_parameter_is_a_config_error():
    def hidden(_secret: int) -> int:
        return _secret

    with pytest.raises(ConfigError, match="_secret"):
        make_service().tool(hidden)


@pytest.mark.parametrize("name", ["model_config", "json", "copy", "schema"])
def test_parameters_that_clash_with_pydantic_model_attributes_are_refused(name):
    namespace: dict = {}
    exec(f"def configure({name}: int) -> int:\n    return {name}", namespace)
    with pytest.raises(ConfigError, match=f"parameter '{name}' clashes"):
        make_service().tool(namespace["configure"])


def test_unknown_requirements_are_config_errors():
    with pytest.raises(ConfigError, match=r"unknown requirement\(s\) \['database'\]"):
        Service("demo", requires=("cache", "database"))


def test_get_tool_unknown_lists_known_tools():
    service = make_service()
    service.tool(_noop)
    service.tool(_typed)
    assert service.get_tool("_noop") is service.tools["_noop"]
    with pytest.raises(ToolNotFound) as info:
        service.get_tool("nope")
    assert (info.value.service, info.value.tool, info.value.known) == ("demo", "nope", ["_noop", "_typed"])
    assert "its tools: _noop, _typed" in str(info.value)


# -- readiness ------------------------------------------------------------------------------


def test_ready_with_a_memory_cache():
    service = make_service(requires=("cache",))
    assert service.check_ready() == {"cache": None}


def test_no_requirements_no_checks():
    assert make_service().check_ready() == {}


def test_ready_with_a_reachable_redis(redis_url):
    service = Service("needs-cache", requires=("cache",))
    service.cache = RedisCache(redis_url)
    try:
        assert service.check_ready() == {"cache": None}
    finally:
        service.cache.close()


def test_not_ready_while_redis_is_unreachable():
    port = free_port()
    service = Service("needs-cache", requires=("cache",))
    service.cache = RedisCache(f"redis://:hunter2secret@127.0.0.1:{port}/0", timeout=0.5)
    try:
        failure = service.check_ready()["cache"]
    finally:
        service.cache.close()
    assert failure is not None
    assert failure.startswith("ServiceUnavailable: service 'redis' is unavailable")
    assert f"127.0.0.1:{port}" in failure
    assert "hunter2secret" not in failure


def test_readiness_check_decorator():
    service = make_service()
    state = {"ready": False}

    @service.readiness_check
    def model_loaded():
        if not state["ready"]:
            raise RuntimeError("model still loading")

    @service.readiness_check
    def queue_has_room():
        return state["ready"]

    @service.readiness_check
    def always():
        return True

    assert model_loaded is not None and callable(model_loaded)  # returns the function
    assert service.check_ready() == {
        "model_loaded": "RuntimeError: model still loading",
        "queue_has_room": "check returned False",
        "always": None,
    }
    state["ready"] = True
    assert service.check_ready() == {"model_loaded": None, "queue_has_room": None, "always": None}


def test_requirement_and_custom_checks_are_reported_together():
    service = Service("both", requires=("cache",))
    service.cache = UnreachableCache()

    @service.readiness_check
    def fine():
        return None

    assert service.check_ready() == {
        "cache": "ServiceUnavailable: service 'redis' is unavailable at redis://cache:6379/0: connection refused",
        "fine": None,
    }


# -- registry -------------------------------------------------------------------------------


@pytest.fixture
def make_package(tmp_path, monkeypatch):
    """Write a throwaway package under tmp_path, importable for this test only; returns its name.

    ``{package}`` in a file's text becomes the package's (unique) name.
    """
    created: list[str] = []

    def make(files: dict[str, str]) -> str:
        name = f"devenv_test_pkg_{uuid.uuid4().hex[:12]}"
        root = tmp_path / name
        for rel, text in {"__init__.py": "", **files}.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).replace("{package}", name))
        for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            (directory / "__init__.py").touch()
        monkeypatch.syspath_prepend(str(tmp_path))
        importlib.invalidate_caches()
        created.append(name)
        return name

    yield make
    for module in list(sys.modules):
        if any(module == name or module.startswith(name + ".") for name in created):
            del sys.modules[module]


def service_module(name: str, body: str = "") -> str:
    return f"from devenv import Service\nservice = Service({name!r})\n{textwrap.dedent(body)}"


def test_registry_get_registered_and_unknown():
    alpha, beta = Service("alpha"), Service("beta-two")
    registry = Registry(package="devenv_test_no_such_package", services=[alpha, beta])
    assert registry.get("alpha") is alpha
    assert registry.get("beta-two") is beta
    with pytest.raises(ServiceNotFound) as info:
        registry.get("gamma")
    assert info.value.service == "gamma"
    assert info.value.known == ["alpha", "beta-two"]
    assert "known services: alpha, beta-two" in str(info.value)


@pytest.mark.parametrize("name", ["Alpha", "alpha_one", "../alpha", "alpha.service", ""])
def test_registry_invalid_names_are_not_found(name):
    registry = Registry(package="devenv_test_no_such_package", services=[Service("alpha")])
    with pytest.raises(ServiceNotFound) as info:
        registry.get(name)
    assert info.value.known == ["alpha"]


def test_registry_names_come_from_disk_without_importing(make_package):
    package = make_package(
        {
            "alpha_one/service.py": service_module("alpha-one"),
            "beta/service.py": "raise RuntimeError('must not be imported by names()')\n",
            "not_a_service/helpers.py": "",
        }
    )
    registry = Registry(package=package, services=[Service("zeta")])
    assert registry.names() == ["alpha-one", "beta", "zeta"]
    assert f"{package}.beta.service" not in sys.modules
    assert f"{package}.alpha_one.service" not in sys.modules


def test_registry_get_imports_the_service_module_once(make_package):
    package = make_package(
        {
            "alpha_one/service.py": service_module(
                "alpha-one",
                """
                @service.tool
                def hello(who: str) -> str:
                    return "hello " + who
                """,
            )
        }
    )
    registry = Registry(package=package)
    service = registry.get("alpha-one")
    assert service is sys.modules[f"{package}.alpha_one.service"].service
    assert registry.get("alpha-one") is service
    assert service.tools["hello"].run({"who": "you"}) == "hello you"
    assert registry.all() == [service]


def test_registry_unknown_service_in_a_package_lists_those_on_disk(make_package):
    package = make_package({"alpha/service.py": service_module("alpha"), "empty_dir/readme.py": ""})
    registry = Registry(package=package)
    for name in ("nope", "empty-dir"):
        with pytest.raises(ServiceNotFound) as info:
            registry.get(name)
        assert info.value.known == ["alpha"]


def test_registry_over_a_missing_package_knows_only_registered_services():
    registry = Registry(package="devenv_test_no_such_package", services=[Service("alpha")])
    assert registry.names() == ["alpha"]
    with pytest.raises(ServiceNotFound):
        registry.get("beta")


def test_a_service_with_a_broken_import_shows_that_import_error(make_package):
    package = make_package({"broken/service.py": "import devenv_test_missing_dependency_xyz\n"})
    with pytest.raises(ModuleNotFoundError) as info:
        Registry(package=package).get("broken")
    assert info.value.name == "devenv_test_missing_dependency_xyz"


def test_a_service_whose_own_code_fails_to_import_shows_that_error(make_package):
    package = make_package({"broken/service.py": "from os import no_such_name\n"})
    with pytest.raises(ImportError, match="no_such_name"):
        Registry(package=package).get("broken")


def test_a_missing_sibling_module_is_not_mistaken_for_an_unknown_service(make_package):
    package = make_package({"report_v2/service.py": "from {package}.report import shared\n"})
    with pytest.raises(ModuleNotFoundError) as info:
        Registry(package=package).get("report-v2")
    assert info.value.name == f"{package}.report"


def test_a_module_whose_service_has_the_wrong_name_is_a_config_error(make_package):
    package = make_package({"alpha/service.py": service_module("not-alpha")})
    with pytest.raises(ConfigError, match="defines service 'not-alpha'; expected 'alpha'"):
        Registry(package=package).get("alpha")


def test_a_module_without_a_service_is_a_config_error(make_package):
    package = make_package({"alpha/service.py": "service = 'not a Service'\n"})
    with pytest.raises(ConfigError, match=r"must define `service = Service\('alpha'\)`"):
        Registry(package=package).get("alpha")
