"""The PostgreSQL store side by side with the folder (FAISS) store, in one `rag bench` run.

Given a server (``rag bench --pg-dsn DSN`` or ``RAG_STORE``: an empty scratch database), or
``rag bench --pg``: a throw-away local PostgreSQL 16 + pgvector (:mod:`rag.store.pg.local`). Two parts:

* the real notes through `rag index` on each store: full build, one note added (the same note as
  :mod:`rag.bench.notes` adds), then warm hybrid search in a fresh process, whose rankings must be
  the same on both stores;
* one synthetic size (:mod:`rag.bench.scale`, proxy vectors): built once with the real builder into
  the folder store, the same generation then written to Postgres; per store a fresh reading process
  loads it and searches with 1 and with 4 concurrent reader threads. Query vectors are computed
  before the timing starts (embedding is the same work whichever store answers), so the latencies
  are the store's: BM25, dense search (FAISS HNSW in memory vs pgvector's HNSW in the server),
  fusion. The reading process's peak RSS is what an app instance needs.

Ratios are postgres / folder.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from pathlib import Path

import numpy as np

from rag.dsn import mask_dsn
from rag.embed.models import Models
from rag.eval.metrics import K
from rag.eval.qa import Question
from rag.eval.tables import markdown_table
from rag.ingest.corpus import read_corpus
from rag.retrieve.searcher import Searcher
from rag.service import Notes
from rag.settings import Settings
from rag.store import GenerationData, IndexUnavailable, LoadedIndex, open_store
from rag.store.dense import ExactDense
from rag.store.folder import FolderStore
from rag.store.pg.local import LocalPostgres

from .harness import dir_size_mb, in_worker, latency, log, peak_rss_mb, rss_mb, run_index, timed
from .notes import make_new_note
from .scale import SYNTH_SEED, scale_build_worker
from .search import cycled, measure_search

STORES = ("folder", "postgres")
READERS = 4
#: The throw-away server's settings: a team's server would give the vectors this much cache too.
LOCAL_SERVER = {"shared_buffers": "512MB"}


@contextmanager
def postgres_for_bench(dsn: str | None) -> Iterator[str]:
    """The DSN of an empty database: ``dsn`` (refused if it holds an index: the bench overwrites
    it), or a throw-away local server's when None. The notes-rag tables are dropped afterwards."""
    import psycopg

    from rag.store.pg.schema import drop_all
    from rag.store.pg.store import PgStore

    server: AbstractContextManager[LocalPostgres | str] = (
        LocalPostgres.running(LOCAL_SERVER, prefix="rag-bench-pg-") if dsn is None else nullcontext(dsn))
    with server as running:
        if isinstance(running, LocalPostgres):
            running.admin("CREATE DATABASE notes")
            dsn = running.dsn("notes")
        assert dsn is not None
        store = PgStore(dsn)
        if store.current() is not None:
            raise IndexUnavailable(f"{store.location} holds a notes-rag index already: give `rag bench` an empty "
                                   "scratch database (it writes and then drops its tables)")
        store.close()
        try:
            yield dsn
        finally:
            with closing(psycopg.connect(dsn, autocommit=True)) as conn, conn.transaction():
                drop_all(conn)


def database_mb(dsn: str) -> float:
    import psycopg

    with closing(psycopg.connect(dsn)) as conn:
        (size,) = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return round(size / 1e6, 2)


def rankings(searcher: Searcher, questions: Sequence[Question]) -> list[list[tuple[str, int, int]]]:
    return [[(h.entry.file, h.entry.line_start, h.entry.line_end) for h in searcher.search(q.question, k=K).hits]
            for q in questions]


def notes_search_worker(settings: Settings, questions: Sequence[Question], n_queries: int) -> dict:
    """Warm hybrid search on one store in a fresh process (as in :mod:`rag.bench.search`), and
    every question's ranking for the comparison."""
    result, searcher, _ = measure_search(settings, questions, n_queries, Models())
    result["peak_rss_mb"] = peak_rss_mb()
    result["rankings"] = rankings(searcher, questions)
    return result


def notes_on_store(local: Settings, questions: Sequence[Question], n_queries: int) -> dict:
    """`rag index` (full, then one note added) and warm search on the store ``local`` names."""
    kind = "postgres" if local.index.store else "folder"
    log(f"stores [{kind}]: full build of the notes (rag index)")
    full = run_index(local.index)
    texts, _ = read_corpus(local.index.corpus, local.index.max_note_bytes)
    name, text = make_new_note(texts)
    (local.index.corpus / name).write_text(text, encoding="utf-8")
    log(f"stores [{kind}]: built in {full.seconds:.1f}s; add one note ({len(text)} chars)")
    add = run_index(local.index)
    log(f"stores [{kind}]: warm search (worker)")
    search, _ = in_worker(notes_search_worker, local, [*questions], n_queries)
    return {"full_build": {"seconds": full.seconds, "peak_rss_mb": full.peak_rss_mb, "summary": full.last_line},
            "add_one_note": {"seconds": add.seconds, "peak_rss_mb": add.peak_rss_mb, "chars": len(text),
                             "summary": add.last_line},
            "search": search}


def write_to_postgres_worker(folder: Settings, dsn: str) -> dict:
    """The folder store's live generation written to Postgres as one commit (COPY, then HNSW
    above the threshold), timed; what the database then holds."""
    previous = FolderStore(folder.index.path).previous()
    assert previous is not None
    data = GenerationData(previous.manifest, previous.entries, previous.chunks, previous.terms, previous.vectors)
    store = open_store(folder.updated({"index.store": dsn}))
    _, seconds = timed(lambda: store.commit(data))
    store.close()
    return {"seconds": round(seconds, 2), "index_size_mb": database_mb(dsn)}


def recall_at_k(index: LoadedIndex, queries: Sequence[Mapping[str, np.ndarray]], k: int = 10) -> dict:
    """recall@k of each approximate dense index against exact search over its own vectors."""
    out = {}
    for name, dense in index.dense.items():
        if isinstance(dense, ExactDense):
            continue
        exact = ExactDense(dense.vectors(np.arange(dense.size)))
        hits = [len(set(dense.search(q[name], k)[0].tolist()) & set(exact.search(q[name], k)[0].tolist())) / k
                for q in queries]
        out[name] = {"kind": type(dense).__name__, "recall@10": round(float(np.mean(hits)), 4)}
    return out


def readers_worker(settings: Settings, questions: Sequence[Question], n_queries: int, readers: int) -> dict:
    """A reading process (fresh): load, then hybrid search with 1 and ``readers`` threads on
    queries embedded beforehand; peak RSS before the recall check (which fetches every vector)."""
    before = rss_mb()
    notes = Notes(settings, Models())
    index, load_s = timed(notes.index)
    loaded = rss_mb()
    searcher = notes.searcher()
    searcher.warm_up()
    prepared = {q.question: searcher.query(q.question) for q in questions}
    texts = cycled(questions, n_queries)

    def one(text: str) -> float:
        return timed(lambda: searcher.search(prepared[text], k=K))[1]

    alone = [one(t) for t in texts]
    with ThreadPoolExecutor(readers) as pool:
        together, wall = timed(lambda: list(pool.map(one, texts)))
    out = {"load_seconds": round(load_s, 2), "rss_mb_before_load": before,
           "rss_mb_added_by_load": round(loaded - before, 1), "search_ms_1_reader": latency(alone),
           f"search_ms_{readers}_readers": latency(together),
           f"queries_per_s_{readers}_readers": round(len(texts) / wall, 1), "peak_rss_mb": peak_rss_mb()}
    out["recall"] = recall_at_k(index, [q.vectors for q in prepared.values()])
    return out


def scale_on_stores(folder_notes: Settings, dsn: str, work: Path, texts: Mapping[str, str], n_entries: int,
                    questions: Sequence[Question], n_queries: int) -> dict:
    """One synthetic size on both stores (see the module doc)."""
    folder = folder_notes.updated({"index.corpus": work / f"stores-synth-{n_entries}",
                                   "index.path": work / f"stores-synth-index-{n_entries}"})
    log(f"stores, scale {n_entries}: generate + build into the folder store (worker)")
    build, _ = in_worker(scale_build_worker, folder, dict(texts), folder_notes, n_entries, SYNTH_SEED)
    write = {"folder": {"seconds": build["stages_seconds"]["commit (BM25, dense index, write, checksums)"],
                        "index_size_mb": build["index_size_mb"]}}
    log(f"stores, scale {n_entries}: the same generation written to {mask_dsn(dsn)} (worker)")
    write["postgres"], _ = in_worker(write_to_postgres_worker, folder, dsn)
    read = {}
    for kind, local in (("folder", folder), ("postgres", folder.updated({"index.store": dsn}))):
        log(f"stores, scale {n_entries}: reading process on the {kind} store, {READERS} readers (worker)")
        read[kind], _ = in_worker(readers_worker, local, [*questions], n_queries, READERS)
    shutil.rmtree(folder.index.path, ignore_errors=True)
    shutil.rmtree(folder.index.corpus, ignore_errors=True)
    return {"entries": build["entries"], "chunks": build["chunks"], "write": write, "read": read}


def _ratio(pg: float | None, folder: float | None) -> float | None:
    return round(pg / folder, 2) if pg is not None and folder else None


def store_ratios(result: dict) -> dict:
    """postgres / folder for each measured quantity (below 1: Postgres is faster or smaller)."""
    n, out = result["notes"], {}
    pairs = {"notes full build s": ("full_build", "seconds"), "notes add one note s": ("add_one_note", "seconds")}
    for label, (step, key) in pairs.items():
        out[label] = _ratio(n["postgres"][step][key], n["folder"][step][key])
    pg_ms, folder_ms = n["postgres"]["search"]["search_ms"], n["folder"]["search"]["search_ms"]
    for p in ("p50", "p95"):
        out[f"notes search {p}"] = _ratio(pg_ms[p], folder_ms[p])
    if s := result.get("scale"):
        w, r = s["write"], s["read"]
        out["scale write s"] = _ratio(w["postgres"]["seconds"], w["folder"]["seconds"])
        out["scale index size"] = _ratio(w["postgres"]["index_size_mb"], w["folder"]["index_size_mb"])
        for key in ("load_seconds", "rss_mb_added_by_load", "peak_rss_mb", f"queries_per_s_{READERS}_readers"):
            out[f"scale {key}"] = _ratio(r["postgres"][key], r["folder"][key])
        for key in ("search_ms_1_reader", f"search_ms_{READERS}_readers"):
            for p in ("p50", "p95"):
                out[f"scale {key} {p}"] = _ratio(r["postgres"][key][p], r["folder"][key][p])
    return out


def bench_stores(settings: Settings, work: Path, questions: Sequence[Question], n_queries: int,
                 n_entries: int | None, dsn: str | None) -> dict:
    """The whole comparison with ``settings``' embedders; ``dsn`` None: a throw-away local server."""
    with postgres_for_bench(dsn) as pg_dsn:
        location = mask_dsn(pg_dsn)
        log(f"stores: folder vs {'a throw-away local PostgreSQL' if dsn is None else location}")
        stores: dict[str, Settings] = {}
        notes: dict[str, dict] = {}
        for kind in STORES:
            local = settings.updated({"index.corpus": work / f"stores-corpus-{kind}",
                                      "index.path": work / f"stores-index-{kind}",
                                      "index.store": pg_dsn if kind == "postgres" else None})
            shutil.copytree(settings.index.corpus, local.index.corpus)
            stores[kind], notes[kind] = local, notes_on_store(local, questions, n_queries)
        folder_rankings, pg_rankings = (notes[k]["search"].pop("rankings") for k in STORES)
        notes["same_rankings"] = sum(a == b for a, b in zip(folder_rankings, pg_rankings, strict=True))
        notes["questions"] = len(questions)
        notes["folder"]["index_size_mb"] = dir_size_mb(stores["folder"].index.path)
        notes["postgres"]["index_size_mb"] = database_mb(pg_dsn)
        result = {"server": "local (pgserver), " + ", ".join(f"{k}={v}" for k, v in LOCAL_SERVER.items())
                  if dsn is None else location, "embedders": list(settings.index.embedders), "notes": notes}
        if n_entries:
            texts, _ = read_corpus(settings.index.corpus, settings.index.max_note_bytes)
            result["scale"] = scale_on_stores(stores["folder"], pg_dsn, work, texts, n_entries, questions, n_queries)
    result["ratios"] = store_ratios(result)
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return result


def _ms(stats: dict) -> str:
    return f"{stats['p50']:.1f} / {stats['p95']:.1f}"


def stores_section(s: dict) -> list[str]:
    """bench.md's section: one table, the two stores side by side, and the ratio."""
    n, r = s["notes"], s["ratios"]
    rows = [["notes: full build (`rag index`) s", n["folder"]["full_build"]["seconds"],
             n["postgres"]["full_build"]["seconds"], r["notes full build s"]],
            ["notes: add one note s", n["folder"]["add_one_note"]["seconds"], n["postgres"]["add_one_note"]["seconds"],
             r["notes add one note s"]],
            ["notes: warm search p50 / p95 ms", _ms(n["folder"]["search"]["search_ms"]),
             _ms(n["postgres"]["search"]["search_ms"]), f"{r['notes search p50']} / {r['notes search p95']}"],
            ["notes: index MB", n["folder"]["index_size_mb"], n["postgres"]["index_size_mb"], ""]]
    if sc := s.get("scale"):
        w, rd, size = sc["write"], sc["read"], f"{sc['entries']:,}"
        rows += [[f"{size}: write the index s", w["folder"]["seconds"], w["postgres"]["seconds"], r["scale write s"]],
                 [f"{size}: index MB", w["folder"]["index_size_mb"], w["postgres"]["index_size_mb"],
                  r["scale index size"]],
                 [f"{size}: load s (reading process)", rd["folder"]["load_seconds"], rd["postgres"]["load_seconds"],
                  r["scale load_seconds"]]]
        for key in ("search_ms_1_reader", f"search_ms_{READERS}_readers"):
            rows.append([f"{size}: search p50 / p95 ms, {key.split('_', 2)[2].replace('_', ' ')}",
                         _ms(rd["folder"][key]), _ms(rd["postgres"][key]),
                         f"{r[f'scale {key} p50']} / {r[f'scale {key} p95']}"])
        q = f"queries_per_s_{READERS}_readers"
        rows += [[f"{size}: queries/s, {READERS} readers", rd["folder"][q], rd["postgres"][q], r[f"scale {q}"]],
                 [f"{size}: RSS added by the load MB", rd["folder"]["rss_mb_added_by_load"],
                  rd["postgres"]["rss_mb_added_by_load"], r["scale rss_mb_added_by_load"]],
                 [f"{size}: reading process peak RSS MB", rd["folder"]["peak_rss_mb"], rd["postgres"]["peak_rss_mb"],
                  r["scale peak_rss_mb"]],
                 *([f"{size}: dense recall@10 vs exact, {name}", rd["folder"]["recall"].get(name, {}).get("recall@10"),
                    v["recall@10"], ""] for name, v in rd["postgres"]["recall"].items())]
    return ["\n## PostgreSQL store vs the folder store\n",
            f"Server: {s['server']}; embedders {', '.join(s['embedders'])}. Builds are `rag index` processes; "
            "searches run in a fresh reading process per store, after warm-up; at scale the query vectors are "
            "computed before the timing (the store is what is compared), and both stores hold the same "
            f"generation. Rankings on the notes: {n['same_rankings']} of {n['questions']} questions identical.\n",
            markdown_table(["measure", "folder (FAISS)", "PostgreSQL", "postgres / folder"], rows)]
