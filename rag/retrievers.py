"""Chunk retrievers behind one interface: each ranks chunks for a :class:`Query` with raw scores.

BM25 ranks by its score over the jieba-aware tokens, a dense retriever by the inner product of
normalised vectors (cosine). Later signals (exact matches, a reranker) are more of the same:
objects with a ``name`` and a ``rank`` method, fused by :func:`rag.fusion.rrf`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .dense import DenseIndex
from .dictionary import Dictionary
from .glossary import Glossary
from .query import Query
from .store import Lexicon

BM25 = "bm25"
EXACT = "exact"
TRANSLATED = "translated"
_COMPOUND = re.compile(r"[-/]")


@dataclass(frozen=True)
class Ranking:
    """Chunk ids best first, with the retriever's raw score for each."""

    source: str
    ids: np.ndarray
    scores: np.ndarray


class Retriever(Protocol):
    name: str

    def rank(self, query: Query, n: int, allowed: np.ndarray | None = None) -> Ranking: ...


def _empty(name: str) -> Ranking:
    return Ranking(name, np.zeros(0, np.int64), np.zeros(0, np.float32))


class BM25Retriever:
    """BM25 over all the question's tokens, plus their glossary translations when given one."""

    name = BM25

    def __init__(self, bm25: object | None, glossary: Glossary | None = None) -> None:
        self.bm25 = bm25
        self.glossary = glossary

    def _tokens(self, query: Query) -> tuple[str, ...]:
        return query.tokens + self.glossary.expand(query.tokens) if self.glossary else query.tokens

    def rank(self, query: Query, n: int, allowed: np.ndarray | None = None) -> Ranking:
        tokens = self._tokens(query)
        if self.bm25 is None or not tokens:
            return _empty(self.name)
        scores = np.asarray(self.bm25.get_scores(list(tokens)), dtype=np.float32)  # type: ignore[attr-defined]
        if allowed is not None:
            scores = np.where(allowed, scores, -1.0)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return Ranking(self.name, top.astype(np.int64), scores[top])


class ExactRetriever(BM25Retriever):
    """BM25 over only what the question names exactly (80%, 5.8×, HySparse, 2601.16725).

    In the full BM25 ranking a number is one word among many; ranked on its own and fused, the
    entry that states it gets the push a question naming it deserves.
    """

    name = EXACT

    def __init__(self, bm25: object | None, lexicon: Lexicon, max_share: float = 1.0) -> None:
        super().__init__(bm25)
        self.lexicon = lexicon
        self.max_share = max_share

    def _tokens(self, query: Query) -> tuple[str, ...]:
        """The exact terms rare enough to single an entry out: "RL" or "LLM", in a tenth of the
        notes, would only push every entry that mentions them."""
        limit = self.max_share * self.lexicon.n_chunks
        return tuple(t for t in self._named(query.exact) if self.lexicon.doc_freq.get(t, 0) <= limit)

    def _named(self, terms: tuple[str, ...]) -> tuple[str, ...]:
        """The terms without the parts of a compound the notes write whole: "Self-Forcing" is
        searched as such, not also as "self" and "forcing" (which would push Self-Improving); a
        compound the notes only write apart ("KV Cache" for "KV-cache") keeps its parts."""
        whole = [t for t in terms if _COMPOUND.search(t) and self.lexicon.knows(t)]
        parts = {p for t in whole for p in _COMPOUND.split(t)}
        return tuple(t for t in terms if t in whole or t not in parts)


class TranslatedRetriever(BM25Retriever):
    """BM25 over the dictionary translations of the question's English words (rag.dictionary).

    Its own ranking rather than more BM25 tokens: translations are guesses, and fused by rank they
    can lift an entry that the question's own words miss without drowning the words that match.
    """

    name = TRANSLATED

    def __init__(self, bm25: object | None, lexicon: Lexicon, dictionary: Dictionary, per_phrase: int = 2) -> None:
        super().__init__(bm25)
        self.lexicon = lexicon
        self.dictionary = dictionary
        self.per_phrase = per_phrase

    def _tokens(self, query: Query) -> tuple[str, ...]:
        return self.dictionary.translate(query.text, self.lexicon.doc_freq, self.per_phrase)


class DenseRetriever:
    def __init__(self, name: str, index: DenseIndex) -> None:
        self.name = name
        self.index = index

    def rank(self, query: Query, n: int, allowed: np.ndarray | None = None) -> Ranking:
        vector = query.vectors.get(self.name)
        if vector is None or not self.index.size:
            return _empty(self.name)
        ids, scores = self.index.search(vector, n, allowed)
        return Ranking(self.name, ids, scores)
