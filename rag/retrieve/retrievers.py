"""Chunk retrievers behind one interface: each ranks chunks for a :class:`Query` with raw scores.

BM25 ranks by its score over the jieba-aware tokens, a dense retriever by the inner product of
normalised vectors (cosine). Later signals (exact matches, a reranker) are more of the same:
objects with a ``name`` and a ``rank`` method, fused by :func:`rag.retrieve.fusion.rrf`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from rag.ingest.markup import title_head
from rag.store import Lexicon
from rag.store.bm25 import Bm25
from rag.store.dense import DenseIndex
from rag.text import lexical
from rag.text.dictionary import Dictionary

from .fields import FieldValues
from .glossary import Glossary
from .names import ACRONYM
from .query import Query

BM25 = "bm25"
EXACT = "exact"
TRANSLATED = "translated"
_COMPOUND = re.compile(r"[-/]")
_WORDS = re.compile(r"[\s-]+")
MAX_ACRONYM = 6  # letters of the longest acronym a title's words are read for


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

    def __init__(self, bm25: Bm25 | None, glossary: Glossary | None = None) -> None:
        self.bm25 = bm25
        self.glossary = glossary

    def _tokens(self, query: Query) -> tuple[str, ...]:
        return query.tokens + self.glossary.expand(query.tokens) if self.glossary else query.tokens

    def _scores(self, query: Query) -> np.ndarray | None:
        """BM25 of every chunk for the question's tokens; None when there is nothing to search."""
        tokens = self._tokens(query)
        if self.bm25 is None or not tokens:
            return None
        return self._bm25(tokens)

    def _bm25(self, tokens: tuple[str, ...]) -> np.ndarray:
        return np.asarray(self.bm25.get_scores(list(tokens)), dtype=np.float32)

    def rank(self, query: Query, n: int, allowed: np.ndarray | None = None) -> Ranking:
        scores = self._scores(query)
        if scores is None:
            return _empty(self.name)
        if allowed is not None:
            scores = np.where(allowed, scores, -1.0)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return Ranking(self.name, top.astype(np.int64), scores[top])


class ExactRetriever(BM25Retriever):
    """BM25 over only what the question names exactly (80%, 5.8×, HySparse, 2601.16725) and by
    name (the Google paper, 小米 for Xiaomi, 阿里).

    In the full BM25 ranking a number or a lab is one word among many; ranked on its own and fused,
    the entry that states it gets the push a question naming it deserves. A name too common to
    rank on its own ("DeepSeek") still orders the chunks a rarer term found. Section entries (a
    note's intro) are not ranked: the name they hold is the report's ("Hugging Face Daily Papers
    Report"), which says where to look, not which entry answers.
    """

    name = EXACT

    def __init__(self, bm25: Bm25 | None, lexicon: Lexicon, max_share: float = 1.0,
                 dictionary: Dictionary | None = None, eligible: np.ndarray | None = None,
                 titles: Sequence[str] = (), chunk_entry: np.ndarray | None = None,
                 fields: FieldValues | None = None) -> None:
        super().__init__(bm25)
        self.fields = fields  # the entries' field values: "NeurIPS 2023" asked, the venue:: that says it
        self.lexicon = lexicon
        self.max_share = max_share
        self.dictionary = dictionary
        self.eligible = eligible  # chunks it may rank (bool per chunk); None: all
        self.titles = titles  # each entry's, and each chunk's entry: a title whose head spells out "DPO"
        self.chunk_entry = chunk_entry

    def _terms(self, query: Query) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The exact terms rare enough to single an entry out, and the common ones: "RL" or
        "DeepSeek", in a tenth of the notes, would push every entry that mentions them, so they
        only order the chunks a rare term found."""
        limit = self.max_share * self.lexicon.n_chunks
        terms = dict.fromkeys(query.exact + self._name_tokens(query))
        rare = tuple(t for t in terms if self.lexicon.doc_freq.get(t, 0) <= limit)
        return rare, tuple(t for t in terms if t not in rare)

    def _name_tokens(self, query: Query) -> tuple[str, ...]:
        """Tokens of the question's capitalised names, of their Chinese (Xiaomi → 小米), and its
        Chinese proper nouns (阿里, 谷歌), the ones the notes use."""
        words = [w for name in query.names for w in name.split()]
        tokens = [t for w in words for t in lexical.tokenize(w)]
        if self.dictionary is not None:
            tokens += [t for w in words for zh in self.dictionary.name_translations(w) for t in lexical.tokenize(zh)]
            tokens += [t for t in query.tokens if t in self.dictionary.proper]
        return tuple(t for t in dict.fromkeys(tokens) if self.lexicon.knows(t))

    def rank(self, query: Query, n: int, allowed: np.ndarray | None = None) -> Ranking:
        if self.eligible is not None:
            allowed = self.eligible if allowed is None else allowed & self.eligible
        return super().rank(query, n, allowed)

    def _scores(self, query: Query) -> np.ndarray | None:
        """BM25 of the terms, where the parts of a compound name count only in a chunk that holds
        them all: "KV Cache" matches "KV-cache", but "Self-Improving" does not match "Self-Forcing"
        by its "self"."""
        tokens, common = self._terms(query)
        fielded = self._field_scores(query)
        if self.bm25 is None or not (tokens or fielded.any()):
            return None
        groups = [[p for p in _COMPOUND.split(t) if p in query.exact] for t in query.exact if _COMPOUND.search(t)]
        groups = [g for g in groups if len(g) > 1]
        grouped = {p for g in groups for p in g}
        loose = tuple(t for t in tokens if t not in grouped)
        scores = self._bm25(loose) if loose else np.zeros(self.lexicon.n_chunks, np.float32)
        for group in groups:
            scored = tuple(p for p in group if p in tokens)
            if scored:
                together = np.logical_and.reduce([self._bm25((p,)) > 0 for p in group])
                scores += np.where(together, self._bm25(scored), 0.0).astype(np.float32)
        if common:  # "DeepSeek" with "Transformer": the chunk that names both comes first
            scores += np.where(scores > 0, self._bm25(common), 0.0).astype(np.float32)
        return scores + self._spelled_out(query) + fielded

    def _field_scores(self, query: Query) -> np.ndarray:
        """For each entry holding field values the question writes whole, their tokens' rarity,
        given to every chunk of it (:mod:`.fields`)."""
        if self.fields is None or self.chunk_entry is None or not len(self.chunk_entry):
            return np.zeros(self.lexicon.n_chunks, np.float32)
        per_entry = np.zeros(int(self.chunk_entry.max()) + 1, np.float32)
        for entry, held in self.fields.matches(query.text, query.tokens).items():
            per_entry[entry] = sum(self.lexicon.weight(t) for v in held.values() for t in lexical.tokenize(v))
        return per_entry[self.chunk_entry]  # one gather, however many entries hold the value

    @cached_property
    def _initials(self) -> dict[str, list[int]]:
        """The initials of every run of two to six capitalised words in each title's head ("DPO" of
        "Direct Preference Optimization") → the entries: built on the first acronym asked, so a
        question costs a lookup, not a pattern per entry (:func:`rag.retrieve.names.spells_out`'s
        strict reading, as a table)."""
        found: dict[str, list[int]] = {}
        for i, title in enumerate(self.titles):
            words = [w for w in _WORDS.split(title_head(title)) if w]
            for start in range(len(words)):
                for end in range(start + 2, min(start + MAX_ACRONYM, len(words)) + 1):
                    run = words[start:end]
                    if not all(w[0].isupper() for w in run):
                        break
                    key = "".join(w[0] for w in run)
                    if not found.get(key) or found[key][-1] != i:
                        found.setdefault(key, []).append(i)
        return found

    def _spelled_out(self, query: Query) -> np.ndarray:
        """For each acronym asked (DPO), the best score a chunk writing it earns, given to every
        chunk of an entry whose title's head spells it out ("Direct Preference Optimization: …")
        and never writes it: the paper the acronym names is that entry. Not a subtitle's words
        ("Flamingo: a Visual Language Model …" is no paper called VLM)."""
        extra = np.zeros(self.lexicon.n_chunks, np.float32)
        if self.chunk_entry is None:
            return extra
        for name in dict.fromkeys(ACRONYM.findall(query.text)):
            token = name.lower()
            entries = self._initials.get(name, [])
            if not entries:
                continue
            written = self._bm25((token,))
            spelled = np.isin(self.chunk_entry, entries) & (written <= 0)
            extra += np.where(spelled, float(written.max()) if written.max() > 0 else self.lexicon.weight(token), 0.0
                              ).astype(np.float32)
        return extra


class TranslatedRetriever(BM25Retriever):
    """BM25 over the dictionary translations of the question's English words, and of its Chinese
    words the notes never write (rag.text.dictionary).

    Its own ranking rather than more BM25 tokens: translations are guesses, and fused by rank they
    can lift an entry that the question's own words miss without drowning the words that match.
    """

    name = TRANSLATED

    def __init__(self, bm25: Bm25 | None, lexicon: Lexicon, dictionary: Dictionary, per_phrase: int = 2) -> None:
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
