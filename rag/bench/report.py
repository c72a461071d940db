"""`rag bench`'s readable report (bench.md), its targets and its ratios: every number from bench.json."""

from __future__ import annotations

from rag.eval.tables import fmt, markdown_table

from .baseline import LC_CHUNK_OVERLAP, LC_CHUNK_SIZE
from .proxy import NOISE
from .stores import stores_section

#: Limits: ≤ for times and memory, ≥ for recall.
TARGETS = {"search_p50_ms_notes": 50.0, "add_note_share_of_full_build": 0.30, "search_p95_ms_largest": 100.0,
           "hnsw_recall@10": 0.95, "index_load_peak_rss_mb_largest": 2400.0, "full_build_vs_reference": 0.25}


def _target(limit: float, measured: float | None, higher: bool = False) -> dict:
    met = measured is not None and (measured >= limit if higher else measured <= limit)
    return {"target": limit, "measured": measured, "met": met}


def check_targets(report: dict) -> dict:
    """Each target with what was measured; only the parts already run are checked."""
    out = {}
    if report["notes"]:
        main = report["notes"][0]
        out["search_p50_ms_notes"] = _target(TARGETS["search_p50_ms_notes"], main["search"]["search_ms"]["p50"])
        out["add_note_share_of_full_build"] = _target(TARGETS["add_note_share_of_full_build"],
                                                      main["add_one_note"]["share_of_full_build"])
    reference = next((n for n in report["notes"] if n["embedders"] == report.get("reference")), None)
    for n in report["notes"]:
        if reference is not None and n is not reference:
            ratio = round(n["full_build"]["seconds"] / reference["full_build"]["seconds"], 3)
            key = f"full_build_vs_reference {'+'.join(n['embedders'])}"
            out[key] = _target(TARGETS["full_build_vs_reference"], ratio)
    largest = max(report["scale"], key=lambda s: s["build"]["entries"], default=None)
    if largest:
        size = largest["build"]["entries"]
        out[f"search_p95_ms_{size}"] = _target(TARGETS["search_p95_ms_largest"], largest["search"]["search_ms"]["p95"])
        out[f"index_load_peak_rss_mb_{size}"] = _target(TARGETS["index_load_peak_rss_mb_largest"],
                                                        largest["load"]["peak_rss_mb"])
        for name, h in largest["search"]["hnsw"].items():
            out[f"hnsw_recall@10_{name}"] = _target(TARGETS["hnsw_recall@10"], h["recall@10"], higher=True)
    return out


def baseline_ratios(report: dict) -> dict:
    """notes-rag over the LangChain recipe (quality: ours / theirs; rebuild time: theirs / ours)."""
    if not report["notes"]:
        return {}
    ours = report["notes"][0]
    out = {}
    for b in report["baseline"]:
        versus = {"hybrid": ours["search"]["quality"]["hybrid"]}
        if b["embedder"] in ours["search"]["quality"]:
            versus[f"{b['embedder']} alone"] = ours["search"]["quality"][b["embedder"]]
        out[b["embedder"]] = {
            **{f"{name} {m} ratio": round(v[m] / b["quality"][m], 2) if b["quality"].get(m) else None
               for name, v in versus.items() for m in ("hit@5", "mrr@10")},
            "rebuild_after_add_speedup": round(b["rebuild_after_add"]["seconds_process"]
                                               / ours["add_one_note"]["seconds"], 2)}
    return out


def _ms(stats: dict) -> str:
    return f"{stats['p50']:.1f} / {stats['p95']:.1f}" if stats.get("p50") is not None else "–"


def _sets_table(r: dict) -> str:
    ref = next((n for n in r["notes"] if n["embedders"] == r.get("reference")), None)
    rows = []
    for n in r["notes"]:
        s, q = n["search"], n["search"]["quality"]["hybrid"]
        ratio = round(n["full_build"]["seconds"] / ref["full_build"]["seconds"], 3) if ref else None
        rows.append([", ".join(n["embedders"]) or "BM25 only", n["corpus"]["chunks"], n["full_build"]["seconds"],
                     n["full_build"]["chunks_per_s"], ratio, n["full_build"]["peak_rss_mb"],
                     n["add_one_note"]["seconds"], n["delete_one_note"]["seconds"], n["nothing_to_do"]["seconds"],
                     _ms(s["search_ms"]), s["peak_rss_mb"], n["index_size_mb"], q["hit@1"], q["mrr@10"]])
    return markdown_table(["embedders", "chunks", "full build s", "chunks/s", "build vs reference",
                           "build peak RSS MB", "add note s", "delete note s", "nothing to do s",
                           "warm search p50 / p95 ms", "search peak RSS MB", "index MB", "hit@1", "MRR@10"], rows)


def _notes_section(r: dict) -> list[str]:
    main = r["notes"][0]
    c, s = main["corpus"], main["search"]
    steps = [[label, main[key]["seconds"], main[key]["peak_rss_mb"], main[key]["load_before"], detail]
             for key, label, detail in (
                 ("full_build", "full build", f"{main['full_build']['chunks_per_s']} chunks/s"),
                 ("add_one_note", "add one note", f"{main['add_one_note']['chars']} chars, "
                  f"{main['add_one_note']['new_chunks']} new chunks; "
                  f"{main['add_one_note']['share_of_full_build']:.0%} of a full build"),
                 ("delete_one_note", "delete that note",
                  f"{main['delete_one_note']['share_of_full_build']:.0%} of a full build"),
                 ("nothing_to_do", "nothing to do", ""))]
    paths = [["hybrid search (`Searcher.search`, k=10)", _ms(s["search_ms"])],
             ["offline answer (`answer_question(use_llm=False)`)", _ms(s["answer_ms"])],
             *([f"stage: {stage}", _ms(v)] for stage, v in s["stages_ms"].items())]
    return [
        f"## The real notes ({c['notes']} notes, {c['entries']} entries, {c['chunks']} chunks)\n",
        "Builds are `rag index` subprocesses timed from outside (interpreter start and model loading "
        "included); peak RSS is that process's own (`wait4`). Each embedder set gets its own copy of the "
        "notes and its own index.\n",
        _sets_table(r),
        f"\nIn detail, embedders {', '.join(main['embedders'])}:\n",
        markdown_table(["step", "seconds", "peak RSS MB", "load avg at start", "detail"], steps),
        f"\nIndex on disk: {main['index_size_mb']} MB. Serving process (load + {r['queries_timed']} searches "
        f"+ answers): peak RSS {s['peak_rss_mb']} MB, index load {s['load_seconds']} s, warm-up "
        f"{s['warm_up_seconds']} s.\n",
        markdown_table(["query path", "p50 / p95 ms"], paths),
        "\nEach timed search builds its own `Query`, so every repeat of a question pays for its query "
        "embedding as a new question would. The stage rows are each stage timed alone, once per distinct "
        "question: they show where a query's time goes.\n",
    ]


def _baseline_section(r: dict) -> list[str]:
    main = r["notes"][0]
    ours = [[f"notes-rag, {name}", q["hit@5"], q["mrr@10"], *(
        [main["full_build"]["seconds"], main["add_one_note"]["seconds"], main["search"]["search_ms"]["p50"],
         main["full_build"]["peak_rss_mb"]] if name == "hybrid" else ["", "", "", ""])]
        for name, q in main["search"]["quality"].items()]
    theirs = [[f"LangChain recipe, {b['embedder']} ({b['chunks']} chunks, {b['entries_per_chunk']} entries per chunk)",
               b["quality"]["hit@5"], b["quality"]["mrr@10"], b["build_seconds_process"],
               b["rebuild_after_add"]["seconds_process"], b["search_ms"]["p50"],
               max(b["peak_rss_mb"], b["rebuild_after_add"]["peak_rss_mb"])] for b in r["baseline"]]
    return [
        "## notes-rag vs LangChain's default recipe\n",
        f"The recipe: `RecursiveCharacterTextSplitter(chunk_size={LC_CHUNK_SIZE}, chunk_overlap={LC_CHUNK_OVERLAP})` "
        "over whole files, one embedder, exact inner-product search over all chunk vectors (as FAISS "
        "`IndexFlatIP`), a full rebuild on any change. Its chunks are scored like ours, at entry level: each "
        "retrieved chunk stands for the entries its lines overlap (in file order), which favours it when one "
        "chunk spans several short entries. Build times are fresh processes timed from outside.\n",
        markdown_table(["system", "hit@5", "MRR@10", "build s", "rebuild after adding the note s",
                        "search p50 ms", "peak RSS MB"], [*ours, *theirs]),
        "\nRatios (quality: notes-rag / recipe; rebuild: recipe's full rebuild / notes-rag's incremental add):\n",
        markdown_table(["recipe embedder", "ratio", "value"],
                       [[e, k, v] for e, c in r["comparison"].items() for k, v in c.items()]),
    ]


def _scale_section(r: dict) -> list[str]:
    out = [
        "\n## Scale: synthetic corpora\n",
        "Synthetic notes (`rag.bench.synth`, seed fixed) recombine the real notes' sentences under spliced real "
        "titles, 1000 entries per note, and go through the real builder, store and searcher: reading, "
        "segmenting, chunking, jieba, BM25, the dense index (HNSW above the store's threshold), commit, a load "
        "in a fresh process, and hybrid search with real query embeddings. Embedding 100k chunks on two cores "
        "would take hours, so each chunk gets a *proxy vector*: the normalized mean of the real vectors of the "
        f"chunks its sentences come from, plus noise of norm {NOISE}; the cosine between proxies and real "
        "embeddings of a sample is shown below. Embedding time at scale is **extrapolated** from that sample.\n",
    ]
    rows = []
    for s in r["scale"]:
        b, ld, q = s["build"], s["load"], s["search"]
        dense = "; ".join(f"{k.removeprefix('dense ')}: {_ms(v)}" for k, v in q["stages_ms"].items()
                          if k.startswith("dense "))
        rows.append([f"{b['entries']:,}", f"{b['chunks']:,}", b["corpus_mb"], b["build_seconds_without_embedding"],
                     b["chunks_per_s_without_embedding"], s.get("extrapolated", {}).get("full_build_seconds_estimated"),
                     b["peak_rss_mb"], b["index_size_mb"], ld["seconds"], ld["peak_rss_mb"],
                     round(ld["rss_mb"] - ld["rss_mb_before"], 1),
                     _ms(q["search_ms"]), _ms(q["stages_ms"].get("bm25", {})), dense, q["peak_rss_mb"]])
    out.append(markdown_table(["entries", "chunks", "corpus MB", "build s (no embedding)", "chunks/s (no embedding)",
                               "full build s (estimated)", "build peak RSS MB", "index MB", "load s",
                               "load peak RSS MB", "RSS added by the load MB", "search p50 / p95", "bm25 p50 / p95",
                               "dense p50 / p95", "search peak RSS MB"], rows))
    for s in r["scale"]:
        out.append(f"\nBuild stages at {s['build']['entries']:,} entries (s; commit timed at the store): "
                   + ", ".join(f"{k} {v}" for k, v in s["build"]["stages_seconds"].items())
                   + "; query stages (p50 / p95 ms): "
                   + ", ".join(f"{k} {_ms(v)}" for k, v in s["search"]["stages_ms"].items()) + ".")
    sample = next((s["search"]["embedding_sample"] for s in r["scale"] if "embedding_sample" in s["search"]), None)
    if sample:
        out += ["\nEmbedding throughput, measured on a sample of synthetic chunks (in the builder's batches):\n",
                markdown_table(["embedder", "sample", "chunks/s", "proxy ↔ real cosine",
                                *(f"estimated s at {s['build']['entries']:,}" for s in r["scale"])],
                               [[name, v["sample"], v["chunks_per_s"], v["proxy_cosine_mean"],
                                 *(s.get("extrapolated", {}).get("embedding_seconds_estimated", {}).get(name)
                                   for s in r["scale"])] for name, v in sample.items()])]
    for s in r["scale"]:
        for name, h in s["search"]["hnsw"].items():
            out += [f"\nHNSW at {s['build']['entries']:,} entries, {name} (M={h['M']}, efConstruction="
                    f"{h['efConstruction']}, efSearch={h['efSearch']}): recall@10 against exact search "
                    f"{h['recall@10']} over {h['queries']} real question embeddings.\n",
                    markdown_table(["efSearch", "recall@10", "ms / query"],
                                   [[ef, v["recall@10"], v["ms_per_query"]] for ef, v in h["sweep"].items()])]
    return out


def render_markdown(r: dict) -> str:
    """bench.json as a report a reader can check; parts not run yet are left out."""
    m = r["machine"]
    out = [f"# `rag bench`: speed and scale\n\nRun {r['started']} on {m['cpus']} CPU cores (shared with other "
           f"jobs; load average {m['load_average_at_start']} at start), Python {m['python']}; the whole run took "
           f"{r.get('total_seconds', 0):.0f} s" + "".join(f", with {k}={v}" for k, v in m.get("env", {}).items())
           + f". Questions: {r['questions']} from `{r['qa']}`, split {r['split']}. Latencies are p50 / p95 in ms "
           f"over {r['queries_timed']} queries (the questions cycled), in process, after warm-up. Raw numbers: "
           "`bench.json`.\n",
           "## Targets\n",
           markdown_table(["target", "limit", "measured", "met"],
                          [[k, t["target"], t["measured"], "yes" if t["met"] else "**no**"]
                           for k, t in r.get("targets", {}).items()]), ""]
    out += [f"Embedder set {', '.join(s['embedders'])} skipped: {s['reason']}\n" for s in r["embedder_sets_skipped"]]
    if r["notes"]:
        out += _notes_section(r)
    if r["baseline"]:
        out += _baseline_section(r)
    if r["scale"]:
        out += _scale_section(r)
    if r.get("llm"):
        out += _llm_section(r["llm"])
    if r.get("stores"):
        out += stores_section(r["stores"])
    return "\n".join(out) + "\n"


def _llm_section(m: dict) -> list[str]:
    """The answer model: load time, then per question TTFT, prompt and generation speed."""
    rows = [[x["id"], x.get("sources"), x.get("prompt_tokens"), fmt(x.get("prompt_tok_s"), 1),
             fmt(x.get("ttft_s"), 1), x.get("gen_tokens"), fmt(x.get("gen_tok_s"), 1), fmt(x.get("total_s"), 1)]
            if "error" not in x else [x["id"], x["error"], "", "", "", "", "", ""] for x in m["runs"]]
    rows.append(["mean", "", fmt(m["prompt_tokens"], 0), fmt(m["prompt_tok_s"], 1), fmt(m["ttft_s"], 1), "",
                 fmt(m["gen_tok_s"], 1), fmt(m["total_s"], 1)])
    return [f"## Answer model: {m['model']}\n",
            f"Loaded in {m['load_s']} s; {len(m['runs'])} covered questions answered as `rag ask` sends them "
            f"(source budget {m['source_budget']} tokens, at most {m['max_tokens']} answer tokens). Speeds are the "
            "server's own timings when it reports them (llama.cpp does).\n",
            markdown_table(["question", "sources", "prompt tokens", "prompt tok/s", "TTFT s", "answer tokens",
                            "tokens/s", "total s"], rows), ""]
