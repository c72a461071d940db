"""`rag bench` for real, kept small: the scale part through the real builder, store and searcher,
and a whole run with the model-free embedder (CLI builds, baseline, side-by-side sets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.bench import run_bench
from rag.bench.scale import bench_scale
from rag.build.builder import build_index
from rag.embed.models import Models
from rag.eval.qa import load_split
from rag.ingest.corpus import read_corpus
from rag.settings import Settings
from rag.store import open_store

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
QA = ROOT / "eval" / "qa.jsonl"


def hash_settings(tmp_path: Path, **more: object) -> Settings:
    return Settings().updated({"index.corpus": ROOT / "corpus", "index.path": tmp_path / "index",
                               "index.embedders": ("hash",), **more})


def test_scale_part_builds_loads_and_searches_an_hnsw_index(tmp_path: Path, models: Models) -> None:
    source = hash_settings(tmp_path, **{"index.hnsw_threshold": 1000})
    build_index(source.index, open_store(source), models)
    texts, _ = read_corpus(ROOT / "corpus", source.index.max_note_bytes)
    questions = load_split(QA, "all").questions[:20]
    result = bench_scale(source, tmp_path, texts, 1500, questions, n_queries=20, sample=16)

    build, load, search = result["build"], result["load"], result["search"]
    assert build["entries"] == 1500 and build["chunks"] >= 1500 and build["unmatched_proxy_texts"] == 0
    assert build["build_seconds_without_embedding"] < build["build_seconds"]
    assert sum(build["stages_seconds"].values()) == pytest.approx(build["build_seconds"], abs=0.05)
    assert load["dense"] == {"hash": "HnswDense"} and load["chunks"] == build["chunks"]
    assert load["peak_rss_mb"] >= load["rss_mb"] > load["rss_mb_before"] > 0  # the index takes memory
    assert search["search_ms"]["n"] == 20 and search["search_ms"]["p50"] > 0
    assert {"tokenize", "bm25", "embed hash", "dense hash (HnswDense)"} <= set(search["stages_ms"])
    assert search["hnsw"]["hash"]["recall@10"] >= 0.9 and search["hnsw"]["hash"]["queries"] == 20
    sample = search["embedding_sample"]["hash"]
    assert sample["sample"] == 16 and sample["chunks_per_s"] > 0 and -1 <= sample["proxy_cosine_mean"] <= 1
    assert not (tmp_path / "synth-1500").exists() and not (tmp_path / "synth-index-1500").exists()


def test_whole_bench_with_the_hash_embedder(tmp_path: Path) -> None:
    settings = hash_settings(tmp_path, **{"index.hnsw_threshold": 1000})
    out = tmp_path / "bench.json"
    report = run_bench(settings, out, scales=[1200], compare=["hash", "hash,use-m3", "e5-nowhere,hash"],
                       baselines=("hash",), n_queries=10, qa_path=QA, split="all")

    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(json.dumps(report))
    assert [n["embedders"] for n in report["notes"]] == [["hash"], ["hash", "use-m3"]]
    assert report["reference"] == ["hash"]
    assert [s["embedders"] for s in report["embedder_sets_skipped"]] == [["e5-nowhere", "hash"]]
    main = report["notes"][0]
    for step in ("full_build", "nothing_to_do", "add_one_note", "delete_one_note"):
        assert main[step]["seconds"] > 0 and main[step]["peak_rss_mb"] > 0, step
    assert main["nothing_to_do"]["seconds"] < main["full_build"]["seconds"]
    assert main["add_one_note"]["new_chunks"] > 0 and main["corpus"]["notes"] == 5
    assert set(main["search"]["quality"]) == {"hybrid", "bm25", "hash", "exact", "translated"}
    assert main["search"]["answer_ms"]["n"] == report["questions"]
    assert report["baseline"][0]["embedder"] == "hash" and report["baseline"][0]["quality"]["n"] > 0
    assert "full_build_vs_reference hash+use-m3" in report["targets"]
    assert report["scale"][0]["build"]["entries"] == 1200 and "extrapolated" in report["scale"][0]
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    for heading in ("## Targets", "## The real notes", "## notes-rag vs LangChain", "## Scale: synthetic corpora"):
        assert heading in md
    assert "Embedder set e5-nowhere, hash skipped: unknown embedder 'e5-nowhere'" in md
