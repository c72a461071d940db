"""Scale: a synthetic corpus of 10k–100k entries through the real builder, store and searcher.

Everything but embedding runs for real at full size: writing the notes, the builder (reading,
segmenting, chunking, jieba, BM25, the dense index, HNSW above the store's threshold, commit),
loading the index in a fresh process (its peak RSS is the memory a server needs), and hybrid
search with real query embeddings. Passage vectors are proxies (:mod:`rag.bench.proxy`);
embedding throughput is measured on a sample of the synthetic chunks and extrapolated.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rag.build.builder import build_index
from rag.embed.embedding import BATCH, runs_concurrently
from rag.embed.models import Models
from rag.eval.qa import Question
from rag.settings import Settings
from rag.store import GenerationData, IndexStore, LoadedIndex, open_store
from rag.store.dense import ExactDense, HnswDense

from .harness import dir_size_mb, in_worker, log, peak_rss_mb, rss_mb, timed
from .proxy import ProxyEmbedder, ProxyModels
from .search import index_loaded, measure_search
from .synth import generate

SYNTH_SEED = 7
EMBED_SAMPLE = 32  # synthetic chunks embedded for real, per embedder, to measure throughput
EF_SEARCH_SWEEP = (16, 32, 64, 128, 256)


def time_commits(store: IndexStore) -> list[float]:
    """Seconds of each ``store.commit`` from now on (writing BM25, the dense index, checksums): the
    builder reports progress only while embedding, so the store's share is timed at the store."""
    spent: list[float] = []
    commit = store.commit

    def timed_commit(data: GenerationData) -> str:
        generation, seconds = timed(lambda: commit(data))
        spent.append(seconds)
        return generation

    store.commit = timed_commit  # type: ignore[method-assign]
    return spent


def scale_build_worker(settings: Settings, texts: Mapping[str, str], source: Settings, n_entries: int,
                       seed: int) -> dict:
    """Write ``n_entries`` synthetic entries (from ``texts``) into ``settings.index.corpus`` and build
    their index with the real builder and proxy vectors from the ``source`` index."""
    synth, gen_s = timed(lambda: generate(texts, n_entries, seed=seed))
    _, write_s = timed(lambda: synth.write(settings.index.corpus))
    real = open_store(source).load()
    titles = synth.by_title()
    models = Models()
    proxies = {name: ProxyEmbedder(models.embedder(name), titles, real.chunks,
                                   real.dense[name].vectors(np.arange(real.dense[name].size)), seed)
               for name in settings.index.embedders}
    del real, titles
    store = open_store(settings)
    commits = time_commits(store)
    rss_before = peak_rss_mb()
    report, seconds = timed(lambda: build_index(settings.index, store, ProxyModels(proxies)))
    proxy_s = sum(p.seconds for p in proxies.values())
    without = seconds - proxy_s
    stages = {"read, segment, chunk, tokenize, vector cache": seconds - proxy_s - sum(commits),
              "proxy vectors (stand-in for embedding)": proxy_s,
              "commit (BM25, dense index, write, checksums)": sum(commits)}
    return {"entries": report.entries, "chunks": report.chunks, "notes": report.notes,
            "corpus_mb": round(sum(len(t.encode("utf-8")) for t in synth.notes.values()) / 1e6, 1),
            "generate_seconds": round(gen_s, 2), "write_notes_seconds": round(write_s, 2),
            "build_seconds": round(seconds, 2), "proxy_vector_seconds": round(proxy_s, 2),
            "build_seconds_without_embedding": round(without, 2),
            "chunks_per_s_without_embedding": round(report.chunks / without, 1),
            "stages_seconds": {k: round(v, 2) for k, v in stages.items()},
            "unmatched_proxy_texts": sum(p.unmatched for p in proxies.values()),
            "peak_rss_mb_before_build": rss_before, "peak_rss_mb": peak_rss_mb(),
            "index_size_mb": dir_size_mb(settings.index.path)}


def load_worker(settings: Settings) -> dict:
    """Only load the index (fresh process): the memory any reader of it needs at least."""
    before = rss_mb()  # the interpreter and libraries, before any index data
    index, seconds = timed(open_store(settings).load)
    return {**index_loaded(index), "seconds": round(seconds, 2), "rss_mb_before": before, "rss_mb": rss_mb(),
            "peak_rss_mb": peak_rss_mb()}


def hnsw_recall(index: LoadedIndex, queries: Mapping[str, np.ndarray], k: int = 10) -> dict:
    """recall@k of each HNSW index against exact search over the same stored vectors, across an
    efSearch sweep (restored afterwards), with the per-query time at each setting."""
    out = {}
    for name, dense in index.dense.items():
        if not isinstance(dense, HnswDense) or name not in queries:
            continue
        exact = ExactDense(dense.vectors(np.arange(dense.size)))
        truth = [set(exact.search(q, k)[0].tolist()) for q in queries[name]]
        hnsw = dense.index.hnsw  # type: ignore[attr-defined]
        default_ef = hnsw.efSearch
        sweep = {}
        for ef in sorted({*EF_SEARCH_SWEEP, default_ef}):
            hnsw.efSearch = ef
            got, s = timed(lambda d=dense, qs=queries[name]: [set(d.search(q, k)[0].tolist()) for q in qs])
            rec = np.mean([len(g & t) / k for g, t in zip(got, truth, strict=True)])
            sweep[ef] = {"recall@10": round(float(rec), 4), "ms_per_query": round(s * 1000 / len(got), 3)}
        hnsw.efSearch = default_ef
        out[name] = {"M": hnsw.nb_neighbors(1), "efConstruction": hnsw.efConstruction, "efSearch": default_ef,
                     "recall@10": sweep[default_ef]["recall@10"], "queries": len(truth), "sweep": sweep}
    return out


def embedding_sample(index: LoadedIndex, models: Models, n: int) -> dict:
    """Real embedding throughput on ``n`` synthetic chunks (in the builder's batches), and how close
    the stored proxy vectors are to the real ones (mean cosine)."""
    ids = np.unique(np.linspace(0, len(index.chunks) - 1, n).astype(np.int64))
    texts = [index.chunks[i].embed_text for i in ids]
    out = {}
    for name, dense in index.dense.items():
        embedder = models.embedder(name)
        embedder.embed_passages(texts[:2])  # the model loads outside the timing
        vecs, seconds = timed(lambda e=embedder: np.concatenate(
            [e.embed_passages(texts[i:i + BATCH]) for i in range(0, len(texts), BATCH)]))
        out[name] = {"sample": len(texts), "seconds": round(seconds, 2), "chunks_per_s": round(len(texts) / seconds, 2),
                     "concurrent": runs_concurrently(embedder),
                     "proxy_cosine_mean": round(float(np.mean(np.sum(vecs * dense.vectors(ids), axis=1))), 3)}
    return out


def scale_search_worker(settings: Settings, questions: Sequence[Question], n_queries: int, sample: int) -> dict:
    """Search the synthetic index as `rag search` would (fresh process), then check HNSW recall and
    (when ``sample``) real embedding throughput."""
    models = Models()
    result, searcher, vectors = measure_search(settings, questions, n_queries, models)
    result["peak_rss_mb"] = peak_rss_mb()
    result["hnsw"] = hnsw_recall(searcher.index, vectors)
    if sample:
        result["embedding_sample"] = embedding_sample(searcher.index, models, sample)
    return result


def extrapolate(build: dict, sample: Mapping[str, dict], cores: int) -> dict:
    """Full build time at this size: the measured build without embedding, plus embedding estimated
    from the sampled throughput (each embedder on one core) as the builder schedules it: all at once,
    one that runs concurrently also on the cores the others leave idle, none faster than ``cores``
    allow."""
    per = {name: round(build["chunks"] / s["chunks_per_s"], 0) for name, s in sample.items()}
    pinned = [per[name] for name, s in sample.items() if not s.get("concurrent")]
    embedding = max(max(pinned, default=0.0), sum(per.values()) / max(1, cores))
    return {"embedding_seconds_estimated": per,
            "full_build_seconds_estimated": round(build["build_seconds_without_embedding"] + embedding, 0),
            "note": "embedding is extrapolated from a sample, not measured at this size"}


def bench_scale(source: Settings, work: Path, texts: Mapping[str, str], n_entries: int,
                questions: Sequence[Question], n_queries: int, sample: int) -> dict:
    """One synthetic size, with the settings and proxy vectors of the ``source`` index: build
    (worker), load alone (worker), search (worker); then clean up."""
    local = source.updated({"index.corpus": work / f"synth-{n_entries}",
                            "index.path": work / f"synth-index-{n_entries}"})
    log(f"scale {n_entries}: generate + build with proxy vectors (worker)")
    build, wall = in_worker(scale_build_worker, local, dict(texts), source, n_entries, SYNTH_SEED)
    log(f"scale {n_entries}: built in {wall:.0f}s; load alone (worker)")
    load, _ = in_worker(load_worker, local)
    log(f"scale {n_entries}: loaded in {load['seconds']:.1f}s, peak RSS {load['peak_rss_mb']:.0f} MB; search (worker)")
    search, _ = in_worker(scale_search_worker, local, list(questions), n_queries, sample)
    shutil.rmtree(local.index.path, ignore_errors=True)
    shutil.rmtree(local.index.corpus, ignore_errors=True)
    return {"build": {**build, "worker_seconds": round(wall, 2)}, "load": load, "search": search}
