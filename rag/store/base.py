"""The index store's contract: where generations of the index live, behind one small interface.

A store keeps whole *generations*: a build writes a complete new one and switches to it
atomically, so readers never see half an index and a killed build leaves the previous one
serving. Two backends implement it: a folder of files with FAISS (:mod:`rag.store.folder`, the
embedded default) and a PostgreSQL database with pgvector (for a team). Readers get a
:class:`LoadedIndex`; the builder gets the previous generation's data to reuse
(:class:`PreviousGeneration`) and hands back a new one (:class:`GenerationData`).
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from rag.errors import RagError
from rag.ingest.chunking import Chunk
from rag.ingest.notes import Entry

from .bm25 import Bm25
from .dense import DenseIndex
from .manifest import Manifest
from .terms import Terms


class IndexUnavailable(RagError):
    """The index is missing, corrupt, locked or unusable; the message says what to do."""


class IndexDamaged(IndexUnavailable):
    """The live generation exists but cannot be used. ``problem`` says what is wrong without the
    advice, so a builder can say why it rebuilds everything."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}: run `rag index` to rebuild")
        self.problem = problem


@dataclass(frozen=True)
class Lexicon:
    """Document frequencies of BM25's tokens: how rare a question's words are in the notes."""

    doc_freq: Mapping[str, int]
    n_chunks: int

    def weight(self, token: str) -> float:
        """Rarity weight; a token the notes never use weighs the most."""
        return math.log(1 + (self.n_chunks + 1) / (self.doc_freq.get(token, 0) + 0.5))

    def knows(self, token: str) -> bool:
        return token in self.doc_freq

    @classmethod
    def counted(cls, vocab: Sequence[str], doc_freq: np.ndarray, n_chunks: int) -> Lexicon:
        """From a vocabulary and how many chunks use each word (words no chunk uses are left out)."""
        return cls({w: df for w, df in zip(vocab, doc_freq.tolist(), strict=True) if df}, n_chunks)

    @classmethod
    def of(cls, terms: Terms) -> Lexicon:
        return cls.counted(terms.vocab, terms.doc_freq(), len(terms))


@dataclass
class LoadedIndex:
    """One generation, ready to search: entries, chunks, BM25, one dense index per embedder."""

    generation: str
    manifest: Manifest
    entries: list[Entry]
    chunks: list[Chunk]
    lexicon: Lexicon
    bm25: Bm25 | None  # over the chunks' tokens; None for an empty index
    dense: dict[str, DenseIndex] = field(default_factory=dict)

    @cached_property
    def entry_by_id(self) -> dict[str, Entry]:
        return {e.id: e for e in self.entries}

    @cached_property
    def chunk_entry(self) -> np.ndarray:
        """Index into ``entries`` of each chunk's entry."""
        position = {e.id: i for i, e in enumerate(self.entries)}
        return np.array([position[c.entry_id] for c in self.chunks], dtype=np.int64)

    @cached_property
    def entry_chunks(self) -> dict[str, list[int]]:
        """Chunk ids of each entry, in order."""
        out: dict[str, list[int]] = {}
        for i, c in enumerate(self.chunks):
            out.setdefault(c.entry_id, []).append(i)
        return out


@dataclass
class PreviousGeneration:
    """What a build may reuse: unchanged notes' entries, chunks and their terms, and cached vectors."""

    manifest: Manifest
    entries: list[Entry]
    chunks: list[Chunk]
    terms: Terms  # a row per chunk
    vectors: dict[str, np.ndarray]  # embedder name → one row per chunk


@dataclass
class GenerationData:
    """A complete new generation, as the builder hands it to :meth:`IndexStore.commit`."""

    manifest: Manifest
    entries: list[Entry]
    chunks: list[Chunk]
    terms: Terms  # a row per chunk
    vectors: dict[str, np.ndarray]
    #: A generation this one extends (a staged build's previous commit): the same entries, chunks
    #: and terms, and the same vectors of every embedder it holds. A store may reuse its data
    #: instead of writing it again; None, or a generation gone meanwhile: everything is written.
    base: str | None = None


class VectorCache(ABC):
    """Vectors of one embedder (by its id) keyed by chunk hash, saved while a build computes them,
    so a killed or failed build loses none of its embedding work."""

    @abstractmethod
    def get(self, hashes: Collection[str]) -> dict[str, np.ndarray]:
        """The cached rows among ``hashes``."""

    @abstractmethod
    def missing(self, hashes: Collection[str]) -> set[str]:
        """Those of ``hashes`` with no row here; cheaper than :meth:`get` (no vectors are read)."""

    @abstractmethod
    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Remember rows: safe from a kill -9 once this returns; safe from a power cut after a moment
        (about a second) or at the latest on :meth:`flush`."""

    @abstractmethod
    def flush(self) -> None:
        """Make every row put so far durable."""


class IndexStore(ABC):
    """Generations of one index. Implementations must make :meth:`commit` atomic."""

    #: Where the index lives, safe to show (a folder, or a DSN without its password).
    location: str

    @abstractmethod
    def current(self) -> str | None:
        """The live generation's id, or None before the first build; cheap (called per question)."""

    @abstractmethod
    def manifest(self) -> Manifest:
        """The live manifest, its generation verified against it; IndexDamaged when it does not hold
        (a build then rebuilds), IndexUnavailable when there is none."""

    @abstractmethod
    def check(self) -> list[str]:
        """What is wrong with the live generation against its manifest, one line each ([]: it is
        whole); IndexUnavailable when there is none or the store cannot be reached."""

    @abstractmethod
    def load(self) -> LoadedIndex:
        """The live generation for searching; IndexUnavailable when missing or damaged."""

    @abstractmethod
    def previous(self) -> PreviousGeneration | None:
        """The live generation's data for an incremental build; None when there is none usable."""

    @abstractmethod
    def lock(self, wait: bool = True) -> AbstractContextManager[None]:
        """One builder at a time: waits (saying so on stderr) or raises IndexUnavailable."""

    @abstractmethod
    def check_writable(self) -> None:
        """Raise IndexUnavailable (one line) now if a commit would fail, before any slow work."""

    @abstractmethod
    def commit(self, data: GenerationData) -> str:
        """Write ``data`` as a new generation, switch to it atomically, drop stale ones (and cached
        vectors no live chunk uses); its id. IndexUnavailable (one line) if it cannot, with the
        live generation untouched."""

    def vector_cache(self, embedder_id: str) -> VectorCache | None:
        """Where a build checkpoints the vectors of ``embedder_id``; None: this store keeps none."""
        return None


class IndexHandle:
    """The live index of a store for long-running readers (the app, the MCP server).

    ``get()`` is cheap when nothing changed (one small read of the live generation's id) and
    reloads when a build has switched generations; if the new one fails to load, the old one
    keeps serving. Safe to share between threads: one reload at a time.
    """

    def __init__(self, store: IndexStore) -> None:
        self.store = store
        self._index: LoadedIndex | None = None
        self._failed: tuple[str, IndexUnavailable] | None = None  # a generation that did not load
        self._lock = threading.Lock()

    @property
    def generation(self) -> str | None:
        return self._index.generation if self._index is not None else None

    def get(self) -> LoadedIndex:
        name = self.store.current()
        if name is not None and name != self.generation:
            with self._lock:
                if name != self.generation and (self._failed is None or self._failed[0] != name):
                    try:
                        self._index = self.store.load()
                        self._failed = None
                    except IndexUnavailable as exc:
                        self._failed = (name, exc)
        if self._index is None:
            raise self._failed[1] if self._failed else IndexUnavailable(
                f"no index in {self.store.location}: run `rag index` first")
        return self._index
