"""Correctness of the benchmark's parts on small inputs (no timings, no model): the synthetic
corpus, proxy vectors, the LangChain baseline's chunk → entry mapping, HNSW recall, the stage
clock, the subprocess environment, and the report's targets."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from rag.bench.baseline import SpanChunk, chunk_to_entries, entry_ranking, langchain_split
from rag.bench.harness import index_env
from rag.bench.notes import make_new_note
from rag.bench.proxy import ProxyEmbedder, ProxyModels
from rag.bench.report import check_targets
from rag.bench.run import embedder_sets
from rag.bench.scale import EF_SEARCH_SWEEP, extrapolate, hnsw_recall, time_commits
from rag.bench.synth import generate
from rag.embed.embedding import HashEmbedder
from rag.eval.qa import Span
from rag.ingest.chunking import approx_tokens, chunk_entries
from rag.ingest.corpus import read_corpus
from rag.ingest.markup import clean_inline, parse_heading
from rag.ingest.notes import split_entries
from rag.settings import IndexSettings
from rag.store import Lexicon, LoadedIndex
from rag.store.dense import HnswDense
from rag.store.manifest import Manifest

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return read_corpus(CORPUS, 1 << 30)[0]


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around a few dozen centres, like topic clusters of note embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    x = centres[rng.integers(0, 40, n)] + rng.normal(scale=0.6, size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_synthetic_corpus_is_deterministic_and_segments_as_generated(texts: dict[str, str]) -> None:
    first = generate(texts, 1200, seed=3, per_note=500)
    again = generate(texts, 1200, seed=3, per_note=500)
    other = generate(texts, 1200, seed=4, per_note=500)
    assert first.notes == again.notes and first.entries == again.entries
    assert first.notes != other.notes
    assert [len(n) for n in (first.notes, first.entries)] == [3, 1200]

    entries = [e for name, text in first.notes.items() for e in split_entries(text, name)]
    assert [(e.file, e.line_start, e.title) for e in entries] == \
        [(s.file, s.line_start, s.title) for s in first.entries]
    assert len(first.by_title()) == 1200  # every entry findable by its segmented title
    real = {rel: text.split("\n") for rel, text in texts.items()}
    for s in first.entries[:50]:
        for sentence in s.sources:  # every sentence is real and points at its source line
            longest_word = max(re.findall(r"\w+", sentence.text), key=len)
            assert longest_word in clean_inline(real[sentence.file][sentence.line - 1])


def test_proxy_vectors_come_from_the_source_chunks(texts: dict[str, str]) -> None:
    synth = generate(texts, 30, seed=5, sentences_per_entry=(1, 1))
    entries = [e for name, text in synth.notes.items() for e in split_entries(text, name)]
    chunks = chunk_entries(entries, 256, 32, approx_tokens)
    real_chunks = [c for rel, text in texts.items() for c in chunk_entries(split_entries(text, rel), 256, 32,
                                                                          approx_tokens)]
    real = _clustered(len(real_chunks), 32, seed=6)
    proxy = ProxyEmbedder(HashEmbedder(32), synth.by_title(), real_chunks, real, seed=0)
    vectors = ProxyModels({"x": proxy}).embedder("x").embed_passages([c.embed_text for c in chunks])
    assert vectors.shape == (len(chunks), 32) and proxy.unmatched == 0
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.array_equal(proxy.embed_passages([chunks[0].embed_text])[0], vectors[0])  # same text, same vector
    by_line = {(e.file, e.line_start): s for e, s in zip(entries, synth.entries, strict=True)}
    entry_of = {e.id: e for e in entries}
    for c, v in zip(chunks, vectors, strict=True):
        sentence = by_line[(entry_of[c.entry_id].file, entry_of[c.entry_id].line_start)].sources[0]
        rows = [i for i, rc in enumerate(real_chunks)
                if rc.file == sentence.file and rc.line_start <= sentence.line <= rc.line_end]
        assert max(float(real[i] @ v) for i in rows) > 0.99  # one sentence: its own chunk, plus noise
    proxy.embed_passages(["a title no synthetic entry has\ntext"])
    assert proxy.unmatched == 1 and proxy.id == HashEmbedder(32).id


NOTE = "\n".join(["## Alpha", "alpha " * 100, "", "## Beta", "beta " * 100, "more beta " * 40, "",
                  "## Gamma", "gamma " * 120])


def test_langchain_chunks_map_to_the_entries_their_lines_overlap() -> None:
    entries = split_entries(NOTE, "n.md")
    assert [(e.title, e.line_start, e.line_end) for e in entries] == \
        [("Alpha", 1, 2), ("Beta", 4, 6), ("Gamma", 8, 9)]
    chunks = langchain_split(NOTE, "n.md")
    assert len(chunks) >= 2
    lines = NOTE.split("\n")
    for c in chunks:
        assert NOTE[c.start:c.start + len(c.text)] == c.text
        assert c.text.startswith(lines[c.line_start - 1].strip()[:10])
        assert c.text.endswith(lines[c.line_end - 1].strip()[-10:])

    a_to_b, only_c = SpanChunk("n.md", 0, "", 2, 5), SpanChunk("n.md", 0, "", 8, 9)
    assert [e.title for e in chunk_to_entries(a_to_b, entries)] == ["Alpha", "Beta"]
    assert [e.title for e in chunk_to_entries(only_c, entries)] == ["Gamma"]
    assert chunk_to_entries(SpanChunk("n.md", 0, "", 7, 7), entries) == []  # the blank line between
    assert chunk_to_entries(SpanChunk("m.md", 0, "", 1, 9), entries) == []  # another file
    ranked = entry_ranking([1, 0, 2], [a_to_b, only_c, SpanChunk("n.md", 0, "", 4, 9)], entries)
    assert ranked == [Span("n.md", 8, 9), Span("n.md", 1, 2), Span("n.md", 4, 6)]


def test_hnsw_recall_against_exact_search_restores_ef_search() -> None:
    vectors = _clustered(3000, 64, seed=1)
    dense = HnswDense.build(vectors, ef_search=128)
    index = LoadedIndex("g", Manifest({}, {}, {}), [], [], Lexicon({}, 0), None, {"x": dense})
    rng = np.random.default_rng(2)
    queries = vectors[rng.choice(len(vectors), 100, replace=False)] + rng.normal(scale=0.05, size=(100, 64))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    result = hnsw_recall(index, {"x": queries})["x"]
    assert result["efSearch"] == 128 and dense.index.hnsw.efSearch == 128
    assert sorted(result["sweep"]) == sorted({*EF_SEARCH_SWEEP, 128})
    assert result["recall@10"] >= 0.95 and result["queries"] == 100
    assert result["sweep"][16]["recall@10"] <= result["sweep"][256]["recall@10"]


def test_commit_timing_wraps_the_store_and_passes_results_through() -> None:
    class Store:
        def __init__(self) -> None:
            self.got: list[object] = []

        def commit(self, data: object) -> str:
            time.sleep(0.02)
            self.got.append(data)
            return f"gen-{len(self.got)}"

    store = Store()
    spent = time_commits(store)  # type: ignore[arg-type]
    assert store.commit("a") == "gen-1" and store.commit("b") == "gen-2"
    assert store.got == ["a", "b"] and len(spent) == 2 and all(s >= 0.02 for s in spent)


def test_extrapolated_build_follows_the_builders_schedule() -> None:
    build = {"chunks": 1000, "build_seconds_without_embedding": 10.0}
    e5, use = {"chunks_per_s": 10.0, "concurrent": True}, {"chunks_per_s": 50.0, "concurrent": False}  # 100 s, 20 s
    shared = extrapolate(build, {"e5": e5, "use": use}, cores=2)
    assert shared["embedding_seconds_estimated"] == {"e5": 100, "use": 20}
    assert shared["full_build_seconds_estimated"] == 10 + (100 + 20) / 2  # e5 also takes use's core once it is done
    pinned = extrapolate(build, {"e5": {**e5, "concurrent": False}, "use": use}, cores=2)
    assert pinned["full_build_seconds_estimated"] == 10 + 100  # side by side: the slower one
    assert extrapolate(build, {"e5": e5, "use": use}, cores=1)["full_build_seconds_estimated"] == 10 + 120


def test_index_env_carries_the_index_settings_but_not_the_paths() -> None:
    env = index_env(IndexSettings(embedders=("hash", "use-m3"), chunk_tokens=128, chunk_overlap=16))
    assert env["RAG_EMBEDDERS"] == "hash,use-m3" and env["RAG_CHUNK_TOKENS"] == "128"
    assert env["RAG_CHUNK_OVERLAP"] == "16" and "RAG_CORPUS" not in env and "RAG_INDEX" not in env


def test_new_note_is_new_text_of_median_size(texts: dict[str, str]) -> None:
    name, text = make_new_note(texts)
    assert name not in texts and name.endswith(".md")
    headings = [line for line in text.split("\n") if parse_heading(line)]
    assert headings and all(h.endswith("(bench copy)") for h in headings)
    median = sorted(len(t) for t in texts.values())[len(texts) // 2]
    assert median <= len(text) < max(len(t) for t in texts.values())


def test_unknown_embedder_sets_are_skipped_with_their_reason() -> None:
    sets, skipped = embedder_sets(("hash",), [("hash",), ("e5-nonexistent", "hash"), ("hash", "use"),
                                              ("hash", "use-m3")])
    assert sets == [("hash",), ("hash", "use-m3")]  # registry names, so an alias is no second set
    assert [s["embedders"] for s in skipped] == [["e5-nonexistent", "hash"]]
    assert "unknown embedder 'e5-nonexistent'" in skipped[0]["reason"]


def test_targets_check_only_what_ran() -> None:
    def notes(embedders: list[str], build_s: float) -> dict:
        return {"embedders": embedders, "search": {"search_ms": {"p50": 30.0}},
                "full_build": {"seconds": build_s}, "add_one_note": {"share_of_full_build": 0.4}}

    report = {"notes": [notes(["e5-onnx", "use-m3"], 20.0), notes(["e5-small-q4", "use-m3"], 100.0)],
              "reference": ["e5-small-q4", "use-m3"], "scale": []}
    targets = check_targets(report)
    assert targets["search_p50_ms_notes"] == {"target": 50.0, "measured": 30.0, "met": True}
    assert targets["add_note_share_of_full_build"]["met"] is False
    assert targets["full_build_vs_reference e5-onnx+use-m3"] == {"target": 0.25, "measured": 0.2, "met": True}
    assert len(targets) == 3
    report["scale"] = [{"build": {"entries": 100_000}, "load": {"peak_rss_mb": 2600.0},
                        "search": {"search_ms": {"p95": 60.0}, "hnsw": {"x": {"recall@10": 0.94}}}}]
    targets = check_targets(report)
    assert targets["index_load_peak_rss_mb_100000"]["met"] is False
    assert targets["search_p95_ms_100000"]["met"] is True and targets["hnsw_recall@10_x"]["met"] is False
