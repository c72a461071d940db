"""`rag bench`: speed and scale, measured side by side in one run (written to eval/results/bench.*).

Every heavy step runs in its own process (the `rag` CLI, or a spawned worker) so that each peak
RSS belongs to one step and no measurement inherits another's warm caches. The real notes are
copied to a temporary folder and indexed there; the user's corpus and index are never touched.

Three parts:

* notes: the five real notes through the CLI (full build, add one note, nothing to do) and
  in-process warm search / offline-answer latency with a per-stage breakdown;
* baseline: LangChain's default recipe (RecursiveCharacterTextSplitter 1000/200 chars over whole
  files, one embedder, FAISS flat, full rebuild on every change), scored at entry level by mapping
  each retrieved chunk to the entries its span overlaps;
* scale: synthetic corpora (``rag.synth``) of 10k and 100k entries. Embedding them for real would
  take hours on two cores, so embedding throughput is measured on a sample and extrapolated, and
  the index gets proxy vectors: each synthetic entry's vector is the normalized mean of the real
  vectors of the chunks its sentences come from, plus a little noise. Everything else (segmenting,
  chunking, jieba, BM25, FAISS/HNSW, writing, loading, hybrid search with real query embeddings)
  is the real code at full size.
"""

from __future__ import annotations

import bisect
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from . import lexical
from .chunking import Chunk, chunk_entries
from .config import Config
from .corpus import decode_note, file_hash, find_notes, read_bytes
from .embedding import get_embedder
from .evaluation import Question, Span, hit_at, load_qa, percentiles, reciprocal_rank, relevance
from .index import HNSW_THRESHOLD, BuildReport, Index, settings_of, write_generation
from .notes import Entry, parse_heading, split_entries, split_lines
from .retrieve import Retriever, query_vector
from .synth import SynthCorpus, generate

DEFAULT_SCALES = [10_000, 100_000]
#: MiniLM (English only) is a second, optional baseline: `run_bench(..., baselines=(..., "minilm"))`.
DEFAULT_BASELINES = ("e5-small-q4",)
QUERIES = 200
LC_CHUNK_SIZE, LC_CHUNK_OVERLAP = 1000, 200  # RecursiveCharacterTextSplitter's documented defaults
SYNTH_SEED = 7
SYNTH_NOISE = 0.1  # norm of the noise added to each proxy vector (relative to a unit vector)
EMBED_SAMPLE = 32  # synthetic chunks embedded for real, per embedder, to measure throughput
EF_SEARCH_SWEEP = (16, 32, 64, 128, 256)
RECALL_TARGET = 0.95
TARGETS = {"search_p50_ms_notes": 50.0, "search_p95_ms_100k": 100.0, "add_note_share_of_full_build": 0.30}


def log(message: str) -> None:
    load = os.getloadavg()[0]
    print(f"[bench {time.strftime('%H:%M:%S')} load {load:.1f}] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """This process's peak resident set (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def latency(samples_s: Sequence[float]) -> dict:
    """p50/p95/mean in milliseconds over ``n`` samples."""
    ms = [s * 1000 for s in samples_s]
    out = {k: round(v, 2) for k, v in percentiles(ms).items() if v is not None}
    return {**out, "mean": round(float(np.mean(ms)), 2) if ms else None, "n": len(ms)}


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def timed_cold(fn: Callable[[], object]) -> tuple[object, float]:
    """Timed with the query-embedding cache emptied first: each repeat of a question pays for
    its embedding, as a new question would (otherwise cycled questions time a cache hit)."""
    query_vector.cache_clear()
    return timed(fn)


def in_worker(fn: Callable[..., dict], *args: object) -> tuple[dict, float]:
    """Run ``fn(*args)`` in a fresh spawned process: (its result, wall time including start-up)."""
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        result = pool.submit(fn, *args).result()
    return result, time.perf_counter() - start


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stderr: str
    load_before: float  # 1-minute load average when it started: the machine is shared


def run_cli(args: Sequence[str], cwd: Path) -> Run:
    """One `rag` invocation as a user runs it (interpreter start included), with its own peak RSS."""
    load = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli", *args], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if proc.returncode:
        raise RuntimeError(f"rag {' '.join(args)} failed ({proc.returncode}): {stderr.strip()[-500:]}")
    return Run(seconds, usage.ru_maxrss / 1024, proc.returncode, stderr, load)


def load_questions(paths: Sequence[Path] | None = None) -> list[Question]:
    """The canned questions (default eval/qa.jsonl): the same queries the quality numbers use."""
    return [q for p in (paths or [Path("eval/qa.jsonl")]) for q in load_qa(p)]


def cycled(questions: Sequence[Question], n: int) -> list[str]:
    return [questions[i % len(questions)].question for i in range(max(n, len(questions)))]


def quality(rankings: Sequence[Sequence[Span]], questions: Sequence[Question]) -> dict:
    """Entry-level hit@5 and MRR@10 over the questions the notes cover (as `rag eval` counts)."""
    rows = [relevance(list(r)[:10], q.gold) for r, q in zip(rankings, questions, strict=True) if q.covered]
    return {"hit@5": round(float(np.mean([hit_at(r, 5) for r in rows])), 4),
            "mrr@10": round(float(np.mean([reciprocal_rank(r, 10) for r in rows])), 4), "n": len(rows)}


def read_notes(corpus: Path) -> dict[str, str]:
    """rel → text, line endings normalized so character offsets and line numbers agree."""
    notes, _ = find_notes(corpus)
    return {n.rel: "\n".join(split_lines(decode_note(read_bytes(n, 1 << 30)))) for n in notes}


# ---------------------------------------------------------------------------- LangChain baseline

@dataclass(frozen=True)
class SpanChunk:
    """A baseline chunk: a character span of a whole file, and the lines it covers."""

    file: str
    start: int
    text: str
    line_start: int
    line_end: int


def langchain_split(text: str, file: str) -> list[SpanChunk]:
    """The default recipe: RecursiveCharacterTextSplitter(1000, 200) over the whole file."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=LC_CHUNK_SIZE, chunk_overlap=LC_CHUNK_OVERLAP,
                                              add_start_index=True)
    line_starts = [0, *(i + 1 for i, ch in enumerate(text) if ch == "\n")]
    chunks = []
    for doc in splitter.create_documents([text]):
        start = doc.metadata["start_index"]
        if start < 0:
            start = max(0, text.find(doc.page_content))
        end = start + max(len(doc.page_content), 1) - 1
        chunks.append(SpanChunk(file, start, doc.page_content, bisect.bisect_right(line_starts, start),
                                bisect.bisect_right(line_starts, end)))
    return chunks


def chunk_to_entries(chunk: SpanChunk, entries: Sequence[Entry]) -> list[Entry]:
    """The entries of the chunk's file whose line spans overlap the chunk's lines, in file order."""
    return [e for e in entries if e.file == chunk.file
            and e.line_start <= chunk.line_end and chunk.line_start <= e.line_end]


def entry_ranking(chunk_ids: Sequence[int], chunks: Sequence[SpanChunk],
                  entries: Sequence[Entry]) -> list[Span]:
    """Ranked chunks → ranked distinct entries: each chunk contributes the entries it overlaps.

    Generous to the baseline: one 1000-character chunk spanning several short entries puts all
    of them in the ranking at once.
    """
    seen: set[str] = set()
    out = []
    for ci in chunk_ids:
        for e in chunk_to_entries(chunks[ci], entries):
            if e.id not in seen:
                seen.add(e.id)
                out.append(Span(e.file, e.line_start, e.line_end))
    return out


class LangChainBaseline:
    """Whole files → 1000/200 character chunks → one embedder → FAISS IndexFlatIP; no cache."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.embedder = get_embedder(spec)
        self.chunks: list[SpanChunk] = []
        self.index = None

    def build(self, corpus: Path, out_dir: Path) -> None:
        """A full rebuild, as the recipe does on any change: read, split, embed all, index, save."""
        import faiss

        self.chunks = [c for file, text in read_notes(corpus).items() for c in langchain_split(text, file)]
        vectors = self.embedder.embed_passages([c.text for c in self.chunks])
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)
        out_dir.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(out_dir / "index.faiss"))
        with open(out_dir / "chunks.jsonl", "w", encoding="utf-8") as f:
            for c in self.chunks:
                f.write(json.dumps({"file": c.file, "start": c.start, "text": c.text}, ensure_ascii=False) + "\n")

    def search(self, question: str, n: int = 10) -> list[int]:
        query = self.embedder.embed_query(question).reshape(1, -1)
        _, idx = self.index.search(query, min(n, self.index.ntotal))
        return [int(i) for i in idx[0] if i >= 0]


def baseline_worker(spec: str, corpus: Path, out_dir: Path, questions: Sequence[Question] | None) -> dict:
    """Build the baseline (in a fresh process); with questions, also score and time its search."""
    baseline = LangChainBaseline(spec)
    _, build_s = timed(lambda: baseline.build(corpus, out_dir))
    result = {"embedder": spec, "chunks": len(baseline.chunks), "build_seconds_in_process": round(build_s, 2)}
    if questions:
        entries = [e for file, text in read_notes(corpus).items() for e in split_entries(text, file)]
        rankings, times = [], []
        baseline.search("warm up 预热")
        for q in questions:
            ids, s = timed(lambda q=q: baseline.search(q.question, n=10))
            times.append(s)
            rankings.append(entry_ranking(ids, baseline.chunks, entries))
        result["quality"] = quality(rankings, questions)
        result["search_ms"] = latency(times)
        result["entries_per_chunk"] = round(float(np.mean(
            [len(chunk_to_entries(c, entries)) for c in baseline.chunks])), 2)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


# ---------------------------------------------------------------------------- the five notes

def make_new_note(corpus: Path) -> tuple[str, str]:
    """A realistic "add one note": the leading entries of the largest note, about the size of
    the median note, with every heading marked so its chunks are new text (the embedding cache
    is keyed by chunk content, so an unmarked copy would cost no embedding at all)."""
    notes = read_notes(corpus)
    sizes = sorted(len(t) for t in notes.values())
    median = sizes[len(sizes) // 2]
    seed_file = max(notes, key=lambda f: len(notes[f]))
    lines = split_lines(notes[seed_file])
    cut = len(lines)
    for e in split_entries(notes[seed_file], seed_file):
        if len("\n".join(lines[:e.line_start - 1])) >= median:
            cut = e.line_start - 1
            break
    marked = [line + " (bench copy)" if parse_heading(line) else line for line in lines[:cut]]
    return f"zz_bench_new_{Path(seed_file).stem}.md", "\n".join(marked) + "\n"


def stage_breakdown(retriever: Retriever, questions: Sequence[str]) -> tuple[dict, dict[str, np.ndarray]]:
    """Per-query cost of each stage of a hybrid search, timed on its own; and the query vectors."""
    index, n = retriever.index, retriever.config.candidates
    times: dict[str, list[float]] = {"tokenize (jieba)": [], "bm25 get_scores": []}
    vectors: dict[str, list[np.ndarray]] = {spec: [] for spec in index.dense}
    for q in questions:
        tokens, s = timed(lambda q=q: lexical.tokenize(q))
        times["tokenize (jieba)"].append(s)
        if index.bm25 is not None:
            times["bm25 get_scores"].append(timed(lambda t=tokens: index.bm25.get_scores(t))[1])
        for spec, dense in index.dense.items():
            vec, s = timed(lambda q=q, spec=spec: get_embedder(spec).embed_query(q))
            times.setdefault(f"embed query ({spec})", []).append(s)
            vectors[spec].append(vec)
            _, s = timed(lambda v=vec, d=dense: d.search(v.reshape(1, -1), min(n, d.ntotal)))
            times.setdefault(f"faiss search ({spec}, {type(dense).__name__})", []).append(s)
    return ({stage: latency(samples) for stage, samples in times.items()},
            {spec: np.stack(v).astype(np.float32) for spec, v in vectors.items() if v})


def measure_search(config: Config, questions: Sequence[Question], n_queries: int, answer: bool,
                   score: bool) -> tuple[dict, Index, dict[str, np.ndarray]]:
    """Load an index, warm up, then time ``n_queries`` searches (questions cycled); the stage
    breakdown, quality and offline answers go once over the distinct questions. Also returns the
    index and the questions' query vectors."""
    index, load_s = timed(lambda: Index.load(config.index))
    retriever = Retriever(index, config)
    _, warm_s = timed(retriever.warm_up)
    queries = cycled(questions, n_queries)
    times = [timed_cold(lambda q=q: retriever.search(q, k=10))[1] for q in queries]
    distinct = [q.question for q in questions]
    stages, vectors = stage_breakdown(retriever, distinct)
    result: dict = {"chunks": len(index.chunks), "entries": len(index.entries),
                    "load_seconds": round(load_s, 2), "warm_up_seconds": round(warm_s, 2),
                    "search_ms": latency(times), "stages_ms": stages}
    if score:
        result["quality"] = {}
        for name, sources in (("hybrid", None), *((s, (s,)) for s in retriever.sources)):
            rankings = [[Span(h.entry.file, h.entry.line_start, h.entry.line_end)
                         for h in retriever.search(q.question, k=10, sources=sources)] for q in questions]
            result["quality"][name] = quality(rankings, questions)
    if answer:
        try:
            from .answer import answer_question
        except ImportError as exc:
            result["answer_ms"] = {"unavailable": f"rag.answer not importable ({exc})"}
        else:
            answer_question(distinct[0], retriever, config, use_llm=False)
            times = [timed_cold(lambda q=q: answer_question(q, retriever, config, use_llm=False))[1]
                     for q in distinct]
            result["answer_ms"] = latency(times)
    return result, index, vectors


def search_worker(config: Config, questions: Sequence[Question], n_queries: int) -> dict:
    """The real notes' index in a fresh process: latency, stages, quality, offline answers."""
    result, _, _ = measure_search(config, questions, n_queries, answer=True, score=True)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def bench_notes(config: Config, work: Path, questions: Sequence[Question], n_queries: int) -> dict:
    """The real notes through the CLI and in-process search; leaves a 6th note in ``work/corpus``."""
    corpus, index_dir = work / "corpus", work / "index"
    shutil.copytree(config.corpus, corpus)
    local = config.with_(corpus=corpus, index=index_dir)
    cli = ["index", "--corpus", str(corpus), "--index", str(index_dir), "--embedders", ",".join(config.embedders)]
    cwd = Path.cwd()
    log(f"notes: full build with {', '.join(config.embedders) or 'BM25 only'} (CLI)")
    full = run_cli(cli, cwd)
    gen = Index.load(index_dir).manifest["counts"]
    log(f"notes: full build {full.seconds:.1f}s; nothing-to-do run")
    noop = run_cli(cli, cwd)
    size_mb = dir_size_mb(index_dir)
    log("notes: warm search latency, stages, quality, offline answers (worker)")
    search, _ = in_worker(search_worker, local, list(questions), n_queries)
    name, text = make_new_note(corpus)
    (corpus / name).write_text(text, encoding="utf-8")
    log(f"notes: add one note ({name}, {len(text)} chars)")
    add = run_cli(cli, cwd)
    added = Index.load(index_dir).manifest
    share = add.seconds / full.seconds
    return {
        "corpus": {"notes": gen["notes"], "entries": gen["entries"], "chunks": gen["chunks"],
                   "chars": sum(len(t) for t in read_notes(config.corpus).values()),
                   "embedders": list(config.embedders)},
        "full_build": {"seconds": round(full.seconds, 2), "chunks_per_s": round(gen["chunks"] / full.seconds, 1),
                       "peak_rss_mb": round(full.peak_rss_mb, 1), "load_before": full.load_before,
                       "summary": full.stderr.strip().splitlines()[-1]},
        "nothing_to_do": {"seconds": round(noop.seconds, 2), "peak_rss_mb": round(noop.peak_rss_mb, 1)},
        "add_one_note": {"note": name, "chars": len(text), "new_chunks": added["notes"][name]["chunks"],
                         "seconds": round(add.seconds, 2), "peak_rss_mb": round(add.peak_rss_mb, 1),
                         "load_before": add.load_before,
                         "share_of_full_build": round(share, 3), "summary": add.stderr.strip().splitlines()[-1]},
        "index_size_mb": round(size_mb, 2),
        "search": search,
    }


def bench_baseline(spec: str, work: Path, questions: Sequence[Question], notes: dict) -> dict:
    """The LangChain recipe on the five notes (scored), then its full rebuild with the sixth."""
    five = work / f"corpus5-{spec}"
    shutil.copytree(work / "corpus", five, ignore=shutil.ignore_patterns(notes["add_one_note"]["note"]))
    log(f"baseline {spec}: build + quality (worker)")
    first, first_wall = in_worker(baseline_worker, spec, five, work / f"lc-{spec}-5", list(questions))
    log(f"baseline {spec}: full rebuild after adding the note (worker)")
    rebuild, rebuild_wall = in_worker(baseline_worker, spec, work / "corpus", work / f"lc-{spec}-6", None)
    shutil.rmtree(five)
    return {**first, "build_seconds_process": round(first_wall, 2),
            "rebuild_after_add": {**rebuild, "seconds_process": round(rebuild_wall, 2)},
            "index_size_mb": round(dir_size_mb(work / f"lc-{spec}-5"), 2)}


# ---------------------------------------------------------------------------- scale

def proxy_vectors(synth: SynthCorpus, entries: Sequence[Entry], chunks: Sequence[Chunk], source: Index,
                  spec: str, seed: int) -> np.ndarray:
    """One vector per synthetic chunk: the mean of the real vectors of the chunks its entry's
    sentences come from, plus noise of norm ``SYNTH_NOISE``, normalized."""
    real = source.vectors[spec]
    spans: dict[str, list[tuple[int, int]]] = {}
    for row, c in enumerate(source.chunks):
        spans.setdefault(c.file, []).append((c.line_start, row))
    for rows in spans.values():
        rows.sort()

    def real_row(file: str, line: int) -> int:
        rows = spans[file]
        return rows[max(0, bisect.bisect_right(rows, (line, len(real))) - 1)][1]

    by_start = {(s.file, s.line_start): s for s in synth.entries}
    entry_at = {e.id: by_start[(e.file, e.line_start)] for e in entries}
    rng = np.random.default_rng(seed)
    out = np.empty((len(chunks), real.shape[1]), np.float32)
    for i, c in enumerate(chunks):
        rows = [real_row(s.file, s.line) for s in entry_at[c.entry_id].sources]
        out[i] = real[rows].mean(axis=0)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    out += rng.normal(0, SYNTH_NOISE / np.sqrt(out.shape[1]), out.shape).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def embedding_sample(chunks: Sequence[Chunk], proxies: dict[str, np.ndarray], n: int) -> dict:
    """Real embedding throughput on ``n`` synthetic chunks, in build_index's batches of 16, and
    how close the proxy vectors are to the real ones (cosine)."""
    step = np.linspace(0, len(chunks) - 1, n).astype(int)
    texts = [chunks[i].embed_text for i in step]
    out = {}
    for spec, proxy in proxies.items():
        embedder = get_embedder(spec)
        embedder.embed_passages(texts[:2])  # load the model outside the timing
        start = time.perf_counter()
        vecs = np.concatenate([embedder.embed_passages(texts[i:i + 16]) for i in range(0, n, 16)])
        seconds = time.perf_counter() - start
        out[spec] = {"sample": n, "seconds": round(seconds, 2), "chunks_per_s": round(n / seconds, 2),
                     "proxy_cosine_mean": round(float(np.mean(np.sum(vecs * proxy[step], axis=1))), 3)}
    return out


def scale_build_worker(config: Config, source_corpus: Path, source_index: Path, n_entries: int, seed: int,
                       sample: int) -> dict:
    """Generate ``n_entries`` synthetic entries from ``source_corpus`` into ``config.corpus``, then
    segment, chunk, tokenize and write their index (proxy vectors from ``source_index``)."""
    synth, gen_s = timed(lambda: generate(source_corpus, n_entries, seed=seed))
    synth.write(config.corpus)
    notes = sorted(synth.notes.items())
    entries_by_note, seg_s = timed(lambda: [split_entries(text, name) for name, text in notes])
    count = get_embedder(config.embedders[0]).count_tokens if config.embedders else None
    if count:
        count("warm up")
    chunks_by_note, chunk_s = timed(lambda: [
        chunk_entries(es, config.chunk_tokens, config.chunk_overlap, count) for es in entries_by_note])
    entries = [e for es in entries_by_note for e in es]
    chunks = [c for cs in chunks_by_note for c in cs]
    lexical.tokenize("预热")
    tokens, tok_s = timed(lambda: [lexical.tokenize(c.embed_text) for c in chunks])
    source = Index.load(source_index)
    vectors = {spec: proxy_vectors(synth, entries, chunks, source, spec, seed) for spec in config.embedders}
    meta = {name: {"sha256": file_hash(text.encode("utf-8")), "entries": len(es), "chunks": len(cs)}
            for (name, text), es, cs in zip(notes, entries_by_note, chunks_by_note, strict=True)}
    ids = {spec: get_embedder(spec).id for spec in config.embedders}
    _, write_s = timed(lambda: write_generation(config, settings_of(config), ids, meta, entries, chunks,
                                                 tokens, vectors, BuildReport()))
    stages = {"generate": gen_s, "segment": seg_s, "chunk": chunk_s, "tokenize (jieba)": tok_s,
              "write (bm25 + faiss + checksums + fsync)": write_s}
    measured = seg_s + chunk_s + tok_s + write_s
    result: dict = {"entries": len(entries), "chunks": len(chunks), "notes": len(notes),
                    "corpus_mb": round(sum(len(t.encode("utf-8")) for _, t in notes) / 1e6, 1),
                    "stages_seconds": {k: round(v, 2) for k, v in stages.items()},
                    "build_seconds_without_embedding": round(measured, 2),
                    "chunks_per_s_without_embedding": round(len(chunks) / measured, 1),
                    "dense_index": {spec: ("HNSW" if len(chunks) >= HNSW_THRESHOLD else "flat")
                                    for spec in config.embedders},
                    "peak_rss_mb": round(peak_rss_mb(), 1),
                    "index_size_mb": round(dir_size_mb(config.index), 1)}
    if sample:
        result["embedding_sample"] = embedding_sample(chunks, vectors, sample)
    return result


def hnsw_recall(index: Index, queries: dict[str, np.ndarray], k: int = 10) -> dict:
    """recall@k of each approximate dense index against exact search on the same vectors, over a
    sweep of efSearch (restored afterwards), with the per-query time at each setting."""
    import faiss

    out = {}
    for spec, dense in index.dense.items():
        hnsw = faiss.downcast_index(dense)
        if not hasattr(hnsw, "hnsw"):
            continue
        exact = faiss.IndexFlatIP(index.vectors[spec].shape[1])
        exact.add(index.vectors[spec])
        q = queries[spec]
        _, truth = exact.search(q, k)
        default_ef = hnsw.hnsw.efSearch
        sweep = {}
        for ef in sorted({*EF_SEARCH_SWEEP, default_ef}):
            hnsw.hnsw.efSearch = ef
            (_, got), s = timed(lambda h=hnsw, q=q: h.search(q, k))
            rec = np.mean([len(set(got[i]) & set(truth[i])) / k for i in range(len(q))])
            sweep[ef] = {"recall@10": round(float(rec), 4), "ms_per_query": round(s * 1000 / len(q), 3)}
        hnsw.hnsw.efSearch = default_ef
        out[spec] = {"M": hnsw.hnsw.nb_neighbors(1), "efConstruction": hnsw.hnsw.efConstruction,
                     "efSearch": default_ef, "recall@10": sweep[default_ef]["recall@10"],
                     "queries": len(q), "sweep": sweep}
    return out


def scale_search_worker(config: Config, questions: Sequence[Question], n_queries: int) -> dict:
    """Load the synthetic index (fresh process), search it as `rag search` would, check HNSW."""
    result, index, queries = measure_search(config, questions, n_queries, answer=False, score=False)
    result["hnsw"] = hnsw_recall(index, queries)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def bench_scale(config: Config, work: Path, n_entries: int, questions: Sequence[Question], n_queries: int,
                sample: int) -> dict:
    """A synthetic corpus from the real notes, with proxy vectors from their index in ``work``."""
    local = config.with_(corpus=work / f"synth-{n_entries}", index=work / f"synth-index-{n_entries}")
    log(f"scale {n_entries}: generate + build without embedding (worker)")
    build, build_wall = in_worker(scale_build_worker, local, config.corpus, work / "index",
                                  n_entries, SYNTH_SEED, sample)
    log(f"scale {n_entries}: built in {build_wall:.0f}s; load + search (worker)")
    search, _ = in_worker(scale_search_worker, local, list(questions), n_queries)
    shutil.rmtree(local.index, ignore_errors=True)
    shutil.rmtree(local.corpus, ignore_errors=True)
    return {"build": build, "search": search}


# ---------------------------------------------------------------------------- the run

def extrapolate(scale: dict, sample: dict) -> dict:
    """Full build time at this size: the measured non-embedding stages plus embedding estimated
    from the sampled throughput (one embedder after another, as build_index does)."""
    chunks = scale["build"]["chunks"]
    per = {spec: round(chunks / s["chunks_per_s"], 0) for spec, s in sample.items()}
    return {"embedding_seconds_estimated": per,
            "full_build_seconds_estimated": round(scale["build"]["build_seconds_without_embedding"]
                                                  + sum(per.values()), 0),
            "note": "embedding is extrapolated from a sample, not measured at this size"}


def check_targets(report: dict) -> dict:
    notes = report["notes"]
    out = {"search_p50_ms_notes": {"target": TARGETS["search_p50_ms_notes"],
                                   "measured": notes["search"]["search_ms"]["p50"]},
           "add_note_share_of_full_build": {"target": TARGETS["add_note_share_of_full_build"],
                                            "measured": notes["add_one_note"]["share_of_full_build"]}}
    largest = max(report.get("scale", []), key=lambda s: s["build"]["entries"], default=None)
    if largest:
        out[f"search_p95_ms_{largest['build']['entries']}"] = {
            "target": TARGETS["search_p95_ms_100k"], "measured": largest["search"]["search_ms"]["p95"]}
        for spec, r in largest["search"]["hnsw"].items():
            out[f"hnsw_recall@10_{spec}"] = {"target": RECALL_TARGET, "measured": r["recall@10"], "higher": True}
    for t in out.values():
        higher = t.pop("higher", False)
        t["met"] = t["measured"] >= t["target"] if higher else t["measured"] <= t["target"]
    return out


def compare(report: dict) -> dict:
    """notes-rag over the LangChain recipe, as ratios (quality: ours / theirs; time: theirs / ours)."""
    ours = report["notes"]
    out = {}
    for b in report.get("baseline", []):
        q = b["quality"]
        versus = {"hybrid": ours["search"]["quality"]["hybrid"]}
        if b["embedder"] in ours["search"]["quality"]:
            versus[f"{b['embedder']} alone"] = ours["search"]["quality"][b["embedder"]]
        out[b["embedder"]] = {
            **{f"{name} {m} ratio": round(v[m] / q[m], 2) if q[m] else None
               for name, v in versus.items() for m in ("hit@5", "mrr@10")},
            "rebuild_after_add_speedup": round(b["rebuild_after_add"]["seconds_process"]
                                               / ours["add_one_note"]["seconds"], 2),
        }
    return out


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "env": {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS") if k in os.environ}}


def run_bench(config: Config, out: Path = Path("eval/results/bench.json"), scales: list[int] | None = None,
              baselines: Sequence[str] = DEFAULT_BASELINES, n_queries: int = QUERIES,
              qa_paths: Sequence[Path] | None = None) -> dict:
    """The whole benchmark; writes ``out`` (JSON) and the same with ``.md`` (a readable report)
    after every part, so an interrupted run still leaves what it measured."""
    scales = DEFAULT_SCALES if scales is None else scales
    questions = load_questions(qa_paths)
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
                    "questions": len(questions), "queries_timed": max(n_queries, len(questions)),
                    "baseline": [], "scale": []}
    started = time.perf_counter()

    def save() -> None:
        report["comparison"] = compare(report)
        report["targets"] = check_targets(report)
        report["total_seconds"] = round(time.perf_counter() - started, 1)
        report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        out.with_suffix(".md").write_text(render_markdown(report), encoding="utf-8")

    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        report["notes"] = bench_notes(config, work, questions, n_queries)
        save()
        for spec in baselines:
            report["baseline"].append(bench_baseline(spec, work, questions, report["notes"]))
            save()
        for i, n in enumerate(sorted(scales)):
            report["scale"].append(bench_scale(config, work, n, questions, n_queries, EMBED_SAMPLE if i == 0 else 0))
            sample = report["scale"][0]["build"].get("embedding_sample")
            if sample:
                report["scale"][-1]["extrapolated"] = extrapolate(report["scale"][-1], sample)
            save()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {out} and {out.with_suffix('.md')} in {report['total_seconds']:.0f}s")
    return report


# ---------------------------------------------------------------------------- the readable report

def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        return "–" if v is None else f"{v:g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join([*lines, *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)])


def _ms(stats: dict) -> str:
    return f"{stats['p50']:.1f} / {stats['p95']:.1f}" if "p50" in stats else stats.get("unavailable", "–")


def render_markdown(r: dict) -> str:
    """bench.json as a report a reader can check: every number comes from the JSON."""
    notes, search = r["notes"], r["notes"]["search"]
    out = [f"# `rag bench`: speed and scale\n\nRun {r['started']} on {r['machine']['cpus']} CPU cores "
           f"(shared with other jobs; load average {r['machine']['load_average_at_start']} at start), "
           f"Python {r['machine']['python']}; the whole run took {r['total_seconds']:.0f} s"
           + "".join(f", with {k}={v}" for k, v in r["machine"].get("env", {}).items()) + ". "
           f"Latencies are p50 / p95 in ms over {r['queries_timed']} queries (the {r['questions']} canned "
           "questions cycled), in process, after warm-up. Raw numbers: `bench.json`.\n",
           "## Targets\n",
           _table(["target", "limit", "measured", "met"],
                  [[k, t["target"], t["measured"], "yes" if t["met"] else "**no**"] for k, t in r["targets"].items()]),
           f"\n## The five real notes ({notes['corpus']['notes']} notes, {notes['corpus']['entries']} entries, "
           f"{notes['corpus']['chunks']} chunks, embedders: {', '.join(notes['corpus']['embedders'])})\n",
           "Index builds are `rag index` subprocesses timed from outside (interpreter start and model "
           "loading included); peak RSS is that process's own (`wait4`).\n",
           _table(["step", "seconds", "peak RSS MB", "load avg at start", "detail"], [
               ["full build", notes["full_build"]["seconds"], notes["full_build"]["peak_rss_mb"],
                notes["full_build"].get("load_before"), f"{notes['full_build']['chunks_per_s']} chunks/s"],
               ["add one note", notes["add_one_note"]["seconds"], notes["add_one_note"]["peak_rss_mb"],
                notes["add_one_note"].get("load_before"),
                f"{notes['add_one_note']['chars']} chars, {notes['add_one_note']['new_chunks']} new chunks; "
                f"{notes['add_one_note']['share_of_full_build']:.0%} of a full build"],
               ["nothing to do", notes["nothing_to_do"]["seconds"], notes["nothing_to_do"]["peak_rss_mb"], "", ""],
           ]),
           f"\nIndex on disk: {notes['index_size_mb']} MB. Serving process (load + {r['queries_timed']} searches "
           f"+ answers): peak RSS {search['peak_rss_mb']} MB, index load {search['load_seconds']} s, warm-up "
           f"{search['warm_up_seconds']} s.\n",
           _table(["query path", "p50 / p95 ms"],
                  [["hybrid search (`Retriever.search`, k=10)", _ms(search["search_ms"])],
                   ["offline answer (`answer_question(use_llm=False)`)", _ms(search.get("answer_ms", {}))],
                   *([stage, _ms(s)] for stage, s in search["stages_ms"].items())]),
           "\nEach timed query starts with an empty query-embedding cache (`retrieve.query_vector`), so "
           "repeated questions cost what a new one does. The stage rows are each stage timed alone, once per "
           "distinct question: they show where a query's time goes.\n",
           "## notes-rag vs LangChain's default recipe\n",
           "The recipe: `RecursiveCharacterTextSplitter"
           f"(chunk_size={LC_CHUNK_SIZE}, chunk_overlap={LC_CHUNK_OVERLAP})` "
           "over whole files, one embedder, FAISS `IndexFlatIP`, a full rebuild on any change. Its chunks are "
           "scored like ours, at entry level: each retrieved chunk stands for the entries its lines overlap "
           "(in file order), which favours it when one chunk spans several short entries. Build times are "
           "fresh processes timed from outside, like `rag index`.\n",
           _table(["system", "hit@5", "MRR@10", "build s", "rebuild after adding the note s", "search p50 ms",
                   "peak RSS MB"],
                  [*([f"notes-rag, {name}", q["hit@5"], q["mrr@10"],
                      notes["full_build"]["seconds"] if name == "hybrid" else "",
                      notes["add_one_note"]["seconds"] if name == "hybrid" else "",
                      search["search_ms"]["p50"] if name == "hybrid" else "",
                      notes["full_build"]["peak_rss_mb"] if name == "hybrid" else ""]
                     for name, q in search["quality"].items()),
                   *([f"LangChain recipe, {b['embedder']} ({b['chunks']} chunks, {b['entries_per_chunk']} entries "
                      "per chunk)", b["quality"]["hit@5"], b["quality"]["mrr@10"], b["build_seconds_process"],
                      b["rebuild_after_add"]["seconds_process"], b["search_ms"]["p50"],
                      max(b["peak_rss_mb"], b["rebuild_after_add"]["peak_rss_mb"])] for b in r["baseline"])]),
           "\nRatios (quality: notes-rag / recipe; rebuild: recipe's full rebuild / notes-rag's incremental add):\n",
           _table(["recipe embedder", "ratio", "value"],
                  [[spec, k, v] for spec, c in r["comparison"].items() for k, v in c.items()]),
           "\n## Scale: synthetic corpora\n",
           "Synthetic notes (`rag.synth`, seed fixed) recombine the real notes' sentences under spliced real titles, "
           "1000 entries per note. Everything but embedding runs for real at full size: segmenting, chunking, "
           "jieba, BM25, FAISS (HNSW from "
           f"{HNSW_THRESHOLD:,} chunks), checksums, loading, and hybrid search with real query embeddings. "
           "Embedding 100k chunks with e5 on two cores would take hours, so each chunk gets a *proxy vector*: "
           "the normalized mean of the real vectors of the chunks its sentences come from, plus noise of norm "
           f"{SYNTH_NOISE}. This keeps the vectors in the real embedding space, with the real notes' topical "
           "clusters, instead of replicating a few vectors (which would make nearest-neighbour search "
           "artificially easy or hard); the cosine between proxies and real embeddings of a sample is shown below. "
           "Embedding time at scale is **extrapolated** from that sample, not measured.\n",
       ]
    rows = []
    for s in r["scale"]:
        b, q = s["build"], s["search"]
        stages = q["stages_ms"]
        faiss_stages = [f"{k.split('(')[1].rstrip(')')}: {_ms(v)}" for k, v in stages.items() if k.startswith("faiss")]
        ext = s.get("extrapolated", {})
        rows.append([f"{b['entries']:,}", f"{b['chunks']:,}", b["corpus_mb"], b["build_seconds_without_embedding"],
                     b["chunks_per_s_without_embedding"], ext.get("full_build_seconds_estimated"), b["peak_rss_mb"],
                     b["index_size_mb"], q["load_seconds"], _ms(q["search_ms"]), _ms(stages["bm25 get_scores"]),
                     "; ".join(faiss_stages), q["peak_rss_mb"]])
    out.append(_table(["entries", "chunks", "corpus MB", "build s (no embedding)", "chunks/s (no embedding)",
                       "full build s (estimated)", "build peak RSS MB", "index MB", "load s", "search p50 / p95",
                       "bm25 p50 / p95", "faiss p50 / p95", "search peak RSS MB"], rows))
    for s in r["scale"]:
        out.append(f"\nBuild stages at {s['build']['entries']:,} entries (s): "
                   + ", ".join(f"{k} {v}" for k, v in s["build"]["stages_seconds"].items())
                   + "; query stages (p50 / p95 ms): "
                   + ", ".join(f"{k} {_ms(v)}" for k, v in s["search"]["stages_ms"].items()) + ".")
    sample = r["scale"][0]["build"].get("embedding_sample") if r["scale"] else None
    if sample:
        out.append("\nEmbedding throughput, measured on a sample of synthetic chunks "
                   "(batches of 16, as `rag index`):\n")
        out.append(_table(["embedder", "sample", "chunks/s", "proxy ↔ real cosine",
                           *(f"estimated s at {s['build']['entries']:,}" for s in r["scale"])],
                          [[spec, v["sample"], v["chunks_per_s"], v["proxy_cosine_mean"],
                            *(s["extrapolated"]["embedding_seconds_estimated"][spec] for s in r["scale"])]
                           for spec, v in sample.items()]))
    for s in r["scale"]:
        for spec, h in s["search"].get("hnsw", {}).items():
            out.append(f"\nHNSW at {s['build']['entries']:,} entries, {spec} (M={h['M']}, efConstruction="
                       f"{h['efConstruction']}, efSearch={h['efSearch']}): recall@10 against exact search "
                       f"{h['recall@10']} over {h['queries']} real question embeddings.\n")
            out.append(_table(["efSearch", "recall@10", "ms / query"],
                              [[ef, v["recall@10"], v["ms_per_query"]] for ef, v in h["sweep"].items()]))
    return "\n".join(out) + "\n"
