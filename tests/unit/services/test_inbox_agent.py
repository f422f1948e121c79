"""inbox-agent end to end: inbox files are classified, written into the vault, removed, and reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv import MCPClient, ToolError
from services.content_classifier.service import service as content_classifier
from services.file_system.service import service as file_system
from services.inbox_agent import service as inbox_module
from services.inbox_agent.service import service as inbox_agent
from services.jd_classifier.service import service as jd_classifier
from services.notifications.service import service as notifications

from .conftest import tree

INVOICE = "TAX INVOICE\nAcme Ltd, VAT reg GB 123 4567 89\nVAT 20%: 200.00\nTotal 1,200.00, payment due in 30 days.\n"
RECIPE = "Preheat the oven to 180C, mix the ingredients, add a tablespoon of honey and bake.\n"


def process(client: MCPClient | None = None):
    return (client or MCPClient()).call("inbox-agent/process_inbox", {})


def only(*services) -> MCPClient:
    """An in-process client that knows just these services (no discovery of the rest on disk)."""
    return MCPClient(services=list(services))


def notes():
    return MCPClient().call("notifications/list_notifications", {"limit": 10})


def test_end_to_end_in_process(vault, unsorted):
    (unsorted / "acme-invoice.txt").write_text(INVOICE, encoding="utf-8")
    (unsorted / "banana bread.md").write_text(RECIPE, encoding="utf-8")
    (unsorted / "empty.txt").write_bytes(b"")
    (unsorted / "blank.txt").write_text("  \n\t\n")
    (unsorted / "scan.pdf").write_bytes(b"%PDF-1.7\n\xe2\xe3\xcf\xd3\x00\x01")
    (unsorted / "latin1.txt").write_bytes("Steuererklärung".encode("latin-1"))
    (unsorted / "hello.txt").write_text("Hello there, nothing to see.")
    (unsorted / ".DS_Store").write_bytes(b"\x00\x01")
    (unsorted / "sub").mkdir()

    report = process()

    assert [(m["source"], m["destination"], m["category"]) for m in report["moved"]] == [
        ("acme-invoice.txt", "10-19 Finance/11 Tax/acme-invoice.txt", "11 Tax"),
        ("banana bread.md", "50-59 Personal/52 Recipes/banana bread.md", "52 Recipes"),
    ]
    assert all(0.15 <= m["score"] <= 1 for m in report["moved"])
    assert (vault / "10-19 Finance/11 Tax/acme-invoice.txt").read_text(encoding="utf-8") == INVOICE
    assert (vault / "50-59 Personal/52 Recipes/banana bread.md").read_text(encoding="utf-8") == RECIPE
    assert {s["file"]: s["reason"] for s in report["skipped"]} == {
        "blank.txt": "empty",
        "empty.txt": "empty",
        "hello.txt": "no category's keywords occur in it",
        "latin1.txt": "not UTF-8 text",
        "scan.pdf": "not text: contains NUL bytes",
        "sub": "is a folder; only files at the top of the inbox are processed",
    }
    # Moved files are gone from the inbox; skipped ones and hidden litter stay, untouched.
    assert sorted(p.name for p in unsorted.iterdir()) == [
        ".DS_Store",
        "blank.txt",
        "empty.txt",
        "hello.txt",
        "latin1.txt",
        "scan.pdf",
        "sub",
    ]
    [note] = notes()
    assert note["id"] == report["notification_id"]
    assert note["level"] == "warning"  # something was skipped
    assert note["message"].startswith("Inbox: 2 moved, 6 skipped.")
    assert "acme-invoice.txt -> 10-19 Finance/11 Tax/acme-invoice.txt" in note["message"]


def test_clean_run_notifies_at_info_and_an_empty_inbox_not_at_all(vault, unsorted):
    assert process() == {"moved": [], "skipped": [], "notification_id": None}
    assert notes() == []
    (unsorted / "invoice.txt").write_text(INVOICE)
    report = process()
    assert len(report["moved"]) == 1 and report["skipped"] == []
    assert [n["level"] for n in notes()] == ["info"]


def test_too_large_files_stay(vault, unsorted, monkeypatch):
    monkeypatch.setattr(inbox_module, "MAX_BYTES", 100)
    (unsorted / "big.txt").write_text(INVOICE * 3)
    report = process()
    assert report["skipped"] == [
        {"file": "big.txt", "reason": f"too large: {len(INVOICE) * 3} bytes, the limit is 100"}
    ]
    assert (unsorted / "big.txt").exists() and not vault.exists()


def test_weak_classifications_stay_below_the_threshold(vault, unsorted, monkeypatch):
    monkeypatch.setenv("INBOX_MIN_SCORE", "0.9")
    (unsorted / "invoice.txt").write_text(INVOICE)
    [skip] = process()["skipped"]
    assert skip["file"] == "invoice.txt"
    assert skip["reason"].startswith("best match 11 Tax scored 0.4") and skip["reason"].endswith(
        "below the threshold 0.90"
    )
    assert (unsorted / "invoice.txt").exists()


@pytest.mark.parametrize("value", ["high", "1.5"])
def test_a_bad_threshold_setting_fails_the_run(unsorted, monkeypatch, value):
    monkeypatch.setenv("INBOX_MIN_SCORE", value)
    with pytest.raises(ToolError) as info:
        process()
    assert info.value.error_type == "ConfigError" and "INBOX_MIN_SCORE" in info.value.message


def test_a_missing_inbox_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSORTED_ROOT", str(tmp_path / "nope"))
    with pytest.raises(ToolError) as info:
        process()
    assert info.value.error_type == "FileNotFoundError" and "nope" in info.value.message


def test_a_file_of_the_same_name_in_the_vault_is_never_overwritten(vault, unsorted):
    folder = vault / "10-19 Finance/11 Tax"
    folder.mkdir(parents=True)
    (folder / "invoice.txt").write_text("an older invoice")
    (folder / "invoice (2).txt").write_text("another one")
    (unsorted / "invoice.txt").write_text(INVOICE)
    [moved] = process()["moved"]
    assert moved["destination"] == "10-19 Finance/11 Tax/invoice (3).txt"
    assert (folder / "invoice.txt").read_text() == "an older invoice"
    assert (folder / "invoice (3).txt").read_text() == INVOICE


def test_a_rerun_after_a_crash_finishes_the_move_without_a_duplicate(vault, unsorted):
    # A previous run wrote the file but died before deleting the inbox copy.
    folder = vault / "10-19 Finance/11 Tax"
    folder.mkdir(parents=True)
    (folder / "invoice.txt").write_text(INVOICE)
    (unsorted / "invoice.txt").write_text(INVOICE)
    [moved] = process()["moved"]
    assert moved["destination"] == "10-19 Finance/11 Tax/invoice.txt"
    assert tree(vault) == {
        "10-19 Finance": None,
        "10-19 Finance/11 Tax": None,
        "10-19 Finance/11 Tax/invoice.txt": INVOICE.encode(),
    }
    assert not (unsorted / "invoice.txt").exists()


def test_a_failed_write_keeps_the_inbox_file(vault, unsorted, monkeypatch):
    (unsorted / "invoice.txt").write_text(INVOICE)
    (unsorted / "cake.md").write_text(RECIPE)
    # The agent's client can reach everything except file-system: every write fails.
    partial = only(jd_classifier, content_classifier, notifications, inbox_agent)
    monkeypatch.setattr(inbox_module, "_client", partial)
    report = process(partial)
    assert report["moved"] == []
    assert [s["file"] for s in report["skipped"]] == ["cake.md", "invoice.txt"]
    assert all("a service call failed" in s["reason"] and "file-system" in s["reason"] for s in report["skipped"])
    assert sorted(p.name for p in unsorted.iterdir()) == ["cake.md", "invoice.txt"]
    assert notes()[0]["id"] == report["notification_id"]


def test_a_lost_notification_does_not_lose_the_report(vault, unsorted, monkeypatch):
    (unsorted / "invoice.txt").write_text(INVOICE)
    no_notifications = only(jd_classifier, content_classifier, file_system, inbox_agent)
    monkeypatch.setattr(inbox_module, "_client", no_notifications)
    report = process(no_notifications)
    assert [m["source"] for m in report["moved"]] == ["invoice.txt"]
    assert report["notification_id"] is None
    assert (vault / "10-19 Finance/11 Tax/invoice.txt").exists()


def test_symlinks_in_the_inbox_are_not_followed(tmp_path, vault, unsorted):
    secret = tmp_path / "secret-invoice.txt"
    secret.write_text(INVOICE)
    (unsorted / "link.txt").symlink_to(secret)
    report = process()
    assert report["skipped"] == [{"file": "link.txt", "reason": "is a symlink; links are not followed"}]
    assert secret.exists() and not vault.exists()


def test_the_tool_is_documented_and_marked_destructive():
    tool = inbox_agent.tools["process_inbox"]
    assert tool.annotations == {"readOnlyHint": False, "idempotentHint": False, "destructiveHint": True}
    assert "$UNSORTED_ROOT" in tool.description and "skipped" in tool.description


def test_end_to_end_over_http(vault, unsorted, monkeypatch, serve_service):
    """K8S_MODE=true: every hop, the agent's own calls included, is MCP over real HTTP."""
    for service in (jd_classifier, content_classifier, file_system, notifications, inbox_agent):
        monkeypatch.setenv("DEVENV_URL_" + service.name.upper().replace("-", "_"), serve_service(service))
    monkeypatch.setenv("K8S_MODE", "true")
    (unsorted / "acme-invoice.txt").write_text(INVOICE)
    (unsorted / "empty.txt").write_text("")
    with MCPClient() as client:
        assert client.mode == "http"
        try:
            report = client.call("inbox-agent/process_inbox", {})
            listed = client.call("notifications/list_notifications", {"limit": 5})
        finally:
            if inbox_module._client is not None:
                inbox_module._client.close()
    assert inbox_module._client.mode == "http"  # the agent itself went over HTTP too
    assert [(m["source"], m["destination"]) for m in report["moved"]] == [
        ("acme-invoice.txt", "10-19 Finance/11 Tax/acme-invoice.txt")
    ]
    assert report["skipped"] == [{"file": "empty.txt", "reason": "empty"}]
    assert (vault / "10-19 Finance/11 Tax/acme-invoice.txt").read_text() == INVOICE
    assert sorted(p.name for p in unsorted.iterdir()) == ["empty.txt"]
    assert [n["id"] for n in listed] == [report["notification_id"]]


def test_a_same_named_folder_or_binary_in_the_vault_is_stepped_around(vault, unsorted):
    folder = vault / "10-19 Finance/11 Tax"
    (folder / "invoice.txt").mkdir(parents=True)
    (folder / "invoice (2).txt").write_bytes(b"\xff\xfe")
    (unsorted / "invoice.txt").write_text(INVOICE)
    [moved] = process()["moved"]
    assert moved["destination"] == "10-19 Finance/11 Tax/invoice (3).txt"
    assert (folder / "invoice (2).txt").read_bytes() == b"\xff\xfe"


def test_an_unreadable_file_is_skipped_not_fatal(vault, unsorted, monkeypatch):
    (unsorted / "locked.txt").write_text(INVOICE)
    (unsorted / "invoice.txt").write_text(INVOICE)
    real_read = Path.read_bytes

    def read_bytes(self):  # chmod 0 would not stop root, so refuse the read here
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    report = process()
    assert [m["source"] for m in report["moved"]] == ["invoice.txt"]
    assert report["skipped"] == [{"file": "locked.txt", "reason": "cannot be read: Permission denied"}]
    assert (unsorted / "locked.txt").exists()


def test_an_inbox_file_that_cannot_be_removed_is_reported_and_finished_next_run(vault, unsorted, monkeypatch):
    (unsorted / "invoice.txt").write_text(INVOICE)
    real_unlink = Path.unlink

    def refuse(self, *args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(Path, "unlink", refuse)
    [skip] = process()["skipped"]
    assert skip["reason"] == (
        "copied to '10-19 Finance/11 Tax/invoice.txt' but not removed from the inbox: Operation not permitted"
    )
    monkeypatch.setattr(Path, "unlink", real_unlink)
    [moved] = process()["moved"]
    assert moved["destination"] == "10-19 Finance/11 Tax/invoice.txt"  # no "invoice (2).txt"
    assert not (unsorted / "invoice.txt").exists()
