"""Hybrid retrieval: each retriever ranks chunks, rankings collapse to entries, RRF fuses them.

Fusing at entry level (an entry ranks where its best chunk ranks) keeps a long entry with many
chunks from crowding out short ones, and is what the user asked for: papers, not fragments.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import lexical
from .config import Config
from .embedding import get_embedder
from .index import Index
from .notes import Entry

BM25 = "bm25"
SNIPPET_CHARS = 220


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    entry: Entry
    snippet: str
    path: str  # the note's path as the user named the corpus (``corpus/001_….txt``)
    chunk_lines: tuple[int, int]  # the best chunk's own span, inside the entry's

    def to_json(self) -> dict:
        e = self.entry
        return {"rank": self.rank, "score": round(self.score, 4), "file": e.file, "path": self.path,
                "title": e.title, "line_start": e.line_start, "line_end": e.line_end,
                "url": e.url, "date": e.date, "snippet": self.snippet}


@dataclass(frozen=True)
class Filters:
    file_glob: str | None = None
    since: str | None = None  # ISO dates, inclusive
    until: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.file_glob or self.since or self.until)

    def allows(self, entry: Entry) -> bool:
        if self.file_glob and not (fnmatch.fnmatch(entry.file, self.file_glob)
                                   or fnmatch.fnmatch(os.path.basename(entry.file), self.file_glob)):
            return False
        if self.since or self.until:
            if entry.date is None:
                return False
            if self.since and entry.date < self.since:
                return False
            if self.until and entry.date > self.until:
                return False
        return True


def make_snippet(text: str, query_tokens: Sequence[str], width: int = SNIPPET_CHARS) -> str:
    """Plain text around the first query word the chunk contains (or its start)."""
    plain = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)  # images say nothing
    plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", plain)
    plain = re.sub(r"<br\s*/?>|[#*`>|]+", " ", plain)
    plain = re.sub(r"\s+", " ", plain).strip()
    lowered = plain.lower()
    positions = [p for t in query_tokens if len(t) > 1 and (p := lowered.find(t)) >= 0]
    start = 0
    if positions and min(positions) > width // 2:
        cut = min(positions) - width // 4
        boundary = max(plain.rfind(s, 0, cut) for s in "。！？；.!?;")
        start = boundary + 1 if boundary > 0 else cut
    snippet = plain[start:start + width].strip()
    return ("…" if start > 0 else "") + snippet + ("…" if start + width < len(plain) else "")


@lru_cache(maxsize=256)
def query_vector(spec: str, question: str) -> np.ndarray:
    """A question's embedding, shared by retrieval and the answer layer (one model call)."""
    return get_embedder(spec).embed_query(question)


class Retriever:
    """Searches one loaded index; models come from the shared cache, loaded once per process."""

    def __init__(self, index: Index, config: Config) -> None:
        self.index = index
        self.config = config
        self._entries = index.entry_by_id
        self._chunk_entry = [self._entries[c.entry_id] for c in index.chunks]

    @property
    def sources(self) -> tuple[str, ...]:
        """The retrievers this index can fuse: ``bm25`` and one per dense embedder."""
        return (BM25, *self.index.dense)

    def warm_up(self) -> None:
        """Load models and tokenizer now so the first real query is as fast as the rest."""
        self.search("warm up 预热", k=1)

    def _allowed(self, filters: Filters) -> np.ndarray | None:
        if not filters.active:
            return None
        return np.array([filters.allows(e) for e in self._chunk_entry], dtype=bool)

    def _rank_bm25(self, tokens: list[str], n: int, allowed: np.ndarray | None) -> list[int]:
        if self.index.bm25 is None or not tokens:
            return []
        scores = self.index.bm25.get_scores(tokens)
        if allowed is not None:
            scores = np.where(allowed, scores, -1.0)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [int(i) for i in top if scores[i] > 0]

    def _rank_dense(self, spec: str, question: str, n: int, allowed: np.ndarray | None) -> list[int]:
        import faiss

        index = self.index.dense[spec]
        if index.ntotal == 0:
            return []
        query = query_vector(spec, question).reshape(1, -1).astype(np.float32)
        params = None
        if allowed is not None:
            ids = np.flatnonzero(allowed).astype(np.int64)
            if not len(ids):
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(ids))
        _, idx = index.search(query, min(n, index.ntotal), params=params)
        return [int(i) for i in idx[0] if i >= 0]

    def search(self, question: str, k: int = 10, filters: Filters | None = None,
               sources: Sequence[str] | None = None) -> list[Hit]:
        """Top ``k`` entries for ``question``; ``sources`` picks retrievers (default: all)."""
        filters = filters or Filters()
        sources = tuple(sources or self.sources)
        allowed = self._allowed(filters)
        tokens = lexical.tokenize(question)
        n = max(self.config.candidates, k * 5)
        weights = {BM25: self.config.bm25_weight}
        rankings: dict[str, list[int]] = {}
        for source in sources:
            if source == BM25:
                rankings[source] = self._rank_bm25(tokens, n, allowed)
            elif source in self.index.dense:
                rankings[source] = self._rank_dense(source, question, n, allowed)
                weights[source] = self.config.dense_weight
            else:
                raise ValueError(f"unknown retriever {source!r}; this index has {', '.join(self.sources)}")

        rrf_k = self.config.rrf_k
        entry_score: dict[str, float] = {}
        chunk_score: dict[int, float] = {}
        for source, ranked in rankings.items():
            w = weights[source]
            seen: set[str] = set()
            for rank, ci in enumerate(ranked, start=1):
                chunk_score[ci] = chunk_score.get(ci, 0.0) + w / (rrf_k + rank)
                eid = self.index.chunks[ci].entry_id
                if eid not in seen:
                    seen.add(eid)
                    entry_score[eid] = entry_score.get(eid, 0.0) + w / (rrf_k + len(seen))
        best_chunk: dict[str, int] = {}
        for ci, score in chunk_score.items():
            eid = self.index.chunks[ci].entry_id
            if eid not in best_chunk or score > chunk_score[best_chunk[eid]]:
                best_chunk[eid] = ci
        ranked_entries = sorted(entry_score, key=lambda e: (-entry_score[e], e))[:k]
        hits = []
        for rank, eid in enumerate(ranked_entries, start=1):
            chunk = self.index.chunks[best_chunk[eid]]
            entry = self._entries[eid]
            hits.append(Hit(rank=rank, score=entry_score[eid], entry=entry,
                            snippet=make_snippet(chunk.text, tokens), path=self.note_path(entry.file),
                            chunk_lines=(chunk.line_start, chunk.line_end)))
        return hits

    def note_path(self, rel: str) -> str:
        return os.path.normpath(Path(self.config.corpus) / rel)
