"""The Johnny.Decimal structure: its models, the YAML loader, and the tokenizer matching uses.

Importable without the service so content-classifier scores against the same structure
without a network hop. The file is read lazily and kept until its mtime or size changes,
so a long-running service picks up edits without a restart.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "DEFAULT_PATH",
    "Area",
    "Category",
    "Structure",
    "StructureError",
    "load_structure",
    "structure_path",
    "term_counts",
    "tokenize",
]

DEFAULT_PATH = Path(__file__).with_name("jd.yaml")
_AREA_ID = re.compile(r"^([1-9])0-(?:\1)9$")  # "10-19" … "90-99"; 00-09 is JD's reserved system area
_CATEGORY_ID = re.compile(r"^\d\d$")


class StructureError(ValueError):
    """The structure file exists but is not a valid Johnny.Decimal structure."""


class Category(BaseModel):
    id: str = Field(description='Two-digit category id, e.g. "11".')
    name: str = Field(description='Category name, e.g. "Tax".')
    label: str = Field(description='Id and name, e.g. "11 Tax".')
    area: str = Field(description='The area label, e.g. "10-19 Finance".')
    path: str = Field(description='Folder path in the vault, e.g. "10-19 Finance/11 Tax".')
    keywords: list[str] = Field(description="Lower-case words and phrases typical of this category.")

    def terms(self) -> list[str]:
        """What matching looks for: the keywords plus the category name, without repeats.

        Repeats are judged after tokenizing, so the name "Meetings" and the keyword
        "meeting" count as one term rather than double-counting every hit.
        """
        seen: dict[tuple[str, ...], str] = {}
        for term in [*self.keywords, self.name.casefold()]:
            seen.setdefault(tuple(tokenize(term)), term)
        return [term for phrase, term in seen.items() if phrase]


class Area(BaseModel):
    id: str = Field(description='Area span, e.g. "10-19".')
    name: str
    label: str = Field(description='Span and name, e.g. "10-19 Finance".')
    categories: list[Category]


class Structure(BaseModel):
    areas: list[Area]

    def categories(self) -> list[Category]:
        return [category for area in self.areas for category in area.categories]


# -- the file's own shape: strict, so a typo in the YAML fails loudly instead of being ignored ---


class _CategorySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str = Field(min_length=1)
    keywords: list[str] = []

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: object) -> object:
        return f"{value:02d}" if isinstance(value, int) else value  # YAML reads 11 as an int

    @field_validator("keywords")
    @classmethod
    def _normalise_keywords(cls, value: list[str]) -> list[str]:
        return [k.strip().casefold() for k in value if k.strip()]


class _AreaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str = Field(min_length=1)
    categories: list[_CategorySpec]

    @model_validator(mode="after")
    def _check_ids(self) -> _AreaSpec:
        match = _AREA_ID.match(self.id)
        if not match:
            raise ValueError(f'area id {self.id!r} must be a span like "10-19"')
        for category in self.categories:
            if not _CATEGORY_ID.match(category.id) or category.id[0] != match[1]:
                raise ValueError(f"category id {category.id!r} is outside area {self.id}")
        return self


class _FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    areas: list[_AreaSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> _FileSpec:
        for kind, ids in (
            ("area", [a.id for a in self.areas]),
            ("category", [c.id for a in self.areas for c in a.categories]),
        ):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise ValueError(f"duplicate {kind} id(s): {', '.join(duplicates)}")
        return self


def _build(spec: _FileSpec) -> Structure:
    areas = []
    for area in spec.areas:
        area_label = f"{area.id} {area.name}"
        categories = [
            Category(
                id=c.id,
                name=c.name,
                label=f"{c.id} {c.name}",
                area=area_label,
                path=f"{area_label}/{c.id} {c.name}",
                keywords=c.keywords,
            )
            for c in area.categories
        ]
        areas.append(Area(id=area.id, name=area.name, label=area_label, categories=categories))
    return Structure(areas=areas)


def structure_path() -> Path:
    """``$JD_STRUCTURE_PATH``, read at call time so tests and deployments can point elsewhere."""
    return Path(os.environ.get("JD_STRUCTURE_PATH") or DEFAULT_PATH)


_lock = threading.Lock()
_loaded: dict[Path, tuple[tuple[int, int], Structure]] = {}


def load_structure(path: Path | str | None = None) -> Structure:
    """The structure at ``path`` (default: ``structure_path()``), parsed once per file version.

    Raises:
        FileNotFoundError: the file does not exist.
        StructureError: the file is not YAML or not a valid structure; names the file and the problem.
    """
    path = Path(path) if path is not None else structure_path()
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Johnny.Decimal structure file not found: {path} (set JD_STRUCTURE_PATH to a YAML file)"
        ) from None
    version = (stat.st_mtime_ns, stat.st_size)
    with _lock:
        cached = _loaded.get(path.absolute())
        if cached and cached[0] == version:
            return cached[1]
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise StructureError(f"{path} is not valid YAML: {exc}") from exc
    try:
        structure = _build(_FileSpec.model_validate(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise StructureError(f"{path} is not a valid Johnny.Decimal structure: {problems}") from exc
    with _lock:
        _loaded[path.absolute()] = (version, structure)
    return structure


_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")


def _stem(word: str) -> str:
    # Just enough folding that "invoices" meets "invoice" and "policies" meets "policy".
    if len(word) <= 3 or word.endswith("ss"):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("xes", "ches", "shes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased, lightly stemmed word tokens; keywords and documents go through the same path."""
    return [_stem(w) for w in _WORD.findall(text.casefold())]


def term_counts(category: Category, tokens: list[str]) -> Counter[str]:
    """How often each of the category's terms occurs in ``tokens`` as a whole phrase."""
    counts: Counter[str] = Counter()
    for term in category.terms():
        phrase = tokenize(term)
        n = len(phrase)
        count = sum(1 for i in range(len(tokens) - n + 1) if tokens[i : i + n] == phrase) if n else 0
        if count:
            counts[term] = count
    return counts
