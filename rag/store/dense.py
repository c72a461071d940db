"""Dense vector search behind one small interface: exact (a matrix) or approximate (FAISS HNSW).

Vectors live once: an exact index *is* its (memory-mapped) matrix; an HNSW index holds them in
FAISS and gives rows back with ``reconstruct``. The answer layer gets raw similarities of the
chunks it reads through :meth:`DenseIndex.vectors`, never by reaching into storage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class DenseIndex(ABC):
    dim: int

    @property
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, inner products) of the ``n`` best rows, best first; ``allowed`` masks rows."""

    @abstractmethod
    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored rows for ``ids`` (float32, normalised)."""


def _top(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.argsort(-scores[top], kind="stable")]
    top = top[np.isfinite(scores[top])]
    return top.astype(np.int64), scores[top].astype(np.float32)


class ExactDense(DenseIndex):
    """Brute-force inner product over a matrix (memory-mapped from disk, or from a database)."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix
        self.dim = int(matrix.shape[1]) if matrix.ndim == 2 else 0

    @property
    def size(self) -> int:
        return int(self.matrix.shape[0])

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if not self.size:
            return _top(np.zeros(0, np.float32), 0)
        scores = np.asarray(self.matrix @ query.astype(np.float32), dtype=np.float32)
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf)
        return _top(scores, n)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix[np.asarray(ids, dtype=np.int64)], dtype=np.float32)


class HnswDense(DenseIndex):
    """FAISS HNSW (approximate, fast at 100k+ chunks); ``ef_search`` trades speed for recall."""

    def __init__(self, index: object, ef_search: int = 256) -> None:
        self.index = index
        self.index.hnsw.efSearch = ef_search  # type: ignore[attr-defined]
        self.dim = int(self.index.d)  # type: ignore[attr-defined]

    @property
    def size(self) -> int:
        return int(self.index.ntotal)  # type: ignore[attr-defined]

    @classmethod
    def build(cls, vectors: np.ndarray, ef_search: int = 256) -> HnswDense:
        import faiss

        index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index, ef_search)

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        params = None
        if allowed is not None:
            ids = np.flatnonzero(allowed).astype(np.int64)
            if not len(ids):
                return _top(np.zeros(0, np.float32), 0)
            params = faiss.SearchParametersHNSW(sel=faiss.IDSelectorBatch(ids), efSearch=self.index.hnsw.efSearch)
        scores, idx = self.index.search(query.reshape(1, -1).astype(np.float32), min(n, self.size), params=params)
        keep = idx[0] >= 0
        return idx[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros((len(ids), self.dim), np.float32)
        for row, i in enumerate(ids):
            out[row] = self.index.reconstruct(int(i))
        return out
