"""Reciprocal rank fusion at entry level, on hand-made rankings (fast)."""

from __future__ import annotations

import numpy as np
import pytest

from rag.retrieve.fusion import rrf
from rag.retrieve.retrievers import Ranking


def ranking(source: str, ids: list[int], scores: list[float] | None = None) -> Ranking:
    return Ranking(source, np.array(ids, np.int64), np.array(scores or [1.0 / (i + 1) for i in range(len(ids))],
                                                              np.float32))


#: chunk → entry: chunks 0,1 belong to entry 0; 2 to entry 1; 3,4 to entry 2
CHUNK_ENTRY = np.array([0, 0, 1, 2, 2])


def test_entry_ranks_where_its_best_chunk_ranks() -> None:
    fused = rrf([ranking("bm25", [1, 0, 3, 2])], CHUNK_ENTRY, {"bm25": 1.0}, k=60)
    assert [f.entry for f in fused] == [0, 2, 1]
    assert [f.sources["bm25"].rank for f in fused] == [1, 2, 3]  # entry ranks, not chunk ranks
    assert fused[0].score == pytest.approx(1 / 61) and fused[1].score == pytest.approx(1 / 62)
    assert fused[0].sources["bm25"].chunk == 1 and fused[0].best_chunk == 1


def test_fusion_sums_weighted_reciprocal_ranks_and_keeps_raw_scores() -> None:
    fused = rrf([ranking("bm25", [2, 3], [7.5, 3.0]), ranking("e5", [3, 2], [0.9, 0.8])], CHUNK_ENTRY,
                {"bm25": 2.0, "e5": 1.0}, k=10)
    assert [f.entry for f in fused] == [1, 2]  # bm25 weighs double
    top = fused[0]
    assert top.score == pytest.approx(2 / 11 + 1 / 12)
    assert top.sources["bm25"].score == pytest.approx(7.5) and top.sources["e5"].score == pytest.approx(0.8)
    assert (top.sources["bm25"].rank, top.sources["e5"].rank) == (1, 2)


def test_ties_break_by_entry_order_and_empty_rankings_are_fine() -> None:
    fused = rrf([ranking("a", [3]), ranking("b", [2]), ranking("c", [])], CHUNK_ENTRY, {}, k=60)
    assert [f.entry for f in fused] == [1, 2]
    assert rrf([], CHUNK_ENTRY, {}, k=60) == []


def test_an_entry_missing_from_a_ranking_has_no_standing_there() -> None:
    fused = rrf([ranking("bm25", [0]), ranking("e5", [2, 0])], CHUNK_ENTRY, {}, k=60)
    by_entry = {f.entry: f for f in fused}
    assert set(by_entry[1].sources) == {"e5"} and set(by_entry[0].sources) == {"bm25", "e5"}
