"""Correctness of the benchmark's parts (no timings): the approximate index, the synthetic corpus,
the LangChain baseline's chunk → entry mapping, and the proxy vectors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rag import index as index_module
from rag.bench import SpanChunk, chunk_to_entries, entry_ranking, langchain_split, proxy_vectors
from rag.chunking import chunk_entries
from rag.evaluation import Span
from rag.index import Index, make_dense_index
from rag.notes import clean_inline, split_entries
from rag.synth import generate

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around a few dozen centres, like topic clusters of note embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    x = centres[rng.integers(0, 40, n)] + rng.normal(scale=0.6, size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_hnsw_above_threshold_returns_the_exact_top_hit(monkeypatch):
    import faiss

    vectors = _clustered(3000, 64, seed=1)
    monkeypatch.setattr(index_module, "HNSW_THRESHOLD", 1000)
    approx = make_dense_index(vectors)
    assert isinstance(approx, faiss.IndexHNSWFlat)
    monkeypatch.setattr(index_module, "HNSW_THRESHOLD", 10**9)
    exact = make_dense_index(vectors)
    assert isinstance(exact, faiss.IndexFlatIP)

    rng = np.random.default_rng(2)
    queries = vectors[rng.choice(len(vectors), 200, replace=False)] + rng.normal(scale=0.05, size=(200, 64))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    _, want = exact.search(queries, 10)
    _, got = approx.search(queries, 10)
    assert (got[:, 0] == want[:, 0]).all()
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want, strict=True)])
    assert recall >= 0.95


def test_synthetic_corpus_is_deterministic_and_segments_as_generated():
    first = generate(CORPUS, 1200, seed=3, per_note=500)
    again = generate(CORPUS, 1200, seed=3, per_note=500)
    other = generate(CORPUS, 1200, seed=4, per_note=500)
    assert first.notes == again.notes
    assert first.entries == again.entries
    assert first.notes != other.notes
    assert [len(n) for n in (first.notes, first.entries)] == [3, 1200]

    entries = [e for name, text in first.notes.items() for e in split_entries(text, name)]
    assert [(e.file, e.line_start, e.title) for e in entries] == \
        [(s.file, s.line_start, s.title) for s in first.entries]
    real = {p.name: p.read_text(encoding="utf-8").splitlines() for p in CORPUS.iterdir()}
    for s in first.entries[:50]:
        for sentence in s.sources:  # every sentence is real and points at its source line
            assert sentence.file in real
            longest_word = max(re.findall(r"\w+", sentence.text), key=len)
            assert longest_word in clean_inline(real[sentence.file][sentence.line - 1])


NOTE = "\n".join([
    "## Alpha", "alpha " * 100, "",
    "## Beta", "beta " * 100, "more beta " * 40, "",
    "## Gamma", "gamma " * 120,
])


def test_langchain_chunks_map_to_the_entries_their_lines_overlap():
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

    a_to_b = SpanChunk("n.md", 0, "", 2, 5)
    only_c = SpanChunk("n.md", 0, "", 8, 9)
    blank_gap = SpanChunk("n.md", 0, "", 7, 7)
    other_file = SpanChunk("m.md", 0, "", 1, 9)
    assert [e.title for e in chunk_to_entries(a_to_b, entries)] == ["Alpha", "Beta"]
    assert [e.title for e in chunk_to_entries(only_c, entries)] == ["Gamma"]
    assert chunk_to_entries(blank_gap, entries) == []
    assert chunk_to_entries(other_file, entries) == []
    ranked = entry_ranking([1, 0, 2], [a_to_b, only_c, SpanChunk("n.md", 0, "", 4, 9)], entries)
    assert ranked == [Span("n.md", 8, 9), Span("n.md", 1, 2), Span("n.md", 4, 6)]


def test_proxy_vectors_come_from_the_source_chunks():
    synth = generate(CORPUS, 30, seed=5, sentences_per_entry=(1, 1))
    entries = [e for name, text in synth.notes.items() for e in split_entries(text, name)]
    chunks = chunk_entries(entries, 256, 32, lambda t: len(t) // 2)
    real_chunks = [c for p in sorted(CORPUS.iterdir())
                   for c in chunk_entries(split_entries(p.read_text(encoding="utf-8"), p.name), 256, 32,
                                          lambda t: len(t) // 2)]
    real = _clustered(len(real_chunks), 32, seed=6)
    source = Index(root=Path("."), manifest={}, entries=[], chunks=real_chunks, tokens=[],
                   vectors={"x": real}, dense={}, bm25=None)
    proxies = proxy_vectors(synth, entries, chunks, source, "x", seed=0)
    assert proxies.shape == (len(chunks), 32)
    assert np.allclose(np.linalg.norm(proxies, axis=1), 1, atol=1e-5)
    by_line = {(e.file, e.line_start): s for e, s in zip(entries, synth.entries, strict=True)}
    entry_of = {e.id: e for e in entries}
    for c, v in zip(chunks, proxies, strict=True):
        sentence = by_line[(entry_of[c.entry_id].file, entry_of[c.entry_id].line_start)].sources[0]
        rows = [i for i, rc in enumerate(real_chunks)
                if rc.file == sentence.file and rc.line_start <= sentence.line <= rc.line_end]
        assert max(float(real[i] @ v) for i in rows) > 0.99  # one sentence: its own chunk, plus noise
