"""Property tests of POST /mcp: whatever arrives, the right JSON-RPC answer, never a 500 or a hang.

An oracle written from the JSON-RPC 2.0 and MCP rules (not from the server's code) says what
each message deserves; hypothesis sends arbitrary bytes, arbitrary JSON, near-miss messages
(wrong ``jsonrpc``, missing or odd ids, wrong types), batches, huge numbers and deep nesting
to a real server and compares. ``DEVENV_FUZZ_EXAMPLES`` sets the examples per property.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devenv import create_app
from devenv.config import Settings
from tests.conftest import serve_in_thread
from tests.hardening import tally
from tests.hardening.tally import FUZZ
from tests.unit.demo_service import make_service

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
METHODS = ["initialize", "ping", "tools/list", "tools/call"]
TOOLS = list(make_service().tools)
RESULT = "result"


@pytest.fixture(scope="module")
def http():
    with serve_in_thread(create_app(make_service(), Settings(max_body_bytes=256 * 1024))) as url:
        with httpx.Client(base_url=url, timeout=15, headers={"accept": "application/json, text/event-stream"}) as c:
            yield c


def expected(message: Any) -> tuple[int, int | str | None]:
    """(HTTP status, JSON-RPC error code or RESULT or None for no body) for a parsed message."""
    if isinstance(message, list):
        return 400, INVALID_REQUEST  # batches were removed from MCP in 2025-06-18
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return 400, INVALID_REQUEST
    if "method" not in message:
        if "result" in message or "error" in message:
            return 202, None  # a response to the server: accepted, nothing to say
        return 400, INVALID_REQUEST
    if not isinstance(message["method"], str):
        return 400, INVALID_REQUEST
    if "id" not in message:
        return 202, None  # a notification
    request_id = message["id"]
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        return 400, INVALID_REQUEST  # MCP: a string or an integer, never null
    params = message.get("params")
    if params is not None and not isinstance(params, dict):
        return 200, INVALID_PARAMS
    if message["method"] not in METHODS:
        return 200, METHOD_NOT_FOUND
    if message["method"] == "tools/call":
        name = (params or {}).get("name")
        if not isinstance(name, str) or name not in TOOLS:
            return 200, INVALID_PARAMS
    return 200, RESULT


def check(http: httpx.Client, body: bytes) -> None:
    """Send ``body``; the answer must be what the oracle says, well-formed, and never a 5xx."""
    tally.add("cases fuzzed")
    tally.add("hypothesis cases")
    r = http.post("/mcp", content=body, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text[:500]
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        status, code = 400, PARSE_ERROR
    else:
        status, code = expected(message)
    assert r.status_code == status, (body[:300], r.text[:300])
    if code is None:
        assert r.content == b""
        return
    answer = r.json()
    assert answer["jsonrpc"] == "2.0"
    if code == RESULT:
        assert isinstance(answer["result"], dict) and "error" not in answer
        assert answer["id"] == message["id"]
        if message["method"] == "tools/call":
            assert isinstance(answer["result"]["isError"], bool)
            assert answer["result"]["content"][0]["type"] == "text"
    else:
        assert answer["error"]["code"] == code and isinstance(answer["error"]["message"], str)
        assert "result" not in answer
        assert answer["id"] is None or isinstance(answer["id"], (int, str))


# -- strategies ---------------------------------------------------------------------------------------

huge_ints = st.integers(min_value=-(10**40), max_value=10**40)
scalars = st.none() | st.booleans() | huge_ints | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
ids = huge_ints | st.text(max_size=20) | st.none() | st.booleans() | st.floats(allow_nan=False) | st.lists(huge_ints)
versions = st.sampled_from(["2.0", "1.0", "2", "2.00", " 2.0", ""]) | st.just(2.0) | st.just(2) | st.none()
methods = (
    st.sampled_from([*METHODS, "notifications/initialized", "resources/list", ""]) | st.text(max_size=12) | scalars
)
arguments = st.dictionaries(st.sampled_from(["text", "times", "n", "label", "corners", "message", "x"]), json_values)
params = (
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.sampled_from(TOOLS) | st.text(max_size=8) | scalars,
            "arguments": arguments | json_values,
            "protocolVersion": st.sampled_from(["2025-06-18", "2025-11-25"]) | scalars,
            "_meta": json_values,
        },
    )
    | json_values
)


@st.composite
def messages(draw) -> dict[str, Any]:
    """Near-misses of a request: each field present or not, right or wrong."""
    fields = {"jsonrpc": versions, "id": ids, "method": methods, "params": params, "result": json_values}
    keys = draw(st.sets(st.sampled_from(list(fields))))
    message = {key: draw(fields[key]) for key in keys}
    if draw(st.booleans()):  # usually a well-formed envelope, so the deeper rules get exercised
        message["jsonrpc"] = "2.0"
    return message


DEEP = "__deep__"


def nested(depth: int, kind: str) -> bytes:
    """JSON text nested ``depth`` deep (written directly: Python's json would hit its recursion limit)."""
    if kind == "list":
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()  # Python's json writes ints of any size, as a peer might


# -- properties --------------------------------------------------------------------------------------


@FUZZ
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes(http, body):
    check(http, body)


@FUZZ
@given(value=json_values)
def test_arbitrary_json(http, value):
    check(http, encode(value))


@FUZZ
@given(message=messages())
def test_near_miss_messages(http, message):
    check(http, encode(message))


@FUZZ
@given(batch=st.lists(messages(), max_size=5))
def test_batches_are_refused(http, batch):
    check(http, encode(batch))


@FUZZ
@given(name=st.sampled_from(TOOLS), args=arguments | json_values, request_id=huge_ints | st.text(max_size=10))
def test_tools_call_with_arbitrary_arguments(http, name, args, request_id):
    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name, "arguments": args}}
    check(http, encode(message))


@FUZZ
@given(
    depth=st.integers(min_value=1, max_value=3000),
    kind=st.sampled_from(["list", "dict"]),
    where=st.sampled_from(["id", "params", "arguments", "method", "top"]),
)
def test_deep_nesting(http, depth, kind, where):
    message: Any = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
    if where == "id":
        message["id"] = DEEP
    elif where == "params":
        message["params"]["deep"] = DEEP
    elif where == "arguments":
        message["params"]["arguments"]["text"] = DEEP
    elif where == "method":
        del message["method"]  # no method: the server answers with what id it can
        message["id"] = DEEP
    else:
        message = DEEP
    check(http, encode(message).replace(f'"{DEEP}"'.encode(), nested(depth, kind)))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"null",
        b"\xff\xfe{}",
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}' * 2,
        b'{"jsonrpc": "2.0", "id": 1e400, "method": "ping"}',
        b'{"jsonrpc": "2.0", "id": 123456789012345678901234567890, "method": "ping"}',
        b'{"jsonrpc": "2.0", "id": 18446744073709551615, "method": "ping"}',
        b'{"jsonrpc": "2.0", "id": -9223372036854775808, "method": "ping"}',
        b'{"jsonrpc": "2.0", "id": "\\ud800", "method": "ping"}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"a": NaN}}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping",}',
        b'{"jsonrpc": "2.0", "id": 1, "id": "dup", "method": "ping"}',
        b'{"jsonrpc": "2.0", "id": [' + b"[" * 300 + b"]" * 300 + b"]}",
    ],
)
def test_known_troublemakers(http, body):
    check(http, body)
