"""TF-IDF cosine scoring of a text against each category's keywords.

Deterministic and dependency-free: the vocabulary is the structure's own terms, so a
term shared by several categories (low idf) counts for less than a distinctive one,
and a text whose terms spread over many categories scores lower for each of them.
"""

from __future__ import annotations

import math
from collections import Counter

from services.jd_classifier.structure import Category, Structure, term_counts, tokenize

__all__ = ["score_text"]


def _idf(structure: Structure) -> dict[str, float]:
    categories = structure.categories()
    df = Counter(term for category in categories for term in category.terms())
    return {term: math.log(1 + len(categories) / n) for term, n in df.items()}


def score_text(structure: Structure, text: str) -> list[tuple[float, Category, list[str]]]:
    """``(score in 0..1, category, matched terms)`` for every category that matches, best first."""
    idf = _idf(structure)
    tokens = tokenize(text)
    counts = {c.id: term_counts(c, tokens) for c in structure.categories()}
    # The document vector: sublinear tf times idf, over every term found in the text.
    doc: dict[str, float] = {}
    for found in counts.values():
        for term, tf in found.items():
            doc[term] = (1 + math.log(tf)) * idf[term]
    doc_norm = math.sqrt(sum(w * w for w in doc.values()))
    ranked = []
    for category in structure.categories():
        found = counts[category.id]
        if not found:
            continue
        category_norm = math.sqrt(sum(idf[t] ** 2 for t in category.terms()))
        dot = sum(doc[t] * idf[t] for t in found)
        ranked.append((round(dot / (doc_norm * category_norm), 4), category, sorted(found)))
    return sorted(ranked, key=lambda r: (-r[0], r[1].id))
