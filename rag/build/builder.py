"""Notes → a new index generation: plan from the manifest diff → reuse → segment, chunk, tokenize →
embed → commit to the store.

Only notes whose bytes changed are decoded and chunked; only chunks whose (embedder id, chunk
hash) has no vector yet are embedded, and each vector is checkpointed in the store's cache as soon
as it is computed, so a killed build resumes where it stopped. Models load only when there is text
to chunk or embed: "nothing to do" loads none. The builder prints nothing; it returns a
:class:`BuildReport` for the caller to show.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from rag.embed.embedding import Embedder, runs_concurrently
from rag.embed.models import Models
from rag.ingest.chunking import Chunk, approx_tokens, chunk_entries
from rag.ingest.corpus import display_name
from rag.ingest.notes import Entry, split_entries
from rag.settings import IndexSettings
from rag.store import GenerationData, IndexDamaged, IndexStore, IndexUnavailable, PreviousGeneration, VectorCache
from rag.store.manifest import Counts, Manifest, Skip, index_fingerprint
from rag.text.lexical import tokenize

from .plan import Plan, plan_build, scan_corpus

Progress = Callable[[str, int, int], None]  # (stage, done, total)
BATCH = 16


@dataclass(frozen=True)
class BuildReport:
    notes: int = 0
    entries: int = 0
    chunks: int = 0
    embedded: int = 0  # chunk vectors computed in this build (per embedder, summed)
    reused: int = 0  # chunk vectors taken from the previous generation or the cache
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    #: Notes over the chunk cap, indexed in part: one line each, saying how much.
    partial: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # "note.md: front matter is not valid YAML, read as text"
    full_rebuild_reason: str | None = None
    up_to_date: bool = False
    seconds: float = 0.0
    generation: str | None = None  # the live generation after the build

    def summary(self) -> str:
        if self.up_to_date:
            return f"index is up to date ({self.notes} notes, {self.entries} entries, {self.chunks} chunks)"
        parts = [f"indexed {self.notes} notes: {self.entries} entries, {self.chunks} chunks",
                 f"embedded {self.embedded}, reused {self.reused}"]
        for label, files in (("added", self.added), ("changed", self.changed), ("removed", self.removed)):
            if files:
                parts.append(f"{label} {len(files)}")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)}")
        if self.full_rebuild_reason:
            parts.append(f"rebuilt the whole index: {self.full_rebuild_reason}")
        return "; ".join(parts) + f" in {self.seconds:.1f}s"


def fingerprint_of(settings: IndexSettings) -> dict[str, Any]:
    """What makes two indexes incompatible. The chunk cap is part of it: raising it changes which
    notes are in the index, and a note skipped as too big must then be tried again."""
    return {**index_fingerprint(settings.embedders, settings.chunk_tokens, settings.chunk_overlap),
            "max_chunks_per_note": settings.max_chunks_per_note}


def _live_manifest(store: IndexStore) -> tuple[Manifest | None, str | None]:
    """(the live manifest, None), (None, why it cannot be used), or (None, None) before any build."""
    try:
        return (store.manifest(), None) if store.current() is not None else (None, None)
    except IndexDamaged as exc:
        return None, f"previous index unusable ({exc.problem})"


@dataclass
class _Texts:
    """Entries, chunks and their tokens, growing note by note (local to one build)."""

    entries: list[Entry] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    tokens: list[list[str]] = field(default_factory=list)


def _token_counter(settings: IndexSettings, models: Models) -> Callable[[str], int]:
    """Chunks are sized in the first embedder's tokens (an estimate when lexical only); the model
    loads on first use, so a build that only drops or reuses text loads none. Counts are
    remembered: the splitter measures most pieces more than once while it merges them."""
    if not settings.embedders:
        return approx_tokens
    return lru_cache(maxsize=4096)(lambda text: models.embedder(settings.embedders[0]).count_tokens(text))


def _segment(plan: Plan, settings: IndexSettings, models: Models) -> tuple[dict[str, _Texts], list[str], list[str]]:
    """Entries, chunks and tokens of every note to (re)index; a line per note over the chunk cap
    (such a note keeps its first chunks up to the cap, and their entries, so a pasted dump is
    searchable in part instead of missing whole); and what reading a note said about it (a front
    matter read as text)."""
    count_tokens = _token_counter(settings, models)
    cap = settings.max_chunks_per_note
    fresh: dict[str, _Texts] = {}
    partial: list[str] = []
    notices: list[str] = []
    for path, text in sorted(plan.texts.items()):
        entries = split_entries(text, path, warn=lambda message, path=path: notices.append(f"{path}: {message}"))
        chunks = chunk_entries(entries, settings.chunk_tokens, settings.chunk_overlap, count_tokens)
        if len(chunks) > cap:
            partial.append(f"{display_name(path)}: indexed in part, its first {cap} of {len(chunks)} chunks "
                           "(index.max_chunks_per_note)")
            chunks = chunks[:cap]
            kept = {c.entry_id for c in chunks}
            entries = [e for e in entries if e.id in kept]
        fresh[path] = _Texts(entries, chunks, [tokenize(c.embed_text) for c in chunks])
    return fresh, partial, notices


def _assemble(plan: Plan, fresh: dict[str, _Texts], prev: PreviousGeneration | None) -> _Texts:
    """Reused and new text, in note and line order."""
    out = _Texts()
    if prev is not None and plan.reuse:
        out.entries = [e for e in prev.entries if e.file in plan.reuse]
        kept = [(c, t) for c, t in zip(prev.chunks, prev.tokens, strict=True) if c.file in plan.reuse]
        out.chunks, out.tokens = [c for c, _ in kept], [t for _, t in kept]
    for texts in fresh.values():
        out.entries += texts.entries
        out.chunks += texts.chunks
        out.tokens += texts.tokens
    order = sorted(range(len(out.chunks)), key=lambda i: (out.chunks[i].file, out.chunks[i].line_start, i))
    out.chunks = [out.chunks[i] for i in order]
    out.tokens = [out.tokens[i] for i in order]
    out.entries.sort(key=lambda e: (e.file, e.line_start))
    return out


@dataclass
class _Job:
    """One embedder's share of a build: its matrix, the rows still to compute, where they are saved."""

    name: str
    embedder: Embedder | None  # None when every row is known: no model is loaded
    embedder_id: str
    matrix: np.ndarray
    hashes: list[str]
    cache: VectorCache | None
    todo: deque[list[int]]  # batches of rows not started yet
    total: int  # rows to compute
    done: int = 0
    owner: int | None = None  # the thread computing it, unless it runs concurrently

    @property
    def concurrent(self) -> bool:
        return self.embedder is not None and runs_concurrently(self.embedder)


def _cached(store: IndexStore, embedder_id: str, hashes: list[str],
            prev_rows: dict[str, np.ndarray]) -> tuple[VectorCache | None, dict[str, np.ndarray]]:
    """Known vectors of ``hashes`` under ``embedder_id``: the store's cache, completed from the
    previous generation's rows (cached too, so the cache is whole again if it was deleted)."""
    cache = store.vector_cache(embedder_id)
    known = cache.get(hashes) if cache is not None else {}
    extra = [h for h in dict.fromkeys(hashes) if h not in known and h in prev_rows]
    if extra:
        known.update((h, prev_rows[h]) for h in extra)
        if cache is not None:
            cache.put(extra, np.stack([prev_rows[h] for h in extra]))
    return cache, known


def _job(name: str, chunks: list[Chunk], store: IndexStore, models: Models, prev: PreviousGeneration | None) -> _Job:
    """The vectors of ``chunks`` under one embedder that are known already (where (embedder id,
    chunk hash) match), and the rest in batches, longest texts first: with several threads on one
    embedder, the short batches left at the end keep them finishing together."""
    hashes = [c.hash for c in chunks]
    prev_id = prev.manifest.embedder_ids.get(name) if prev is not None else None
    cache, known = None, {}
    if prev is not None and prev_id is not None:
        prev_rows = dict(zip((c.hash for c in prev.chunks), prev.vectors[name], strict=True))
        cache, known = _cached(store, prev_id, hashes, prev_rows)
    embedder = None
    if prev is not None and prev_id is not None and all(h in known for h in hashes):
        embedder_id, dim = prev_id, prev.vectors[name].shape[1]  # nothing new: trust the recorded id
    else:
        embedder = models.embedder(name)
        embedder_id, dim = embedder.id, embedder.dim
        if embedder_id != prev_id:  # another model or version: old vectors are incomparable
            cache, known = _cached(store, embedder_id, hashes, {})
    matrix = np.zeros((len(chunks), dim), np.float32)
    todo = []
    for i, h in enumerate(hashes):
        if h in known:
            matrix[i] = known[h]
        else:
            todo.append(i)
    todo.sort(key=lambda i: -len(chunks[i].embed_text))
    batches = deque(todo[start:start + BATCH] for start in range(0, len(todo), BATCH))
    return _Job(name, embedder, embedder_id, matrix, hashes, cache, batches, len(todo))


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _compute(jobs: list[_Job], chunks: list[Chunk], progress: Progress | None) -> None:
    """Every job's missing rows, each batch checkpointed in the job's cache as it is computed.

    One thread per embedder, so two embedders on two cores take the time of the slower one, not
    the sum (the models run native code that releases the GIL). An embedder that can take calls
    from several threads at once (:func:`runs_concurrently`) also gets every core the others
    leave idle: once the quicker model is done, both cores work on the slower one.
    """
    pending = [job for job in jobs if job.todo]
    workers = max(len(pending), cores()) if any(job.concurrent for job in pending) else len(pending)
    state = threading.Condition()
    failed = False

    def take() -> tuple[_Job, list[int]] | None:
        """This thread's next batch, None when all are taken or a worker failed. A one-call-at-a-time
        embedder comes first (it can only ever use one core) and stays on the thread that started
        it (an engine may keep per-thread state, such as an OpenMP team); then the embedder with the
        most batches left."""
        me = threading.get_ident()
        with state:
            while not failed and any(job.todo for job in pending):
                ready = [job for job in pending if job.todo and (job.concurrent or job.owner in (None, me))]
                if ready:
                    job = min(ready, key=lambda j: (j.concurrent, -len(j.todo)))
                    job.owner = me
                    return job, job.todo.popleft()
                state.wait()
            return None

    def save(job: _Job, batch: list[int], rows: np.ndarray) -> None:
        with state:
            job.matrix[batch] = rows
            job.done += len(batch)
            if job.cache is not None:
                job.cache.put([job.hashes[i] for i in batch], rows)
                if job.done == job.total:
                    job.cache.flush()  # a stage reported done is a stage saved
            if progress:
                progress(f"embedding ({job.name})", job.done, job.total)
            state.notify_all()

    def work() -> None:
        nonlocal failed
        try:
            while (item := take()) is not None:
                job, batch = item
                save(job, batch, job.embedder.embed_passages([chunks[i].embed_text for i in batch]))  # type: ignore[union-attr]
        except BaseException:
            with state:
                failed = True  # the others stop after their current batch
                state.notify_all()
            raise

    if workers <= 1:
        work()
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed") as pool:
        futures = [pool.submit(work) for _ in range(workers)]
        try:
            for future in futures:
                future.result()
        except BaseException:  # Ctrl-C here, or a worker's error: the rest stop after their batch
            with state:
                failed = True
                state.notify_all()
            raise


def _embed_all(names: tuple[str, ...], chunks: list[Chunk], store: IndexStore, models: Models,
               prev: PreviousGeneration | None, progress: Progress | None) -> list[_Job]:
    """Every embedder's vectors of ``chunks``: known ones reused, the rest computed."""
    jobs = [_job(name, chunks, store, models, prev) for name in names]
    _compute(jobs, chunks, progress)
    for job in jobs:
        if job.cache is not None:
            job.cache.flush()
    return jobs


def build_index(settings: IndexSettings, store: IndexStore, models: Models, progress: Progress | None = None,
                wait: bool = True, rehash: bool = False) -> BuildReport:
    """Build or update the index of ``settings.corpus`` in ``store``; IndexUnavailable (one line) when
    it cannot (no corpus, another build running with ``wait=False``, an unwritable index).
    ``rehash``: read and hash every note, trusting no recorded stamp (see :mod:`rag.build.plan`)."""
    started = time.perf_counter()
    if not settings.corpus.is_dir():
        raise IndexUnavailable(f"corpus folder {settings.corpus} does not exist")
    with store.lock(wait=wait):
        fingerprint = fingerprint_of(settings)
        manifest, damaged = _live_manifest(store)
        known = manifest.notes if manifest is not None and not rehash else None
        scan = scan_corpus(settings.corpus, settings.max_note_bytes, settings.ignore, known, progress)
        plan = plan_build(scan, manifest, fingerprint, damaged)
        if plan.up_to_date and manifest is not None:
            counts = manifest.counts
            return BuildReport(notes=counts.notes, entries=counts.entries, chunks=counts.chunks,
                               skipped=list(plan.skips), up_to_date=True, generation=store.current(),
                               seconds=time.perf_counter() - started)
        store.check_writable()
        prev = store.previous() if manifest is not None else None  # after a settings change its vectors may fit
        if manifest is not None and prev is None:
            plan = plan_build(scan, None, fingerprint, "previous index unusable (its data did not load)")
        fresh, partial, notices = _segment(plan, settings, models)
        texts = _assemble(plan, fresh, prev)
        jobs = _embed_all(settings.embedders, texts.chunks, store, models, prev, progress)

        records = {p: plan.restamped(p, prev.manifest.notes[p]) for p in plan.reuse} if prev is not None else {}
        for path, t in fresh.items():
            records[path] = plan.record(path, len(t.entries), len(t.chunks))
        new_manifest = Manifest(
            fingerprint=fingerprint, embedder_ids={j.name: j.embedder_id for j in jobs},
            notes=dict(sorted(records.items())), skipped=plan.skips,
            counts=Counts(len(records), len(texts.entries), len(texts.chunks)),
            built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), corpus=str(settings.corpus.resolve()))
        generation = store.commit(GenerationData(new_manifest, texts.entries, texts.chunks, texts.tokens,
                                                 {j.name: j.matrix for j in jobs}))
        return BuildReport(
            notes=len(records), entries=len(texts.entries), chunks=len(texts.chunks),
            embedded=sum(j.total for j in jobs), reused=sum(len(j.hashes) - j.total for j in jobs),
            added=plan.added, changed=plan.changed, removed=list(plan.removed), skipped=list(plan.skips),
            partial=partial, notices=notices, full_rebuild_reason=plan.full_rebuild_reason, generation=generation,
            seconds=time.perf_counter() - started)
