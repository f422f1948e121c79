"""The inbox agent end to end: classify, locate, move through file-system, notify.

Against a real stack every step is a service-to-service HTTP call made by the agent itself.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import unique


@pytest.mark.devenv_targets("inprocess", "local", "docker")  # the inbox and vault are host folders here
def test_process_inbox_moves_classified_files_and_skips_the_rest(client, vault, unsorted):
    tag = unique("inbox")
    (unsorted / f"{tag} tax.txt").write_text(
        "HMRC tax return for the tax year: VAT deduction summary and withholding.", encoding="utf-8"
    )
    (unsorted / f"{tag} bank.txt").write_text(
        "Bank statement for your savings account: transfer and interest rate details, IBAN.", encoding="utf-8"
    )
    (unsorted / f"{tag} empty.txt").write_text("", encoding="utf-8")

    report = client.call("inbox-agent/process_inbox")

    moved = {m["source"]: m for m in report["moved"]}
    assert moved[f"{tag} tax.txt"]["category"] == "11 Tax"
    assert moved[f"{tag} bank.txt"]["category"] == "12 Banking"
    for item in moved.values():
        assert (vault / item["destination"]).is_file()
        assert not (unsorted / item["source"]).exists()
    skipped = {s["file"]: s["reason"] for s in report["skipped"]}
    assert "empty" in skipped[f"{tag} empty.txt"]
    assert (unsorted / f"{tag} empty.txt").exists()  # skipped files stay where they were

    notes = client.call("notifications/list_notifications", {"limit": 5})
    assert report["notification_id"] in [n["id"] for n in notes]
