"""The Postgres store at scale: commit (COPY), HNSW build, incremental commits, a reader's load time
and memory, search latency with concurrent readers, and HNSW recall@10 against exact search.

    python scripts/pg_bench.py                      # a throw-away server, as the tests start it
    python scripts/pg_bench.py --dsn postgresql://… # an existing (empty) database

Synthetic data: ``--chunks`` chunks (two per entry) of Zipf-distributed tokens, and clustered
unit vectors of ``--dim`` dimensions (real embeddings are clustered; uniform random vectors would
understate HNSW recall). Prints one JSON report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.ingest.chunking import Chunk
from rag.ingest.notes import Entry
from rag.store import GenerationData
from rag.store.manifest import Counts, Manifest, NoteRecord, index_fingerprint
from rag.store.pg.store import PgStore

EMBEDDER = "bench"


def synthetic(n_chunks: int, dim: int, seed: int = 0) -> GenerationData:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(50_000)])
    lengths = rng.integers(60, 180, n_chunks)
    words = vocab[np.minimum(rng.zipf(1.2, int(lengths.sum())) - 1, len(vocab) - 1)]
    tokens, start = [], 0
    for n in lengths:
        tokens.append(words[start:start + n].tolist())
        start += n
    centers = rng.standard_normal((max(1, n_chunks // 50), dim)).astype(np.float32)
    vectors = centers[rng.integers(0, len(centers), n_chunks)] + 0.6 * rng.standard_normal((n_chunks, dim),
                                                                                           dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    entries, chunks = [], []
    for i in range(0, n_chunks, 2):
        file = f"synth/note{i // 2000:03d}.md"
        entry = Entry(file=file, title=f"Paper {i // 2}", line_start=i + 1, line_end=i + 2, url=None, date=None,
                      text=" ".join(tokens[i]))
        entries.append(entry)
        for j in range(i, min(i + 2, n_chunks)):
            chunks.append(Chunk(entry.id, file, j + 1, j + 1, " ".join(tokens[j]), entry.title))
    notes = {f: NoteRecord(sha256=f, entries=0, chunks=0) for f in sorted({e.file for e in entries})}
    manifest = Manifest(fingerprint=index_fingerprint((EMBEDDER,), 256, 32), embedder_ids={EMBEDDER: f"synth-{dim}"},
                        notes=notes, counts=Counts(len(notes), len(entries), len(chunks)), corpus="synthetic")
    return GenerationData(manifest, entries, chunks, tokens, {EMBEDDER: vectors})


def edited(data: GenerationData, share: float, version: int) -> GenerationData:
    """The same generation with ``share`` of its chunks' text changed (and their vectors nudged)."""
    rng = np.random.default_rng(version)
    picked = set(rng.choice(len(data.chunks), int(len(data.chunks) * share), replace=False).tolist())
    chunks = [replace(c, text=f"{c.text} v{version}") if i in picked else c for i, c in enumerate(data.chunks)]
    vectors = data.vectors[EMBEDDER].copy()
    for i in picked:
        vectors[i] = vectors[i] + 0.01 * rng.standard_normal(vectors.shape[1]).astype(np.float32)
        vectors[i] /= np.linalg.norm(vectors[i])
    return replace(data, chunks=chunks, vectors={EMBEDDER: vectors})


def timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args)
    return out, round(time.perf_counter() - start, 2)


def percentiles(samples: list[float]) -> dict:
    ms = np.array(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "n": len(samples)}


def reader(dsn: str, threshold: int, queries: np.ndarray, k: int, threads: int, out: multiprocessing.Queue) -> None:
    """A fresh process, as an app instance: load, then ``threads`` concurrent searchers."""
    store = PgStore(dsn, hnsw_threshold=threshold, pool_size=threads)
    index, load_s = timed(store.load)
    dense = index.dense[EMBEDDER]
    dense.ef_search = 256
    latencies: list[float] = []
    found: list[np.ndarray] = [np.zeros(0)] * len(queries)

    def search(part: range) -> None:
        for i in part:
            start = time.perf_counter()
            found[i] = dense.search(queries[i], k)[0]
            latencies.append(time.perf_counter() - start)

    workers = [threading.Thread(target=search, args=(range(t, len(queries), threads),)) for t in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    sweep = {}
    for ef in (64, 256, 1000):  # recall against exact search, one query at a time
        dense.ef_search = ef
        sweep[ef] = [dense.search(q, k)[0].tolist() for q in queries[:200]]
    bm25_start = time.perf_counter()
    for q in range(20):
        index.bm25.get_scores([f"w{q}", f"w{q + 100}", "w5000"])
    out.put({"dense": type(dense).__name__, "load_s": load_s, "rss_mb": resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss // 1024, "search": percentiles(latencies),
        "queries_per_s": round(len(queries) / wall, 1), "bm25_ms": round((time.perf_counter() - bm25_start) * 50, 2),
        "found": [f.tolist() for f in found], "sweep": sweep})
    store.close()


def in_process(*args: object) -> dict:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=reader, args=(*args, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def recall(found: list[list[int]], vectors: np.ndarray, queries: np.ndarray, k: int) -> float:
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :k]
    return round(float(np.mean([len(set(f) & set(e.tolist())) / k for f, e in zip(found, exact, strict=True)])), 4)


def faiss_recall(vectors: np.ndarray, queries: np.ndarray, k: int) -> dict:
    """The folder store's HNSW (same M and efConstruction) on the same vectors, for comparison."""
    from rag.store.dense import HnswDense

    index, build_s = timed(HnswDense.build, vectors)
    out: dict = {"build_s": build_s}
    for ef in (64, 256, 1000):
        index.index.hnsw.efSearch = ef
        out[ef] = recall([index.search(q, k)[0].tolist() for q in queries], vectors, queries, k)
    return out


def run(dsn: str, n_chunks: int, dim: int, n_queries: int, k: int, threads: int) -> dict:
    data, synth_s = timed(synthetic, n_chunks, dim)
    rng = np.random.default_rng(1)
    vectors = data.vectors[EMBEDDER]
    queries = vectors[rng.integers(0, n_chunks, n_queries)] + 0.3 * rng.standard_normal((n_queries, dim),
                                                                                         dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact_store, hnsw_threshold = PgStore(dsn, hnsw_threshold=n_chunks + 1), min(50_000, n_chunks)
    report: dict = {"chunks": n_chunks, "dim": dim, "synthesis_s": synth_s}
    _, report["commit_full_copy_s"] = timed(exact_store.commit, data)
    report["exact_reader"] = in_process(dsn, n_chunks + 1, queries, k, threads)
    report["exact_reader"]["recall@10"] = recall(report["exact_reader"].pop("found"), vectors, queries, k)
    report["exact_reader"].pop("sweep")
    hnsw_store = PgStore(dsn, hnsw_threshold=hnsw_threshold)
    _, report["commit_unchanged_plus_hnsw_build_s"] = timed(hnsw_store.commit, data)
    report["hnsw_reader"] = in_process(dsn, hnsw_threshold, queries, k, threads)
    report["hnsw_reader"]["recall@10"] = recall(report["hnsw_reader"].pop("found"), vectors, queries, k)
    report["hnsw_reader"]["recall@10_by_ef_search"] = {
        ef: recall(found, vectors, queries[:200], k) for ef, found in report["hnsw_reader"].pop("sweep").items()}
    report["faiss_recall@10_by_ef_search"] = faiss_recall(vectors, queries[:200], k)
    changed = edited(data, 0.01, 2)
    _, report["commit_1pct_changed_hnsw_s"] = timed(hnsw_store.commit, changed)
    _, report["previous_s"] = timed(hnsw_store.previous)
    samples = []
    for _ in range(50):
        start = time.perf_counter()
        hnsw_store.current()
        samples.append(time.perf_counter() - start)
    report["current"] = percentiles(samples)
    exact_store.close()
    hnsw_store.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    if args.dsn:
        print(json.dumps(run(args.dsn, args.chunks, args.dim, args.queries, 10, args.threads), indent=1))
        return
    from tests.pg_server import PgCluster

    root = Path(tempfile.mkdtemp(prefix="rag-pg-bench-"))
    cluster = PgCluster(root)
    try:
        cluster.init()
        cluster.start()
        dsn = cluster.dsn(cluster.new_database())
        print(json.dumps(run(dsn, args.chunks, args.dim, args.queries, 10, args.threads), indent=1))
    finally:
        with contextlib.suppress(RuntimeError):  # never started
            cluster.stop("fast")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
