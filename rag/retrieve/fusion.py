"""Reciprocal rank fusion of chunk rankings, at entry level.

An entry ranks, in each retriever, where its best chunk ranks there; fusing entries (not chunks)
keeps a long entry with many chunks from crowding out short ones, and is what the user asked for:
papers, not fragments. Each fused entry keeps its per-retriever rank and raw score, so later
stages (the coverage gate, a reranker, the eval report) can see why it ranked where it did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .retrievers import Ranking


@dataclass(frozen=True)
class SourceScore:
    """An entry's standing in one retriever: its rank among entries and its best chunk's raw score."""

    rank: int
    score: float
    chunk: int


@dataclass
class FusedEntry:
    entry: int  # index into the loaded index's entries
    score: float = 0.0
    best_chunk: int = -1
    sources: dict[str, SourceScore] = field(default_factory=dict)


def rrf(rankings: Sequence[Ranking], chunk_entry: np.ndarray, weights: Mapping[str, float],
        k: float) -> list[FusedEntry]:
    """Entries by Σ weight / (k + entry rank), best first; ties broken by entry order.

    The best chunk of an entry is the one with the highest chunk-level fused score.
    """
    fused: dict[int, FusedEntry] = {}
    chunk_score: dict[int, float] = {}
    for ranking in rankings:
        w = weights.get(ranking.source, 1.0)
        entry_rank = 0
        for rank, (ci, raw) in enumerate(zip(ranking.ids.tolist(), ranking.scores.tolist(), strict=True), start=1):
            chunk_score[ci] = chunk_score.get(ci, 0.0) + w / (k + rank)
            e = int(chunk_entry[ci])
            item = fused.setdefault(e, FusedEntry(e))
            if ranking.source not in item.sources:  # the entry's first (best) chunk in this ranking
                entry_rank += 1
                item.sources[ranking.source] = SourceScore(entry_rank, float(raw), ci)
                item.score += w / (k + entry_rank)
    for ci, score in chunk_score.items():
        item = fused[int(chunk_entry[ci])]
        if item.best_chunk < 0 or score > chunk_score[item.best_chunk]:
            item.best_chunk = ci
    return sorted(fused.values(), key=lambda f: (-f.score, f.entry))
