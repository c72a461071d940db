"""Hybrid retrieval: a :class:`Query` → each retriever's chunk ranking → entry-level fusion → hits.

The result hands the answer layer everything it needs, so nothing downstream reaches back into
the index: per entry its fused score, its rank and raw score in each retriever, and the raw
similarity of each of its chunks to the question per embedder; per embedder how far the best
chunk stands out from the question's similarity to the notes as a whole; plus the lexicon's
rarity weights of the question's terms.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from rag.embed.models import Models
from rag.ingest.chunking import Chunk
from rag.ingest.notes import Entry
from rag.settings import RetrievalSettings
from rag.store import Lexicon, LoadedIndex
from rag.text import language, markdown_to_plain, written_language
from rag.text.dictionary import Dictionary

from .fields import FieldValues
from .fusion import SourceScore, rrf
from .glossary import Glossary
from .neutral import LanguageMeans
from .query import Query, make_query
from .retrievers import (
    BM25,
    EXACT,
    TRANSLATED,
    BM25Retriever,
    DenseRetriever,
    ExactRetriever,
    Ranking,
    Retriever,
    TranslatedRetriever,
)
from .why import Why, explain, question_terms

SNIPPET_CHARS = 220
#: Chunks whose similarity to a question stands for its similarity to all the notes (mean, spread).
BACKGROUND_SAMPLE = 2048


@dataclass(frozen=True)
class ChunkMatch:
    """One chunk of a hit's entry, with its raw similarity to the question per dense embedder, and
    the same with the language half taken out where the notes mix languages (:mod:`.neutral`)."""

    chunk: Chunk
    similarity: Mapping[str, float]
    neutral: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float  # fused
    entry: Entry
    snippet: str
    path: str  # the note's path as the user named the corpus (``corpus/001_….txt``)
    chunk_lines: tuple[int, int]  # the best chunk's own span, inside the entry's
    sources: Mapping[str, SourceScore] = field(default_factory=dict)
    chunks: tuple[ChunkMatch, ...] = ()
    why: Why = field(default_factory=Why)  # the retrievers' ranks and the exact terms matched (rag.retrieve.why)


@dataclass(frozen=True)
class RetrievalResult:
    query: Query
    hits: list[Hit]
    lexicon: Lexicon
    #: The English → Chinese dictionary, when the searcher has one: a name the notes write in
    #: Chinese (Xiaomi → 小米) is still a name they mention.
    dictionary: Dictionary | None = None
    #: Per embedder: the best chunk's similarity in standard deviations above the question's mean
    #: similarity to the notes. A question the notes cover has chunks that stand out; one they do
    #: not cover is about as close to everything (e5 gives 0.8–0.92 to almost any pair).
    standout: Mapping[str, float] = field(default_factory=dict)
    #: Embedders whose rankings the index does not have yet (a build is still embedding, or was
    #: stopped before it finished): the hits come from the other rankings alone.
    partial: tuple[str, ...] = ()

    def term_weights(self) -> dict[str, float]:
        """The question's distinct terms weighted by their rarity in the notes."""
        return {t: self.lexicon.weight(t) for t in self.query.terms}


@dataclass(frozen=True)
class Filters:
    file_glob: str | None = None
    since: str | None = None  # ISO dates, inclusive
    until: str | None = None
    tags: tuple[str, ...] = ()  # every one of them, lower-cased; "ml" also matches "ml/rl"

    @classmethod
    def parse(cls, file: str | None = None, since: str | None = None, until: str | None = None,
              tags: Sequence[str] | str | None = None) -> Filters:
        """Validated filters from user text (CLI flags, app fields); ValueError says what is wrong.

        ``tags`` are names with or without ``#``; one string may hold several, comma-separated."""
        dates = []
        for label, value in (("since", since), ("until", until)):
            value = (value or "").strip()
            if value:
                try:
                    value = date.fromisoformat(value).isoformat()
                except ValueError:
                    raise ValueError(f"{label} date {value!r} is not a date like 2026-02-07") from None
            dates.append(value or None)
        if dates[0] and dates[1] and dates[0] > dates[1]:
            raise ValueError(f"since {dates[0]} is after until {dates[1]}")
        wanted = [tags] if isinstance(tags, str) else list(tags or ())
        names = tuple(dict.fromkeys(t.strip().lstrip("#").strip().lower() for w in wanted for t in w.split(",")
                                    if t.strip().lstrip("#").strip()))
        if any(len(t) > 200 or any(c.isspace() for c in t) for t in names):
            raise ValueError("a tag is one word (no spaces), like retrieval or ml/rl")
        return cls(file_glob=(file or "").strip() or None, since=dates[0], until=dates[1], tags=names)

    @property
    def active(self) -> bool:
        return bool(self.file_glob or self.since or self.until or self.tags)

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
        if self.tags:
            have = {t.lower() for t in entry.tags}
            if not all(t in have or any(h.startswith(t + "/") for h in have) for t in self.tags):
                return False
        return True


def make_snippet(text: str, terms: Sequence[str], width: int = SNIPPET_CHARS) -> str:
    """Plain text around the first question term the chunk contains (or its start)."""
    plain = markdown_to_plain(text)
    lowered = plain.lower()
    positions = [p for t in terms if len(t) > 1 and (p := lowered.find(t)) >= 0]
    start = 0
    if positions and min(positions) > width // 2:
        cut = min(positions) - width // 4
        boundary = max(plain.rfind(s, 0, cut) for s in "。！？；.!?;")
        start = boundary + 1 if boundary > 0 else cut
    snippet = plain[start:start + width].strip()
    return ("…" if start > 0 else "") + snippet + ("…" if start + width < len(plain) else "")


class Searcher:
    """Searches one loaded index with its retrievers; models come from the owner's :class:`Models`.

    An index whose build has not embedded everything yet is searched with the rankings it has
    (BM25 and exact terms at least); its results say which embedders are missing (``partial``)."""

    def __init__(self, index: LoadedIndex, settings: RetrievalSettings, corpus: Path,
                 models: Models | None = None, extra: Sequence[Retriever] = ()) -> None:
        self.index = index
        self.settings = settings
        self.corpus = corpus
        self.models = models
        glossary = Glossary.mine(e.text for e in index.entries) if settings.glossary else None
        self.retrievers: dict[str, Retriever] = {BM25: BM25Retriever(index.bm25, glossary)}
        self.partial = tuple(index.manifest.pending)
        for name, dense in index.dense.items():
            self.retrievers[name] = DenseRetriever(name, dense)
        self.dictionary = models.dictionary() if models is not None else None
        self.fields = FieldValues([e.properties for e in index.entries])
        if settings.exact_weight > 0:
            not_section = np.array([e.kind != "section" for e in index.entries], dtype=bool)
            self.retrievers[EXACT] = ExactRetriever(index.bm25, index.lexicon, settings.exact_max_share,
                                                    self.dictionary, not_section[index.chunk_entry],
                                                    [e.title for e in index.entries], index.chunk_entry,
                                                    self.fields)
        if settings.translate_weight > 0 and self.dictionary is not None:
            self.retrievers[TRANSLATED] = TranslatedRetriever(index.bm25, index.lexicon, self.dictionary)
        for retriever in extra:
            self.retrievers[retriever.name] = retriever
        n = len(index.chunks)
        sample = np.sort(np.random.default_rng(0).choice(n, min(n, BACKGROUND_SAMPLE), replace=False))
        self._background = {name: dense.vectors(sample) for name, dense in index.dense.items() if n}
        languages = [written_language(index.chunks[i].text) for i in sample.tolist()] if self._background else []
        self._language_means = {name: means for name, vectors in self._background.items()
                                if (means := LanguageMeans.of(vectors, languages)) is not None}

    @property
    def sources(self) -> tuple[str, ...]:
        """The retrievers this index can fuse: ``bm25``, one per dense embedder, and any extra."""
        return tuple(self.retrievers)

    def query(self, text: str, sources: Sequence[str] | None = None) -> Query:
        """The question prepared for ``sources`` (default all): embedded only where a retriever needs it."""
        wanted = [s for s in (sources or self.sources) if s in self.index.dense]
        return make_query(text, self.models, wanted)

    def warm_up(self) -> None:
        """Load models and the tokenizer now so the first real query is as fast as the rest."""
        self.search("warm up 预热", k=1)

    def _allowed(self, filters: Filters) -> np.ndarray | None:
        if not filters.active:
            return None
        entry_ok = np.array([filters.allows(e) for e in self.index.entries], dtype=bool)
        return entry_ok[self.index.chunk_entry] if len(self.index.chunks) else entry_ok[:0]

    def search(self, question: str | Query, k: int | None = None, filters: Filters | None = None,
               sources: Sequence[str] | None = None) -> RetrievalResult:
        """Top ``k`` entries; ``sources`` picks retrievers (default: all)."""
        sources = tuple(sources or self.sources)
        unknown = [s for s in sources if s not in self.retrievers]
        if unknown:
            raise ValueError(f"unknown retriever {unknown[0]!r}; this index has {', '.join(self.sources)}")
        query = question if isinstance(question, Query) else self.query(question, sources)
        k = k or self.settings.k
        allowed = self._allowed(filters or Filters())
        n = max(self.settings.candidates, k * 5)
        rankings = [self.retrievers[s].rank(query, n, allowed) for s in sources]
        standout = self._standout(rankings, query)
        fused = rrf(rankings, self.index.chunk_entry, self._weights(sources), self.settings.rrf_k)
        fused = fused[:k]
        entries = [self.index.entries[item.entry] for item in fused]
        matches = self._chunk_matches(entries, query)
        terms = question_terms(query)
        values = self.fields.matches(query.text, query.tokens)
        hits = []
        for rank, (item, entry, chunks) in enumerate(zip(fused, entries, matches, strict=True), start=1):
            best = self.index.chunks[item.best_chunk]
            hits.append(Hit(rank=rank, score=item.score, entry=entry,
                            snippet=make_snippet(best.text, query.terms), path=self.note_path(entry.file),
                            chunk_lines=(best.line_start, best.line_end), sources=item.sources, chunks=chunks,
                            why=explain(item.sources, entry, terms, values.get(item.entry, {}))))
        return RetrievalResult(query, hits, self.index.lexicon, self.dictionary, standout, self.partial)

    def _standout(self, rankings: Sequence[Ranking], query: Query) -> dict[str, float]:
        """Each dense ranking's best score as a z-score against the question's similarity to a
        fixed sample of the notes (all of them up to BACKGROUND_SAMPLE chunks)."""
        out = {}
        for ranking in rankings:
            background, vector = self._background.get(ranking.source), query.vectors.get(ranking.source)
            if background is None or vector is None or not len(ranking.scores):
                continue
            sims = background @ vector
            spread = float(sims.std())
            if spread > 0:
                out[ranking.source] = (float(ranking.scores[0]) - float(sims.mean())) / spread
        return out

    def _weights(self, sources: Sequence[str]) -> dict[str, float]:
        special = {BM25: self.settings.bm25_weight, EXACT: self.settings.exact_weight,
                   TRANSLATED: self.settings.translate_weight}
        return {s: special.get(s, self.settings.dense_weight) for s in sources}

    def _chunk_matches(self, entries: Sequence[Entry], query: Query) -> list[tuple[ChunkMatch, ...]]:
        """Every chunk of each entry with its similarity per embedder: one vector read per embedder
        for all the hits (a database store answers it in one round trip, not one per hit)."""
        per_entry = [self.index.entry_chunks.get(e.id, []) for e in entries]
        ids = np.array([ci for chunk_ids in per_entry for ci in chunk_ids], dtype=np.int64)
        languages = [written_language(self.index.chunks[ci].text) for ci in ids.tolist()]
        asked = language(query.text)
        sims: dict[str, dict[int, float]] = {}
        neutral: dict[str, dict[int, float]] = {}
        for name, vec in query.vectors.items():
            if name not in self.index.dense or not len(ids):
                continue
            vectors = self.index.dense[name].vectors(ids)
            sims[name] = dict(zip(ids.tolist(), (vectors @ vec).tolist(), strict=True))
            if means := self._language_means.get(name):
                centred = means.similarity(vectors, languages, vec, asked)
                neutral[name] = dict(zip(ids.tolist(), centred.tolist(), strict=True))
        return [tuple(ChunkMatch(self.index.chunks[ci], {name: s[ci] for name, s in sims.items()},
                                 {name: s[ci] for name, s in neutral.items()}) for ci in chunk_ids)
                for chunk_ids in per_entry]

    def note_path(self, rel: str) -> str:
        return os.path.normpath(Path(self.corpus) / rel)
