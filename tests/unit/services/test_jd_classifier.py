"""jd-classifier: the shipped structure, lookups, placement, and a structure file that is missing or wrong."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from devenv import InvalidArguments, ToolError
from services.jd_classifier.service import service
from services.jd_classifier.structure import StructureError, load_structure, tokenize

CUSTOM = """
areas:
  - id: "70-79"
    name: Hobbies
    categories:
      - id: 71
        name: Photography
        keywords: [camera, lens, aperture]
      - id: "72"
        name: Music
        keywords: [guitar, chord]
"""


def run(tool: str, **arguments):
    return service.tools[tool].run(arguments)


def write_structure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "jd.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("JD_STRUCTURE_PATH", str(path))
    return path


# -- the shipped sample -----------------------------------------------------------------------


def test_sample_structure_is_well_formed():
    structure = run("get_structure")
    assert len(structure["areas"]) == 5
    ids = []
    for area in structure["areas"]:
        assert re.fullmatch(r"\d0-\d9", area["id"])
        assert 3 <= len(area["categories"]) <= 5
        for category in area["categories"]:
            assert category["id"][0] == area["id"][0]  # inside the area's span
            assert category["path"] == f"{area['id']} {area['name']}/{category['id']} {category['name']}"
            assert len(category["keywords"]) >= 3
            ids.append(category["id"])
    assert len(ids) == len(set(ids))


def test_tool_descriptions_come_from_the_docstrings():
    find = service.tools["find_category"].definition()
    assert find["description"].startswith("Find the one category")
    assert "category id" in find["inputSchema"]["properties"]["query"]["description"]
    suggest = service.tools["suggest_location"].definition()
    assert set(suggest["inputSchema"]["properties"]) == {"title", "content"}
    assert all(p["description"] for p in suggest["inputSchema"]["properties"].values())
    assert find["annotations"]["readOnlyHint"] is True


# -- find_category ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "label"),
    [
        ("11", "11 Tax"),
        ("11.04", "11 Tax"),  # a full JD number names its category
        ("11 Tax", "11 Tax"),
        ("  TAX ", "11 Tax"),
        ("banking", "12 Banking"),
        ("bank statement", "12 Banking"),
        ("my dentist says two fillings", "22 Dental"),
        ("boarding passes", "51 Travel"),  # plural folds onto the keyword
    ],
)
def test_find_category(query, label):
    assert run("find_category", query=query)["label"] == label


def test_find_category_returns_the_full_category():
    category = run("find_category", query="32")
    assert category == {
        "id": "32",
        "name": "Utilities",
        "label": "32 Utilities",
        "area": "30-39 Home",
        "path": "30-39 Home/32 Utilities",
        "keywords": ["electricity", "gas", "water", "broadband", "utility", "meter reading", "energy"],
    }


@pytest.mark.parametrize("query", ["quantum chromodynamics", "99", "zz"])
def test_find_category_unknown_query_is_a_lookup_error(query):
    with pytest.raises(ToolError) as info:
        run("find_category", query=query)
    assert info.value.error_type == "LookupError"
    assert repr(query) in info.value.message


def test_find_category_rejects_an_empty_query():
    with pytest.raises(InvalidArguments) as info:
        run("find_category", query="")
    assert info.value.fields == ["query"]


# -- suggest_location -------------------------------------------------------------------------


def test_suggest_location_from_the_title():
    suggestion = run("suggest_location", title="2024 tax return.pdf")
    assert suggestion["category"]["label"] == "11 Tax"
    assert suggestion["path"] == "10-19 Finance/11 Tax/2024 tax return.pdf"
    assert set(suggestion["matched_keywords"]) >= {"tax", "tax return"}


def test_suggest_location_uses_the_content_when_the_title_says_nothing():
    suggestion = run("suggest_location", title="scan_0042", content="Your boarding pass for flight BA117.")
    assert suggestion["path"] == "50-59 Personal/51 Travel/scan_0042"


def test_suggest_location_title_outweighs_content():
    suggestion = run("suggest_location", title="Gym plan", content="invoice")
    assert suggestion["category"]["label"] == "23 Fitness"  # title hit x2 beats one content hit


def test_suggest_location_makes_the_title_one_safe_file_name():
    suggestion = run("suggest_location", title="../../etc/tax\\return\x01 2024")
    assert suggestion["path"] == "10-19 Finance/11 Tax/etc-tax-return- 2024"


def test_suggest_location_without_any_match_is_a_lookup_error():
    with pytest.raises(ToolError) as info:
        run("suggest_location", title="untitled", content="lorem ipsum")
    assert info.value.error_type == "LookupError"


def test_suggest_location_rejects_a_title_with_no_usable_name():
    with pytest.raises(ToolError) as info:
        run("suggest_location", title="..", content="tax")
    assert info.value.error_type == "ValueError"


# -- the structure file -----------------------------------------------------------------------


def test_structure_comes_from_jd_structure_path(tmp_path, monkeypatch):
    write_structure(tmp_path, monkeypatch, CUSTOM)
    assert run("find_category", query="guitar")["path"] == "70-79 Hobbies/72 Music"
    assert run("find_category", query="71")["label"] == "71 Photography"  # unquoted YAML id


def test_structure_is_loaded_once_and_reloaded_when_the_file_changes(tmp_path, monkeypatch):
    path = write_structure(tmp_path, monkeypatch, CUSTOM)
    first = load_structure()
    assert load_structure() is first
    path.write_text(CUSTOM.replace("Music", "Songs"), encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-clock filesystems
    assert [c.name for c in load_structure().categories()] == ["Photography", "Songs"]


def test_missing_structure_file_names_the_path_and_the_variable(tmp_path, monkeypatch):
    missing = tmp_path / "nope.yaml"
    monkeypatch.setenv("JD_STRUCTURE_PATH", str(missing))
    with pytest.raises(ToolError) as info:
        run("find_category", query="11")
    assert info.value.error_type == "FileNotFoundError"
    assert str(missing) in info.value.message and "JD_STRUCTURE_PATH" in info.value.message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("areas: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "valid Johnny.Decimal structure"),
        ("areas: []\n", "areas"),
        (CUSTOM.replace("id: 71", "id: 81"), "outside area 70-79"),
        (CUSTOM.replace('"72"', '"71"'), "duplicate category id(s): 71"),
        (CUSTOM.replace('"70-79"', '"70-80"'), "must be a span"),
        (CUSTOM.replace("keywords: [guitar, chord]", "keywords: [guitar]\n        colour: red"), "colour"),
    ],
)
def test_malformed_structure_is_a_clear_error(tmp_path, monkeypatch, text, problem):
    path = write_structure(tmp_path, monkeypatch, text)
    with pytest.raises(StructureError) as info:
        load_structure()
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_tokenize_folds_case_and_plurals_the_same_way_for_keywords_and_text():
    assert tokenize("Invoices, POLICIES and taxes; W-2 boxes") == ["invoice", "policy", "and", "tax", "w-2", "box"]
