"""The same scenarios in-process and against real servers: results and errors must not differ."""

from __future__ import annotations

import pytest

from devenv import InvalidArguments, ServiceNotFound, ToolError, ToolNotFound
from tests.integration.conftest import unique


def test_jd_structure_and_lookup(client):
    structure = client.call("jd-classifier/get_structure")
    area_names = [area["name"] for area in structure["areas"]]
    assert "Finance" in area_names
    tax = client.call("jd-classifier/find_category", {"query": "tax"})
    assert (tax["id"], tax["name"]) == ("11", "Tax")
    assert client.call("jd-classifier/find_category", {"query": "11"}) == tax


def test_suggest_location_builds_a_vault_path(client):
    suggestion = client.call(
        "jd-classifier/suggest_location", {"title": "2024 tax return", "content": "HMRC self assessment, tax year"}
    )
    assert suggestion["category"]["id"] == "11"
    assert suggestion["path"].startswith("10-19 Finance/11 Tax/")


def test_classify_ranks_categories_deterministically(client):
    text = "Tax invoice: VAT 20% on consulting, for your tax return this tax year."
    first = client.call("content-classifier/classify", {"text": text, "top_k": 3})
    assert first["categories"][0]["label"] == "11 Tax"
    assert len(first["categories"]) <= 3
    scores = [c["score"] for c in first["categories"]]
    assert scores == sorted(scores, reverse=True)
    assert client.call("content-classifier/classify", {"text": text, "top_k": 3}) == first


# Tests that look into the vault or the inbox on this machine's disk: in a cluster those are volumes.
ON_HOST_DISK = pytest.mark.devenv_targets("inprocess", "local", "docker")


@ON_HOST_DISK
def test_file_system_round_trip(client, vault):
    folder = unique("parity")
    written = client.call("file-system/write_file", {"path": f"{folder}/a.txt", "content": "hello ✓"})
    assert written["path"] == f"{folder}/a.txt"
    assert client.call("file-system/read_file", {"path": f"{folder}/a.txt"})["content"] == "hello ✓"
    moved = client.call("file-system/move_file", {"src": f"{folder}/a.txt", "dst": f"{folder}/b.txt"})
    assert moved == {"src": f"{folder}/a.txt", "dst": f"{folder}/b.txt"}
    names = [e["name"] for e in client.call("file-system/list_files", {"path": folder})["entries"]]
    assert names == ["b.txt"]
    assert (vault / folder / "b.txt").read_text() == "hello ✓"  # it really is on disk


@ON_HOST_DISK
@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a/../../b", "nul\x00byte"])
def test_paths_escaping_the_vault_are_tool_errors(client, vault, path):
    with pytest.raises(ToolError) as exc:
        client.call("file-system/write_file", {"path": path, "content": "x"})
    assert exc.value.tool == "write_file"
    assert not (vault.parent / "escape.txt").exists()


def test_notifications_newest_first(client):
    marker = unique("note")
    for n in range(3):
        client.call("notifications/notify", {"message": f"{marker} {n}", "level": "warning"})
    latest = client.call("notifications/list_notifications", {"limit": 3})
    assert [n["message"] for n in latest] == [f"{marker} 2", f"{marker} 1", f"{marker} 0"]
    assert {n["level"] for n in latest} == {"warning"}


def test_invalid_arguments_name_the_fields(client):
    with pytest.raises(InvalidArguments) as exc:
        client.call("content-classifier/classify", {"text": 42, "top_k": 99, "verbose": True})
    assert sorted(exc.value.fields) == ["text", "top_k", "verbose"]


def test_a_tool_failure_is_a_tool_error_with_its_type(client):
    with pytest.raises(ToolError) as exc:
        client.call("jd-classifier/find_category", {"query": "zzz-no-such-thing"})
    assert exc.value.error_type == "LookupError"
    assert exc.value.traceback is None


def test_unknown_tool(client):
    with pytest.raises(ToolNotFound) as exc:
        client.call("jd-classifier/find_categroy", {"query": "tax"})
    assert "find_category" in exc.value.known


def test_unknown_service(client):
    with pytest.raises(ServiceNotFound) as exc:
        client.call("jd-clasifier/find_category", {"query": "tax"})
    assert "jd-classifier" in exc.value.known


def test_list_tools_is_the_same_everywhere(client):
    tools = {t["name"]: t for t in client.list_tools("file-system")}
    assert sorted(tools) == ["list_files", "move_file", "read_file", "write_file"]
    assert tools["read_file"]["annotations"]["readOnlyHint"] is True
    assert tools["move_file"]["annotations"]["destructiveHint"] is True


async def test_async_calls(client):
    result = await client.acall("jd-classifier/find_category", {"query": "bank"})
    assert result["name"] == "Banking"
