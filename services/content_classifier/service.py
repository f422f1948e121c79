"""content-classifier: which Johnny.Decimal categories a text belongs to, ranked with scores."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from devenv import Service
from services.jd_classifier.structure import load_structure  # the same structure, without a network hop

from .scoring import score_text

service = Service(
    "content-classifier",
    port=8102,
    settings=("JD_STRUCTURE_PATH",),  # through jd_classifier.structure
    instructions="Classify text into Johnny.Decimal categories with deterministic keyword TF-IDF scores.",
)


class ScoredCategory(BaseModel):
    id: str = Field(description='Category id, e.g. "11".')
    name: str
    label: str = Field(description='Id and name, e.g. "11 Tax".')
    path: str = Field(description='Folder path in the vault, e.g. "10-19 Finance/11 Tax".')
    score: float = Field(ge=0, le=1, description="Cosine similarity of TF-IDF keyword vectors, 0..1.")
    matched_keywords: list[str] = Field(description="The category's terms found in the text.")


class Classification(BaseModel):
    categories: list[ScoredCategory] = Field(description="Best first; empty when no category's keywords occur.")


@service.tool(read_only=True, cache_ttl=300)
def classify(text: str, top_k: Annotated[int, Field(ge=1, le=20)] = 3) -> Classification:
    """Rank the Johnny.Decimal categories that best describe a text.

    Scoring is deterministic: each category's keywords are weighted by how distinctive
    they are (TF-IDF) and compared with the text by cosine similarity. Categories whose
    keywords do not occur in the text are left out, so the list can be shorter than
    top_k, or empty.

    Args:
        text: The document text to classify (plain text; include the title if there is one).
        top_k: How many categories to return, 1 to 20.
    """
    ranked = score_text(load_structure(), text)[:top_k]
    return Classification(
        categories=[
            ScoredCategory(id=c.id, name=c.name, label=c.label, path=c.path, score=score, matched_keywords=matched)
            for score, c, matched in ranked
        ]
    )
