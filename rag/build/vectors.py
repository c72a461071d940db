"""The vectors of one build: per embedder, the rows known already (the previous generation, the
store's cache) and the rest computed on threads, each batch checkpointed in the cache at once.

A kill -9 loses no batch that :meth:`VectorCache.put` returned from (the store writes every batch
before ``put`` returns), so a killed build's next run embeds only what was never computed.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from rag.embed.embedding import BATCH, Embedder, runs_concurrently
from rag.embed.models import Models, resolve
from rag.ingest.chunking import Chunk
from rag.store import IndexStore, PreviousGeneration, VectorCache

Progress = Callable[[str, int, int], None]  # (stage, done, total); total 0: an event, said as a line
#: The speed assumed of an embedder the registry has not measured: a small transformer's on one core.
DEFAULT_CHUNKS_PER_SECOND = 20.0


@dataclass
class Job:
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


def cached(store: IndexStore, embedder_id: str, hashes: list[str], prev_rows: np.ndarray,
           prev_vectors: np.ndarray | None) -> tuple[VectorCache | None, dict[int, np.ndarray]]:
    """The store's cache under ``embedder_id``, and the vectors it holds for chunks the previous
    generation lacks (by chunk index). ``prev_rows[i]`` is chunk ``i``'s row in ``prev_vectors``
    or -1; rows of it the cache lacks are cached too, so the cache is whole again if it was deleted."""
    cache = store.vector_cache(embedder_id)
    if cache is None:
        return None, {}
    new = np.flatnonzero(prev_rows < 0 if prev_vectors is not None else np.ones(len(hashes), bool)).tolist()
    if prev_vectors is not None:
        reused = np.flatnonzero(prev_rows >= 0).tolist()
        absent = cache.missing([hashes[i] for i in reused])
        if extra := [i for i in reused if hashes[i] in absent]:
            cache.put([hashes[i] for i in extra], prev_vectors[prev_rows[extra]])
    found = cache.get([hashes[i] for i in new])  # usually a few rows: only the records holding them are read
    return cache, {i: found[hashes[i]] for i in new if hashes[i] in found}


def make_jobs(names: Sequence[str], chunks: list[Chunk], reused: np.ndarray, store: IndexStore, models: Models,
              prev: PreviousGeneration | None) -> list[Job]:
    """One job per embedder; the chunks' hashes, and each one's row in the previous generation,
    are found once for all of them. ``reused[i]`` is chunk ``i``'s row when it comes from an
    unchanged note (-1 else); a new chunk may still be one the previous generation has (an edit
    elsewhere in its note), so it is looked up by hash among the rows not reused."""
    hashes = [c.hash for c in chunks]
    prev_rows = reused.copy()
    if prev is not None and (new := np.flatnonzero(reused < 0).tolist()):
        position = {prev.chunks[i].hash: i for i in np.setdiff1d(np.arange(len(prev.chunks)), reused).tolist()}
        prev_rows[new] = [position.get(hashes[i], -1) for i in new]
    return [_make_job(name, chunks, hashes, store, models, prev, prev_rows) for name in names]


def _known(prev_rows: np.ndarray, prev_vectors: np.ndarray | None, from_cache: dict[int, np.ndarray]) -> np.ndarray:
    """Which chunks have a vector already: a row of the previous generation's, or the cache's."""
    known = prev_rows >= 0 if prev_vectors is not None else np.zeros(len(prev_rows), bool)
    known[list(from_cache)] = True
    return known


def _make_job(name: str, chunks: list[Chunk], hashes: list[str], store: IndexStore, models: Models,
              prev: PreviousGeneration | None, prev_rows: np.ndarray) -> Job:
    """The vectors of ``chunks`` under one embedder that are known already (where (embedder id,
    chunk hash) match), and the rest in batches, longest texts first: with several threads on one
    embedder, the short batches left at the end keep them finishing together."""
    prev_id = prev.manifest.embedder_ids.get(name) if prev is not None and name in prev.vectors else None
    prev_vectors = prev.vectors[name] if prev is not None and prev_id is not None else None
    cache, from_cache = (cached(store, prev_id, hashes, prev_rows, prev_vectors) if prev_vectors is not None
                         else (None, {}))
    embedder = None
    if prev_vectors is not None and _known(prev_rows, prev_vectors, from_cache).all():
        embedder_id, dim = prev_id, prev_vectors.shape[1]  # nothing new: trust the recorded id
    else:
        embedder = models.embedder(name)
        embedder_id, dim = embedder.id, embedder.dim
        if embedder_id != prev_id:  # another model or version: old vectors are incomparable
            prev_vectors = None
            cache, from_cache = cached(store, embedder_id, hashes, prev_rows, None)
    matrix = np.zeros((len(chunks), dim), np.float32)
    if prev_vectors is not None:
        matrix[prev_rows >= 0] = prev_vectors[prev_rows[prev_rows >= 0]]
    for i, vector in from_cache.items():
        matrix[i] = vector
    todo = sorted(np.flatnonzero(~_known(prev_rows, prev_vectors, from_cache)).tolist(),
                  key=lambda i: -len(chunks[i].embed_text))
    batches = deque(todo[start:start + BATCH] for start in range(0, len(todo), BATCH))
    return Job(name, embedder, embedder_id, matrix, hashes, cache, batches, len(todo))


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def embedding_seconds(job: Job) -> float:
    """How long ``job``'s missing rows should take on one core, by the registry's measured speed."""
    return job.total / (resolve(job.name).chunks_per_second or DEFAULT_CHUNKS_PER_SECOND)


def compute(jobs: list[Job], chunks: list[Chunk], progress: Progress | None,
            finished: Callable[[Job], None] | None = None) -> None:
    """Every job's missing rows, each batch checkpointed in the job's cache as it is computed;
    ``finished(job)`` runs on this (the calling) thread as each job completes, while the others
    keep embedding.

    One thread per embedder, so two embedders on two cores take the time of the slower one, not
    the sum (the models run native code that releases the GIL), and the cheaper one finishes
    first. An embedder that can take calls from several threads at once (:func:`runs_concurrently`)
    also gets every core the others leave idle: once the quicker model is done, both cores work on
    the slower one.
    """
    pending = [job for job in jobs if job.todo]
    if not pending:
        return
    workers = max(len(pending), cores()) if any(job.concurrent for job in pending) else len(pending)
    state = threading.Condition()
    failed = False
    completed: list[Job] = []
    running = workers

    def take() -> tuple[Job, list[int]] | None:
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

    def save(job: Job, batch: list[int], rows: np.ndarray) -> None:
        with state:
            job.matrix[batch] = rows
            job.done += len(batch)
            if job.cache is not None:
                job.cache.put([job.hashes[i] for i in batch], rows)
                if job.done == job.total:
                    job.cache.flush()  # a stage reported done is a stage saved
            if progress:
                progress(f"embedding ({job.name})", job.done, job.total)
            if job.done == job.total:
                completed.append(job)
            state.notify_all()

    def work() -> None:
        nonlocal failed, running
        try:
            while (item := take()) is not None:
                job, batch = item
                save(job, batch, job.embedder.embed_passages([chunks[i].embed_text for i in batch]))  # type: ignore[union-attr]
        except BaseException:
            with state:
                failed = True  # the others stop after their current batch
            raise
        finally:
            with state:
                running -= 1
                state.notify_all()

    def announce() -> None:
        """Hand each completed job to ``finished`` on this thread, until every worker has ended."""
        seen = 0
        while True:
            with state:
                state.wait_for(lambda n=seen: len(completed) > n or not running or failed)
                new, seen, over = completed[seen:], len(completed), not running or failed
            for job in new:
                if finished is not None and not failed:
                    finished(job)
            if over and seen == len(completed):
                return

    if workers <= 1 and finished is None:
        work()
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed") as pool:
        futures = [pool.submit(work) for _ in range(workers)]
        try:
            announce()
            for future in futures:
                future.result()
        except BaseException:  # Ctrl-C here, a failed commit, or a worker's error: the rest stop after their batch
            with state:
                failed = True
                state.notify_all()
            raise
