"""Similarity with the language taken half out, for choosing which sentences answer a question.

Both embedders put a Chinese question closer to every Chinese chunk than to any English one (and
the other way round), whatever the chunks say: in notes that mix the languages the offline answer
then quotes the entry written in the question's language, not the one that answers it. Subtracting
each language's mean vector from a vector, the chunk's and the question's, removes most of that
shared direction (language-specific centring, as used to make multilingual encoders more
language-neutral). Only half is taken out (:data:`CENTRE`, chosen on ``tune`` of five canned
collections, eval/README.md); ranking and the coverage gate keep the raw cosine they were
calibrated on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: How much of its language's mean vector leaves each vector.
CENTRE = 0.5


@dataclass(frozen=True)
class LanguageMeans:
    """One embedder's mean chunk vector per language, from a sample of the notes."""

    means: dict[str, np.ndarray]

    @classmethod
    def of(cls, vectors: np.ndarray, languages: Sequence[str]) -> LanguageMeans | None:
        """The means, or None when the sample holds one language only (nothing to take out)."""
        langs = np.asarray(languages)
        means = {lang: vectors[langs == lang].mean(axis=0) for lang in dict.fromkeys(languages)}
        return cls(means) if len(means) > 1 else None

    def similarity(self, chunks: np.ndarray, languages: Sequence[str], query: np.ndarray, language: str) -> np.ndarray:
        """Cosine of each chunk vector and the query, each with :data:`CENTRE` of its language's mean
        taken out; a language the sample lacks keeps its vector whole."""
        if not len(languages):
            return np.zeros(0, np.float32)
        zero = np.zeros_like(query)
        c = chunks - CENTRE * np.stack([self.means.get(lang, zero) for lang in languages])
        q = query - CENTRE * self.means.get(language, zero)
        norms = np.linalg.norm(c, axis=1) * float(np.linalg.norm(q))
        return np.divide(c @ q, norms, out=np.zeros(len(c), np.float32), where=norms > 0)
