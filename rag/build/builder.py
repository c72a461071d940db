"""Notes → a new index generation: plan from the manifest diff → reuse → segment, chunk, tokenize →
embed → commit to the store.

Only notes whose bytes changed are decoded and chunked; only chunks whose (embedder id, chunk
hash) has no vector yet are embedded, and each batch of vectors is checkpointed in the store's cache
as soon as it is computed, so a killed build resumes where it stopped. A large first build is
searchable before it is embedded (:func:`searchable_first`). Models load only when there is text
to chunk or embed: "nothing to do" loads none. The builder prints nothing; it returns a
:class:`BuildReport` for the caller to show.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rag.embed.models import Models
from rag.ingest.chunking import Chunk
from rag.ingest.notes import Entry
from rag.settings import IndexSettings
from rag.store import GenerationData, IndexDamaged, IndexStore, IndexUnavailable, PreviousGeneration
from rag.store.manifest import Counts, Manifest, Skip, index_fingerprint
from rag.store.terms import Terms

from .plan import Plan, plan_build, scan_corpus
from .segment import Texts, segment
from .vectors import Job, Progress, compute, cores, embedding_seconds, make_jobs

__all__ = ["BuildReport", "Progress", "build_index", "cores", "fingerprint_of", "searchable_first"]

#: A first build whose slowest embedder should take longer than this (seconds) is made searchable
#: by its text first (:func:`searchable_first`).
LEXICAL_FIRST_SECONDS = 5.0


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
    #: A staged build's commits: what each made searchable ("lexical", then an embedder), seconds after the start.
    searchable: list[tuple[str, float]] = field(default_factory=list)

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
        if self.searchable:
            parts.append("searchable " + ", ".join(f"({label}) after {t:.1f}s" for label, t in self.searchable))
        return "; ".join(parts) + f" in {self.seconds:.1f}s"

    def to_json(self) -> dict[str, Any]:
        """The report as ``rag index --json`` prints it."""
        return {**asdict(self), "seconds": round(self.seconds, 2),
                "skipped": [{"path": s.path, "reason": s.note, "kept": s.kept} for s in self.skipped],
                "searchable": [{"rankings": label, "seconds": round(t, 2)} for label, t in self.searchable]}


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


@dataclass(frozen=True)
class Assembled:
    """The new generation's text: entries, and chunks with their terms, in note and line order."""

    entries: list[Entry]
    chunks: list[Chunk]
    terms: Terms
    #: Each chunk's row in the previous generation when it is one of its unchanged notes', else -1.
    prev_rows: np.ndarray


def _assemble(plan: Plan, fresh: dict[str, Texts], prev: PreviousGeneration | None) -> Assembled:
    """Reused and new text, in note and line order. The reused chunks' terms are taken as arrays,
    so an update costs what changed, not the collection's tokens."""
    entries: list[Entry] = []
    chunks: list[Chunk] = []
    kept: list[int] = []
    terms = Terms.empty()
    if prev is not None and plan.reuse:
        entries = [e for e in prev.entries if e.file in plan.reuse]
        kept = [i for i, c in enumerate(prev.chunks) if c.file in plan.reuse]
        chunks = [prev.chunks[i] for i in kept]
        terms = prev.terms.take(kept)
    for texts in fresh.values():
        entries += texts.entries
        chunks += texts.chunks
    terms = terms.extend(t for texts in fresh.values() for t in texts.tokens)
    rows = np.array(kept + [-1] * (len(chunks) - len(kept)), np.int64)
    order = sorted(range(len(chunks)), key=lambda i: (chunks[i].file, chunks[i].line_start, i))
    entries.sort(key=lambda e: (e.file, e.line_start))
    return Assembled(entries, [chunks[i] for i in order], terms.take(order).compact(), rows[order])


def searchable_first(jobs: list[Job], prev: PreviousGeneration | None) -> bool:
    """Whether to commit the text before the vectors: when no complete index serves now (a first
    build, a rebuild of a damaged index, or one a killed build left partial) and the slowest
    embedder should take more than LEXICAL_FIRST_SECONDS. Waiting that long with nothing to search
    is worse than BM25 and exact terms now; a few seconds is not worth an extra commit. A complete
    index, even one of other settings or of older notes, keeps serving until its successor is
    whole: swapping it for a lexical one would make every search worse to show changes sooner."""
    if prev is not None and not prev.manifest.pending:
        return False
    return max((embedding_seconds(job) for job in jobs), default=0.0) > LEXICAL_FIRST_SECONDS


def build_index(settings: IndexSettings, store: IndexStore, models: Models, progress: Progress | None = None,
                wait: bool = True, rehash: bool = False) -> BuildReport:
    """Build or update the index of ``settings.corpus`` in ``store``; IndexUnavailable (one line) when
    it cannot (no corpus, another build running with ``wait=False``, an unwritable index).
    ``rehash``: read and hash every note, trusting no recorded stamp (see :mod:`rag.build.plan`).

    A large first build commits several generations (:func:`searchable_first`): the text as soon
    as it is tokenized, then one more as each embedder finishes; each says which embedders it
    still lacks (:attr:`Manifest.pending`), so search uses the rankings it has."""
    started = time.perf_counter()
    if not settings.corpus.is_dir():
        raise IndexUnavailable(f"corpus folder {settings.corpus} does not exist")
    with store.lock(wait=wait):
        fingerprint = fingerprint_of(settings)
        manifest, damaged = _live_manifest(store)
        known = manifest.notes if manifest is not None and not rehash else None
        scan = scan_corpus(settings.corpus, settings.max_note_bytes, settings.ignore, known, progress)
        plan = plan_build(scan, manifest, fingerprint, damaged)
        if plan.up_to_date and manifest is not None and not manifest.pending:
            counts = manifest.counts
            return BuildReport(notes=counts.notes, entries=counts.entries, chunks=counts.chunks,
                               skipped=list(plan.skips), up_to_date=True, generation=store.current(),
                               seconds=time.perf_counter() - started)
        store.check_writable()
        prev = store.previous() if manifest is not None else None  # after a settings change its vectors may fit
        if manifest is not None and prev is None:
            plan = plan_build(scan, None, fingerprint, "previous index unusable (its data did not load)")
        segmented = segment(plan.texts, settings, models)
        fresh, partial, notices = segmented.texts, segmented.partial, segmented.notices
        texts = _assemble(plan, fresh, prev)
        jobs = make_jobs(settings.embedders, texts.chunks, texts.prev_rows, store, models, prev)

        records = {p: plan.restamped(p, prev.manifest.notes[p]) for p in plan.reuse} if prev is not None else {}
        for path, t in fresh.items():
            records[path] = plan.record(path, len(t.entries), len(t.chunks))
        searchable: list[tuple[str, float]] = []  # what each commit of a staged build added, and when
        staged = searchable_first(jobs, prev)
        shown: set[str] = set()  # rankings the commits so far made searchable
        commits: list[str] = []  # generations this build committed: the same texts, ever more vectors

        def commit() -> str:
            """A generation of the texts and every complete job's vectors, said as progress when staged."""
            complete = [j for j in jobs if j.done == j.total]
            new_manifest = Manifest(
                fingerprint=fingerprint, embedder_ids={j.name: j.embedder_id for j in jobs},
                notes=dict(sorted(records.items())), skipped=plan.skips,
                counts=Counts(len(records), len(texts.entries), len(texts.chunks)),
                built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), corpus=str(settings.corpus.resolve()),
                pending=tuple(j.name for j in jobs if j not in complete))
            generation = store.commit(GenerationData(new_manifest, texts.entries, texts.chunks, texts.terms,
                                                     {j.name: j.matrix for j in complete},
                                                     base=commits[-1] if commits else None))
            commits.append(generation)
            if staged:
                added = [j.name for j in complete if j.name not in shown]
                label = " + ".join(added if shown else ["lexical", *added])
                shown.update(["lexical", *added])
                searchable.append((label, time.perf_counter() - started))
                if progress:
                    progress(f"searchable ({label}) after {searchable[-1][1]:.1f}s", 0, 0)
            return generation

        def finished(job: Job) -> None:
            if any(j.done < j.total for j in jobs):  # the last one's commit is the final one, below
                commit()

        if staged:
            ready = {j.name for j in jobs if not j.todo}
            if plan.up_to_date and prev is not None and set(prev.manifest.dense) == ready:
                shown.update(["lexical", *prev.manifest.dense])  # a killed build's commit serves these texts
            else:
                commit()
        compute(jobs, texts.chunks, progress, finished if staged else None)
        for job in jobs:
            if job.cache is not None:
                job.cache.flush()
        generation = commit()
        return BuildReport(
            notes=len(records), entries=len(texts.entries), chunks=len(texts.chunks),
            embedded=sum(j.total for j in jobs), reused=sum(len(j.hashes) - j.total for j in jobs),
            added=plan.added, changed=plan.changed, removed=list(plan.removed), skipped=list(plan.skips),
            partial=partial, notices=notices, full_rebuild_reason=plan.full_rebuild_reason, generation=generation,
            searchable=searchable, seconds=time.perf_counter() - started)
