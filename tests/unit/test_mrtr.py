"""Multi-round-trip input (MCP 2026-07-28): the sealed requestState and one round's channel."""

from __future__ import annotations

import asyncio

import pytest

from devenv import CapabilityMissing, Context
from devenv.mrtr import STATE_TTL_SECONDS, InputRequired, InvalidInput, MultiRoundChannel, StateSealer

SEALER = StateSealer(b"k" * 32)
DIGEST = StateSealer.request_digest("tools/call", "ask", {"x": 1})
ALL = {"elicitation": {}, "sampling": {}, "roots": {}}
ACCEPT = {"action": "accept", "content": {"name": "Alice"}}


def channel(responses=None, state=None, capabilities=ALL, arguments=None):
    params = {"name": "ask", "arguments": {"x": 1} if arguments is None else arguments}
    if responses is not None:
        params["inputResponses"] = responses
    if state is not None:
        params["requestState"] = state
    return MultiRoundChannel.for_request(SEALER, "tools/call", params, capabilities)


def test_sealed_answers_come_back_out():
    state = SEALER.seal(DIGEST, {"user_name": ACCEPT})
    assert SEALER.open(state, DIGEST) == {"user_name": ACCEPT}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s + "-TAMPERED",
        lambda s: s[:-2] + ("AA" if not s.endswith("AA") else "BB"),
        lambda s: "x" + s,
        lambda s: s.replace(".", ""),
        lambda s: "",
    ],
)
def test_an_altered_state_fails_its_integrity_check(tamper):
    state = SEALER.seal(DIGEST, {"user_name": ACCEPT})
    with pytest.raises(InvalidInput, match="integrity"):
        SEALER.open(tamper(state), DIGEST)


def test_a_state_sealed_by_another_key_is_refused():
    state = StateSealer(b"o" * 32).seal(DIGEST, {})
    with pytest.raises(InvalidInput, match="another key"):
        SEALER.open(state, DIGEST)


def test_a_state_is_bound_to_its_request():
    state = SEALER.seal(DIGEST, {"user_name": ACCEPT})
    other = StateSealer.request_digest("tools/call", "ask", {"x": 2})
    with pytest.raises(InvalidInput, match="another request"):
        SEALER.open(state, other)
    assert StateSealer.request_digest("tools/call", "ask", None) == StateSealer.request_digest("tools/call", "ask", {})


def test_a_state_expires():
    state = SEALER.seal(DIGEST, {}, now=1000.0)
    assert SEALER.open(state, DIGEST, now=1000.0 + STATE_TTL_SECONDS - 1) == {}
    with pytest.raises(InvalidInput, match="expired"):
        SEALER.open(state, DIGEST, now=1000.0 + STATE_TTL_SECONDS + 1)


@pytest.mark.parametrize("state", [123, None, ["a"], {"a": 1}])
def test_a_state_that_is_not_a_string_is_refused(state):
    with pytest.raises(InvalidInput, match="requestState must be the string"):
        SEALER.open(state, DIGEST)


@pytest.mark.parametrize("responses", [[1], "user_name", 12])
def test_input_responses_must_be_an_object(responses):
    with pytest.raises(InvalidInput, match="inputResponses must be an object"):
        channel(responses=responses)


async def ask_name(ctx: Context) -> str:
    answer = await ctx.elicit("Name?", {"type": "object", "properties": {"name": {"type": "string"}}}, key="user_name")
    return answer["content"]["name"]


async def test_a_first_round_asks_and_seals_nothing_answered():
    round1 = channel()
    with pytest.raises(InputRequired):
        await ask_name(Context(input_channel=round1))
    result = round1.result()
    assert result["resultType"] == "input_required"
    assert result["inputRequests"]["user_name"]["method"] == "elicitation/create"
    assert result["inputRequests"]["user_name"]["params"]["mode"] == "form"
    assert SEALER.open(result["requestState"], DIGEST) == {}


async def test_the_retry_answers_from_input_responses_and_later_rounds_from_the_state():
    async def two_steps(ctx: Context) -> tuple[str, str]:
        first = await ctx.elicit("1?", key="step1")
        second = await ctx.elicit("2?", key="step2")
        return first["content"]["v"], second["content"]["v"]

    round1 = channel()
    with pytest.raises(InputRequired):
        await two_steps(Context(input_channel=round1))
    round2 = channel({"step1": {"action": "accept", "content": {"v": "a"}}}, round1.result()["requestState"])
    with pytest.raises(InputRequired):
        await two_steps(Context(input_channel=round2))
    assert list(round2.result()["inputRequests"]) == ["step2"]
    # Round 3 carries only step2: step1 comes out of the sealed state.
    round3 = channel({"step2": {"action": "accept", "content": {"v": "b"}}}, round2.result()["requestState"])
    assert await two_steps(Context(input_channel=round3)) == ("a", "b")


async def test_asks_gathered_together_go_out_in_one_round():
    async def three(ctx: Context):
        return await asyncio.gather(ctx.elicit("n?"), ctx.sample("hi", max_tokens=5), ctx.list_roots())

    round1 = channel()
    with pytest.raises(InputRequired):
        await three(Context(input_channel=round1))
    requests = round1.result()["inputRequests"]
    assert {k: v["method"] for k, v in requests.items()} == {
        "elicitation_1": "elicitation/create",
        "sampling_1": "sampling/createMessage",
        "roots_1": "roots/list",
    }
    assert requests["sampling_1"]["params"] == {
        "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
        "maxTokens": 5,
    }


async def test_extra_responses_are_ignored_and_wrong_keys_ask_again():
    answered = channel({"user_name": ACCEPT, "unknown_extra_key": {"foo": 1}})
    assert await ask_name(Context(input_channel=answered)) == "Alice"
    assert "unknown_extra_key" not in answered.answered, "only what the tool used is sealed"
    wrong = channel({"wrong_key": ACCEPT})
    with pytest.raises(InputRequired):
        await ask_name(Context(input_channel=wrong))
    assert list(wrong.result()["inputRequests"]) == ["user_name"]


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (12345, "must be an object"),
        (None, "must be an object"),
        ({"action": "maybe"}, '"action" is one of'),
        ({"action": "accept", "content": "Alice"}, '"content" is an object'),
    ],
)
async def test_a_malformed_answer_is_refused_never_used(answer, why):
    with pytest.raises(InvalidInput, match=why):
        await ask_name(Context(input_channel=channel({"user_name": answer})))


async def test_asking_for_what_the_client_did_not_declare_is_capability_missing():
    ctx = Context(input_channel=channel(capabilities={"sampling": {}}))
    assert ctx.supports("sampling") and not ctx.supports("elicitation")
    with pytest.raises(CapabilityMissing) as missing:
        await ask_name(ctx)
    assert missing.value.capability == "elicitation"
    assert "did not declare" in str(missing.value)
    with pytest.raises(CapabilityMissing, match="no channel back"):
        await ask_name(Context())


async def test_two_asks_with_one_key_in_one_round_are_a_mistake():
    async def twice(ctx: Context):
        return await asyncio.gather(ctx.elicit("a", key="same"), ctx.elicit("b", key="same"))

    with pytest.raises(ValueError, match="share the key 'same'"):
        await twice(Context(input_channel=channel()))


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda ctx: ctx.elicit(42), TypeError),
        (lambda ctx: ctx.elicit("m", schema="not a schema"), TypeError),
        (lambda ctx: ctx.sample("m", max_tokens=0), ValueError),
        (lambda ctx: ctx.sample([1, 2], max_tokens=5), TypeError),
        (lambda ctx: ctx.elicit("m", key=""), ValueError),
        (lambda ctx: ctx.request_input("tools/call", {}), ValueError),
    ],
)
async def test_a_tool_asking_wrongly_is_told_what_is_wrong(call, error):
    with pytest.raises(error):
        await call(Context(input_channel=channel()))


async def test_a_pydantic_model_is_a_form():
    from pydantic import BaseModel

    class Contact(BaseModel):
        email: str

    round1 = channel()
    with pytest.raises(InputRequired):
        await Context(input_channel=round1).elicit("Contact?", Contact)
    schema = round1.result()["inputRequests"]["elicitation_1"]["params"]["requestedSchema"]
    assert schema["properties"]["email"]["type"] == "string" and schema["required"] == ["email"]
