"""conformance: the fixtures the official MCP conformance suite calls, as plain devenv code.

Every tool, resource and prompt here has the name a server scenario of
``@modelcontextprotocol/conformance`` asks for (``test_simple_text``, ``test://static-text``,
``test_prompt_with_arguments`` ...). It doubles as the example of each feature of the server
surface: typed content, progress and log messages through ``Context``, static and templated
resources, prompts, and completion.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import wave
import zlib
from typing import Annotated, Any, Literal

from pydantic import Field

from devenv import Service
from devenv.content import Audio, EmbeddedResource, Image, Message, Text
from devenv.context import Context
from devenv.errors import RequestFailed

service = Service(
    "conformance",
    port=8106,
    instructions="Fixtures for the official MCP conformance suite; each one shows a devenv feature.",
)


def _png(width: int = 1, height: int = 1, rgb: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    """A solid-colour PNG, built here (signature, IHDR, IDAT, IEND) so no binary is checked in."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _wav(samples: int = 800, rate: int = 8000) -> bytes:
    """A tenth of a second of silence as 16-bit mono WAV."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * samples)
    return buffer.getvalue()


RED_PIXEL = _png()
SILENCE = _wav()


# -- tools: content of every kind -----------------------------------------------------------


@service.tool(read_only=True)
def test_simple_text() -> Text:
    """Answer one text block."""
    return Text("This is a simple text response for testing.")


@service.tool(read_only=True)
def test_image_content() -> Image:
    """Answer a 1x1 red PNG."""
    return Image(RED_PIXEL, "image/png")


@service.tool(read_only=True)
def test_audio_content() -> Audio:
    """Answer a short silent WAV."""
    return Audio(SILENCE, "audio/wav")


@service.tool(read_only=True)
def test_embedded_resource() -> EmbeddedResource:
    """Answer a resource's contents inline."""
    return EmbeddedResource("test://embedded-resource", text="This is an embedded resource content.")


@service.tool(read_only=True)
def test_multiple_content_types() -> list[Text | Image | EmbeddedResource]:
    """Answer text, an image and an embedded JSON resource together."""
    return [
        Text("Multiple content types test:"),
        Image(RED_PIXEL, "image/png"),
        EmbeddedResource(
            "test://mixed-content-resource", text='{"test":"data","value":123}', mime_type="application/json"
        ),
    ]


@service.tool(read_only=True)
def test_error_handling() -> Text:
    """Always fail: the caller gets an isError result."""
    raise RuntimeError("This tool intentionally returns an error for testing")


# -- tools: progress and logs ---------------------------------------------------------------


@service.tool(read_only=True)
async def test_tool_with_progress(ctx: Context) -> Text:
    """Report progress 0, 50 and 100 of 100, about 50 ms apart."""
    for step, progress in enumerate((0, 50, 100)):
        if step:
            await asyncio.sleep(0.05)
        ctx.report_progress(progress, 100, f"step {step + 1} of 3")
    return Text("Progress test completed")


@service.tool(read_only=True)
async def test_tool_with_logging(ctx: Context) -> Text:
    """Send three info log messages, about 50 ms apart."""
    ctx.info("Tool execution started", logger="conformance")
    await asyncio.sleep(0.05)
    ctx.info("Tool processing data", logger="conformance")
    await asyncio.sleep(0.05)
    ctx.info("Tool execution completed", logger="conformance")
    return Text("Logging test completed")


@service.tool(read_only=True)
async def test_logging_tool(ctx: Context) -> Text:
    """Log one info message: it reaches only a caller that asked for a log level."""
    ctx.info("test_logging_tool ran", logger="conformance")
    return Text("Logged (if a log level was requested)")


# -- tools: asking the client (2025-*: a request on the call's stream; 2026-07-28: a new round) --

CONTACT_FORM = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}
DEFAULTS_FORM = {  # SEP-1034: a default for every primitive type
    "type": "object",
    "properties": {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": True},
    },
}
ENUMS_FORM = {  # SEP-1330: the five ways to offer choices
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
}


def _elicited(answer: dict[str, Any]) -> str:
    return f"action={answer['action']}, content={json.dumps(answer.get('content') or {}, sort_keys=True)}"


@service.tool(read_only=True)
async def test_sampling(prompt: str, ctx: Context) -> Text:
    """Ask the client's model to answer ``prompt``; return what it said.

    Args:
        prompt: The prompt to send to the LLM
    """
    return Text(f"LLM response: {_answer_text(await ctx.sample(prompt, max_tokens=100))}")


@service.tool(read_only=True)
async def test_elicitation(message: str, ctx: Context) -> Text:
    """Ask the user for a user name and an email address; return their answer.

    Args:
        message: The message to show the user
    """
    return Text(f"User response: {_elicited(await ctx.elicit(message, CONTACT_FORM))}")


@service.tool(read_only=True)
async def test_elicitation_sep1034_defaults(ctx: Context) -> Text:
    """Ask for a form whose every field has a default (SEP-1034)."""
    answer = await ctx.elicit("Please review your details", DEFAULTS_FORM)
    return Text(f"Elicitation completed: {_elicited(answer)}")


@service.tool(read_only=True)
async def test_elicitation_sep1330_enums(ctx: Context) -> Text:
    """Ask for a form with each kind of choice: titled or not, single or multiple (SEP-1330)."""
    return Text(f"Elicitation completed: {_elicited(await ctx.elicit('Please choose', ENUMS_FORM))}")


# -- tools: the 2026-07-28 wire ---------------------------------------------------------------


@service.tool(read_only=True, client_capabilities={"sampling": {}})
def test_missing_capability() -> Text:
    """Callable only by clients that declare sampling; others are refused with -32021."""
    return Text("the client declared the sampling capability")


@service.tool(read_only=True)
def test_header_param(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> Text:
    """Echo ``region``, an argument clients mirror into the Mcp-Param-Region header.

    Args:
        region: where to route the call, e.g. "eu-west"
    """
    return Text(f"region: {region}")


ADDRESS_FORM = {  # JSON Schema 2020-12 keywords a server must pass through untouched
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


@service.tool(read_only=True, input_schema=ADDRESS_FORM)
def json_schema_2020_12_tool(
    name: str | None = None,
    address: dict[str, Any] | None = None,
    contactMethod: Literal["phone", "email"] | None = None,  # noqa: N803 - the suite's name
    phone: str | None = None,
    email: str | None = None,
) -> Text:
    """Take a contact form whose schema uses $defs, $anchor, allOf/anyOf and if/then/else."""
    how = f"phone {phone}" if contactMethod == "phone" else f"email {email}"
    return Text(f"contact {name or 'someone'} by {how}")


# -- tools: input from the client (2026-07-28: multi-round-trip; each round re-runs the tool) --

NAME_FORM = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
CONFIRM_FORM = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def _answer_text(result: dict[str, Any]) -> str:
    """The text of a sampling result's content (one block or a list)."""
    content = result["content"]
    blocks = content if isinstance(content, list) else [content]
    return " ".join(b.get("text", "") for b in blocks if isinstance(b, dict))


@service.tool(read_only=True)
async def test_input_required_result_elicitation(ctx: Context) -> Text:
    """Ask the user's name (elicitation, key ``user_name``), then greet them."""
    answer = await ctx.elicit("What is your name?", NAME_FORM, key="user_name")
    if answer["action"] != "accept":
        return Text(f"no name given ({answer['action']})")
    return Text(f"Hello, {answer.get('content', {}).get('name', 'stranger')}!")


@service.tool(read_only=True)
async def test_input_required_result_sampling(ctx: Context) -> Text:
    """Ask the client's model a question (sampling, key ``capital_question``); answer its reply."""
    reply = await ctx.sample("What is the capital of France?", max_tokens=100, key="capital_question")
    return Text(f"The model said: {_answer_text(reply)}")


@service.tool(read_only=True)
async def test_input_required_result_list_roots(ctx: Context) -> Text:
    """Ask for the client's roots (key ``client_roots``); list them."""
    roots = await ctx.list_roots(key="client_roots")
    return Text("roots: " + ", ".join(r["uri"] for r in roots))


@service.tool(read_only=True)
async def test_input_required_result_request_state(ctx: Context) -> Text:
    """Ask for a confirmation; the retry's sealed requestState is checked before it is used."""
    answer = await ctx.elicit("Proceed?", CONFIRM_FORM, key="confirm")
    return Text(f"state-ok: confirmation {answer['action']}")


@service.tool(read_only=True)
async def test_input_required_result_multiple_inputs(ctx: Context) -> Text:
    """Ask for a name, a model's greeting and the roots in one round (asyncio.gather)."""
    name, greeting, roots = await asyncio.gather(
        ctx.elicit("What is your name?", NAME_FORM, key="user_name"),
        ctx.sample("Say hello.", max_tokens=50, key="greeting"),
        ctx.list_roots(key="client_roots"),
    )
    who = name.get("content", {}).get("name", "stranger")
    return Text(f"{who}; {_answer_text(greeting)}; {len(roots)} root(s)")


@service.tool(read_only=True)
async def test_input_required_result_multi_round(ctx: Context) -> Text:
    """Two questions, each in its own round (keys ``step1`` then ``step2``)."""
    first = await ctx.elicit("Step 1: your name?", NAME_FORM, key="step1")
    second = await ctx.elicit("Step 2: your favourite colour?", key="step2")
    return Text(f"step1: {first.get('content')}, step2: {second.get('content')}")


@service.tool(read_only=True)
async def test_input_required_result_tampered_state(ctx: Context) -> Text:
    """Ask for a confirmation; a retry whose requestState was altered is refused with -32602."""
    answer = await ctx.elicit("Proceed?", CONFIRM_FORM, key="confirm")
    return Text(f"confirmed: {answer['action']}")


@service.tool(read_only=True)
async def test_input_required_result_capabilities(ctx: Context) -> Text:
    """Ask only for what the client declared: sampling and/or elicitation."""
    asks = []
    if ctx.supports("sampling"):
        asks.append(ctx.sample("Pick a number.", max_tokens=10, key="sampled"))
    if ctx.supports("elicitation"):
        asks.append(ctx.elicit("Pick a number.", key="elicited"))
    if not asks:
        return Text("the client declared neither sampling nor elicitation")
    answers = await asyncio.gather(*asks)
    return Text(f"{len(answers)} answer(s)")


@service.tool(read_only=True)
async def test_streaming_elicitation(ctx: Context) -> Text:
    """Ask for a confirmation: at 2026-07-28 the answer is an InputRequiredResult, never a request
    of the server's own on the response stream."""
    answer = await ctx.elicit("Confirm to continue", CONFIRM_FORM, key="confirm")
    return Text(f"confirmation: {answer['action']}")


# -- resources ------------------------------------------------------------------------------


@service.resource("test://static-text", name="static-text", mime_type="text/plain")
def static_text() -> str:
    """A fixed text resource."""
    return "This is the content of the static text resource."


@service.resource("test://static-binary", name="static-binary", mime_type="image/png")
def static_binary() -> bytes:
    """A fixed binary resource: the 1x1 red PNG."""
    return RED_PIXEL


@service.resource(
    "test://template/{id}/data",
    name="template-data",
    mime_type="application/json",
    complete={"id": ["123", "456", "789"]},
)
def template_data(id: str) -> dict[str, str]:
    """Data for one id, from a URI template."""
    return {"id": id, "templateTest": "true", "data": f"Data for ID: {id}"}


WATCHED = {"text": "version 0"}


@service.resource("test://watched-resource", name="watched-resource", mime_type="text/plain")
def watched_resource() -> str:
    """A resource that changes (``update_watched_resource``): legacy clients may subscribe to it."""
    return WATCHED["text"]


@service.tool()
def update_watched_resource(text: str) -> Text:
    """Change test://watched-resource; its subscribers hear of it (notifications/resources/updated).

    Args:
        text: the resource's new content
    """
    WATCHED["text"] = text
    service.resource_updated("test://watched-resource")
    return Text("updated test://watched-resource")


# -- prompts --------------------------------------------------------------------------------


@service.prompt()
def test_simple_prompt() -> str:
    """A prompt without arguments."""
    return "This is a simple prompt for testing."


@service.prompt(complete={"arg1": ["paris", "park", "party", "test", "testing"], "arg2": ["world", "word"]})
def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    """A prompt with two required arguments.

    Args:
        arg1: First test argument
        arg2: Second test argument
    """
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@service.prompt()
def test_prompt_with_embedded_resource(resourceUri: str) -> list[EmbeddedResource | str]:  # noqa: N803 - the suite's name
    """A prompt that embeds a resource.

    Args:
        resourceUri: URI of the resource to embed
    """
    return [
        EmbeddedResource(resourceUri, text="Embedded resource content for testing."),
        "Please process the embedded resource above.",
    ]


@service.prompt()
def test_prompt_with_image() -> list[Message]:
    """A prompt with an image."""
    return [Message("user", Image(RED_PIXEL, "image/png")), Message("user", "Please analyze the image above.")]


@service.prompt()
async def test_input_required_result_prompt(ctx: Context) -> str:
    """A prompt that first asks the user for context (elicitation, key ``user_context``)."""
    form = {"type": "object", "properties": {"context": {"type": "string"}}, "required": ["context"]}
    answer = await ctx.elicit("What should the prompt be about?", form, key="user_context")
    return f"Write about: {answer.get('content', {}).get('context', 'anything')}"


# -- tools: the tasks extension (io.modelcontextprotocol/tasks) -------------------------------
# A client that declares the extension gets a task to poll for these; others wait for the answer
# (task_support="optional") or are refused with -32021 (task_support="required").


@service.tool
def greet(name: str) -> Text:
    """Greet someone, in the request (never a task).

    Args:
        name: who to greet
    """
    return Text(f"Hello, {name}!")


@service.tool(read_only=True, task_support="optional", timeout=3600)
async def slow_compute(seconds: Annotated[float, Field(ge=0, le=3600)], label: str = "") -> Text:
    """Sleep ``seconds``, then answer: a long job that runs as a task when the client can poll.

    Args:
        seconds: how long the job takes
        label: a name for the job, echoed in the result
    """
    await asyncio.sleep(seconds)
    return Text(f"computed {label or 'job'} in {seconds:g} s")


@service.tool(read_only=True, task_support="required")
async def failing_job() -> Text:
    """Fail after about a second, as a tool error (the task completes with isError)."""
    await asyncio.sleep(1)
    raise RuntimeError("failing_job always fails")


@service.tool(read_only=True, task_support="optional")
async def protocol_error_job() -> Text:
    """Fail the request itself with a JSON-RPC error (the task ends as failed)."""
    await asyncio.sleep(0.1)
    raise RequestFailed(-32603, "protocol_error_job failed the request on purpose")


@service.tool(destructive=True, task_support="optional")
async def confirm_delete(filename: str, ctx: Context) -> Text:
    """Ask the user to confirm, then "delete" ``filename`` (nothing is deleted).

    Args:
        filename: the file to delete
    """
    answer = await ctx.elicit(f"Delete {filename}?", _CONFIRM)
    if answer.get("action") == "accept" and (answer.get("content") or {}).get("confirm"):
        return Text(f"deleted {filename}")
    return Text(f"kept {filename}")


@service.tool(read_only=True, task_support="optional")
async def multi_input(ctx: Context) -> Text:
    """Ask two questions at once; answer when both are answered."""
    first, second = await asyncio.gather(
        ctx.elicit("First question: go on?", _CONFIRM),
        ctx.elicit("Second question: go on?", _CONFIRM),
    )
    names = [(a.get("content") or {}).get("name", a.get("action")) for a in (first, second)]
    return Text(f"answers: {', '.join(map(str, names))}")


_CONFIRM = {
    "type": "object",
    "properties": {"confirm": {"type": "boolean"}, "name": {"type": "string"}},
    "required": ["confirm"],
}


@service.tool(read_only=True, task_support="required", defer_task=True)
async def test_tool_with_task(ctx: Context) -> Text:
    """Ask for a name in the call itself (multi-round-trip), then greet as a task."""
    form = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    answer = await ctx.elicit("What is your name?", form, key="user_name")
    await ctx.start_task()  # from here on the client polls
    await asyncio.sleep(0.1)
    return Text(f"Hello, {(answer.get('content') or {}).get('name', 'stranger')}!")
