"""jd-classifier: the Johnny.Decimal structure as tools: browse it, find a category, place a document."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, Field

from devenv import Service

from .structure import Category, Structure, load_structure, term_counts, tokenize

service = Service(
    "jd-classifier",
    port=8101,
    settings=("JD_STRUCTURE_PATH",),
    instructions="Johnny.Decimal lookup: find a category by id, name or keyword and suggest where a file belongs.",
)

_JD_ID = re.compile(r"^(\d\d)(?:\.\d+)?$")  # "11" or a full JD number like "11.04"
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f\x7f]+")


class Suggestion(BaseModel):
    category: Category
    path: str = Field(description='Suggested vault path, e.g. "10-19 Finance/11 Tax/2024 tax return.pdf".')
    score: int = Field(description="Weighted keyword hits (title counts double); higher is more certain.")
    matched_keywords: list[str] = Field(description="The category keywords found in the title or content.")


def _ranked(structure: Structure, weighted: list[tuple[list[str], int]]) -> list[tuple[int, Category, list[str]]]:
    """Categories with at least one hit, best first; ties go to the lower id so results are stable."""
    ranked = []
    for category in structure.categories():
        score, matched = 0, []
        for tokens, weight in weighted:
            for keyword, count in term_counts(category, tokens).items():
                score += weight * count
                matched.append(keyword)
        if score:
            ranked.append((score, category, sorted(set(matched))))
    return sorted(ranked, key=lambda r: (-r[0], r[1].id))


def _file_name(title: str) -> str:
    # The title becomes one path segment: no separators or control characters, no hidden or "..".
    name = " ".join(_UNSAFE_NAME.sub("-", title).split()).lstrip(".- ")[:200]
    if not name:
        raise ValueError(f"title {title!r} leaves no usable file name")
    return name


@service.tool(read_only=True, cache_ttl=300)
def get_structure() -> Structure:
    """Return the whole Johnny.Decimal structure: every area with its categories and keywords."""
    return load_structure()


@service.tool(read_only=True, cache_ttl=300)
def find_category(query: Annotated[str, Field(min_length=1, max_length=200)]) -> Category:
    """Find the one category that best matches a query.

    Tries, in order: a category id ("11", or a full JD number like "11.04"), an exact
    label or name ("11 Tax", "tax"), then the category whose keywords and name words
    occur most often in the query. Fails when nothing matches.

    Args:
        query: A category id, label, name, or a few words describing the document.
    """
    structure = load_structure()
    text = query.strip()
    categories = structure.categories()
    if match := _JD_ID.match(text):
        for category in categories:
            if category.id == match[1]:
                return category
        raise LookupError(f"no category with id {match[1]!r}; ids are {', '.join(c.id for c in categories)}")
    folded = text.casefold()
    for category in categories:
        if folded in (category.label.casefold(), category.name.casefold()):
            return category
    ranked = _ranked(structure, [(tokenize(text), 1)])
    if not ranked:
        raise LookupError(f"no category matches {query!r}; try an id like '11', a name like 'Tax', or a keyword")
    return ranked[0][1]


@service.tool(read_only=True)
def suggest_location(
    title: Annotated[str, Field(min_length=1, max_length=500)],
    content: str = "",
) -> Suggestion:
    """Suggest the category and vault path for a document from its title and (optionally) its text.

    Keywords found in the title count double those found in the content. The path is
    "<area>/<category>/<title>", with the title made safe as a single file name.

    Args:
        title: The document's title or file name, e.g. "2024 tax return.pdf".
        content: The document's text, if available; improves the match.
    """
    name = _file_name(title)
    ranked = _ranked(load_structure(), [(tokenize(title), 2), (tokenize(content), 1)])
    if not ranked:
        raise LookupError(f"no category matches {title!r}; pick one with find_category and place it by hand")
    score, category, matched = ranked[0]
    return Suggestion(category=category, path=f"{category.path}/{name}", score=score, matched_keywords=matched)
