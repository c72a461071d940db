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
from .query import Query

BM25 = "bm25"


@dataclass(frozen=True)
class Ranking:
    """Chunk ids best first, with the retriever's raw score for each."""

    source: str
    ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


class Retriever(Protocol):
    name: str

    def rank(self, query: Query, n: int, allowed: np.ndarray | None = None) -> Ranking: ...


def _empty(name: str) -> Ranking:
    return Ranking(name, np.zeros(0, np.int64), np.zeros(0, np.float32))


class BM25Retriever:
    name = BM25

    def __init__(self, bm25: object | None) -> None:
        self.bm25 = bm25

    def rank(self, query: Query, n: int, allowed: np.ndarray | None = None) -> Ranking:
        if self.bm25 is None or not query.tokens:
            return _empty(self.name)
        scores = np.asarray(self.bm25.get_scores(list(query.tokens)), dtype=np.float32)  # type: ignore[attr-defined]
        if allowed is not None:
            scores = np.where(allowed, scores, -1.0)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return Ranking(self.name, top.astype(np.int64), scores[top])


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
