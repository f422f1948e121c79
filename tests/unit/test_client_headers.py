"""Mcp-Name / Mcp-Param-* header values and the x-mcp-header rules (MCP 2026-07-28, SEP-2243)."""

from __future__ import annotations

import pytest

from devenv.transports.mcpheaders import encode, marked_parameters, param_headers


@pytest.mark.parametrize(
    "value, header",
    [  # the spec's own table
        ("us-west1", "us-west1"),
        ("Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="),
        (" padded ", "=?base64?IHBhZGRlZCA=?="),
        ("line1\nline2", "=?base64?bGluZTEKbGluZTI=?="),
        ("=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="),
        ("us west 1", "us west 1"),
        ("", ""),
    ],
)
def test_values_are_encoded_as_the_spec_says(value, header):
    assert encode(value) == header


def test_marked_arguments_become_headers_and_null_or_absent_ones_do_not():
    schema = {
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "n": {"type": "integer", "x-mcp-header": "N"},
            "flag": {"type": "boolean", "x-mcp-header": "Flag"},
            "nested": {"type": "object", "properties": {"tenant": {"type": "string", "x-mcp-header": "Tenant"}}},
            "gone": {"type": "string", "x-mcp-header": "Gone"},
        },
    }
    marked = marked_parameters(schema)
    headers = param_headers(marked, {"region": "eu", "n": 42, "flag": False, "nested": {"tenant": "t1"}, "gone": None})
    assert headers == {
        "mcp-param-Region": "eu",
        "mcp-param-N": "42",
        "mcp-param-Flag": "false",
        "mcp-param-Tenant": "t1",
    }


@pytest.mark.parametrize(
    "prop, problem",
    [
        ({"type": "string", "x-mcp-header": "Bad Name"}, "not an HTTP header name token"),
        ({"type": "string", "x-mcp-header": ""}, "not an HTTP header name token"),
        ({"type": "number", "x-mcp-header": "Ratio"}, "only"),
        ({"type": "array", "items": {"type": "string", "x-mcp-header": "Item"}}, "not reachable"),
        ({"oneOf": [{"type": "string", "x-mcp-header": "Either"}]}, "not reachable"),
    ],
)
def test_a_broken_mark_is_refused_with_the_reason(prop, problem):
    with pytest.raises(ValueError, match=problem):
        marked_parameters({"type": "object", "properties": {"p": prop}})


def test_a_duplicate_mark_is_refused():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "x-mcp-header": "Id"}, "b": {"type": "string", "x-mcp-header": "id"}},
    }
    with pytest.raises(ValueError, match="used twice"):
        marked_parameters(schema)


def test_a_mark_under_defs_is_refused():
    schema = {"type": "object", "$defs": {"x": {"type": "string", "x-mcp-header": "X"}}, "properties": {}}
    with pytest.raises(ValueError, match="not reachable"):
        marked_parameters(schema)


def test_an_integer_outside_the_safe_range_is_refused():
    marked = marked_parameters({"type": "object", "properties": {"n": {"type": "integer", "x-mcp-header": "N"}}})
    with pytest.raises(ValueError, match="safe integer range"):
        param_headers(marked, {"n": 2**60})
