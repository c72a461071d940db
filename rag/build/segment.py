"""Notes' text → entries, chunks and their tokens: the part of a build before any embedding.

It decides when a first build becomes searchable (the lexical generation waits for it), and on a
large vault it is the long part of that wait: most of a minute at 10,000 notes on one core,
mostly jieba and the embedder's tokenizer sizing chunks. Many notes are therefore cut up by one process
per core, each with its own tokenizer, and gathered back in note order, so the result is the
same as one process's.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context

from rag.embed.models import Models
from rag.ingest.chunking import Chunk, approx_tokens, chunk_entries
from rag.ingest.corpus import display_name
from rag.ingest.notes import Entry, split_entries
from rag.settings import IndexSettings
from rag.text.lexical import tokenize

from .vectors import cores

#: Each worker process gets at least this many notes: a process costs a few seconds to start and
#: load jieba and a tokenizer, about what one core spends cutting up a thousand notes.
PARALLEL_NOTES = 1000


@dataclass
class Texts:
    """Entries, chunks and their tokens, growing note by note (local to one build)."""

    entries: list[Entry] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    tokens: list[list[str]] = field(default_factory=list)


@dataclass
class Segmented:
    """Each note's texts; a line per note over the chunk cap; what reading a note said of it."""

    texts: dict[str, Texts] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def extend(self, other: Segmented) -> None:
        self.texts.update(other.texts)
        self.partial += other.partial
        self.notices += other.notices


def token_counter(settings: IndexSettings, models: Models) -> Callable[[str], int]:
    """Chunks are sized in the first embedder's tokens (an estimate when lexical only); the model
    loads on first use, so a build that only drops or reuses text loads none. Counts are
    remembered: the splitter measures most pieces more than once while it merges them."""
    if not settings.embedders:
        return approx_tokens
    return lru_cache(maxsize=4096)(lambda text: models.embedder(settings.embedders[0]).count_tokens(text))


def segment_notes(notes: list[tuple[str, str]], settings: IndexSettings, models: Models) -> Segmented:
    """Entries, chunks and tokens of each (path, text), in the given order. A note over the chunk
    cap keeps its first chunks up to the cap, and their entries, so a pasted dump is searchable
    in part instead of missing whole."""
    count_tokens = token_counter(settings, models)
    cap = settings.max_chunks_per_note
    out = Segmented()
    for path, text in notes:
        entries = split_entries(text, path, warn=lambda message, path=path: out.notices.append(f"{path}: {message}"))
        chunks = chunk_entries(entries, settings.chunk_tokens, settings.chunk_overlap, count_tokens)
        if len(chunks) > cap:
            out.partial.append(f"{display_name(path)}: indexed in part, its first {cap} of {len(chunks)} chunks "
                               "(index.max_chunks_per_note)")
            chunks = chunks[:cap]
            kept = {c.entry_id for c in chunks}
            entries = [e for e in entries if e.id in kept]
        out.texts[path] = Texts(entries, chunks, [tokenize(c.embed_text) for c in chunks])
    return out


def _segment_apart(notes: list[tuple[str, str]], settings: IndexSettings) -> Segmented:
    """:func:`segment_notes` in a worker process, with models of its own."""
    return segment_notes(notes, settings, Models())


def _shares(notes: list[tuple[str, str]], n: int) -> list[list[tuple[str, str]]]:
    """``n`` runs of consecutive notes of about equal text length (one per worker)."""
    total, shares, share, size = sum(len(t) for _, t in notes), [], [], 0
    for note in notes:
        share.append(note)
        size += len(note[1])
        if size * n >= total * (len(shares) + 1) and len(shares) < n - 1:
            shares.append(share)
            share = []
    return [*shares, share] if share else shares


def segment(texts: dict[str, str], settings: IndexSettings, models: Models) -> Segmented:
    """Every note of ``texts`` (path → text) cut up, in path order: here, or by one process per
    core when there are many."""
    notes = sorted(texts.items())
    workers = min(cores(), len(notes) // PARALLEL_NOTES)
    if workers <= 1:
        return segment_notes(notes, settings, models)
    out = Segmented()
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for part in pool.map(_segment_apart, _shares(notes, workers), [settings] * workers):
            out.extend(part)
    return out
