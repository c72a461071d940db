"""Chunk retrievers behind one interface: each ranks chunks for a :class:`Query` with raw scores.

BM25 ranks by its score over the jieba-aware tokens, a dense retriever by the inner product of
normalised vectors (cosine). Later signals (exact matches, a reranker) are more of the same:
objects with a ``name`` and a ``rank`` method, fused by :func:`rag.fusion.rrf`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .dense import DenseIndex
from .glossary import Glossary
from .query import Query
from .store import Lexicon

BM25 = "bm25"
EXACT = "exact"


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
        return tuple(t for t in query.exact if self.lexicon.doc_freq.get(t, 0) <= limit)


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
