"""A stand-in for the index's BM25, for retriever tests that need no index (fast)."""

from __future__ import annotations

import numpy as np


class RecordingBM25:
    """Scores each chunk by how many of the asked tokens it holds; remembers what was asked, last
    (``asked``) and in order (``calls``)."""

    def __init__(self, chunks: list[list[str]]) -> None:
        self.chunks = chunks
        self.asked: list[str] = []
        self.calls: list[list[str]] = []

    def get_scores(self, tokens: list[str]) -> np.ndarray:
        self.asked = tokens
        self.calls.append(tokens)
        return np.array([float(sum(t in c for t in tokens)) for c in self.chunks])
