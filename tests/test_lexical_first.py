"""A large first build is searchable by its text before its vectors, gains each embedder's ranking as
that embedder finishes, and resumes after a kill without embedding anything twice (issue 24)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from rag.app.mcp_server import NotesTools
from rag.build.builder import BuildReport, build_index
from rag.contract import SearchRequest
from rag.embed.embedding import HashEmbedder
from rag.service import Notes
from rag.settings import Settings
from rag.store import open_store
from tests.battery import Run
from tests.conftest import ROOT, settings_for
from tests.fake_models import FakeModels

TOPICS = ("speculative decoding", "mixture of experts", "KV-cache compression", "sparse attention",
          "reward models", "retrieval augmentation", "state space models", "quantization")


def bulk_corpus(corpus: Path, notes: int, entries: int) -> int:
    """``notes × entries`` one-chunk entries, each of its own text; their number."""
    corpus.mkdir(parents=True, exist_ok=True)
    for n in range(notes):
        topics = [(TOPICS[(n + i) % len(TOPICS)], TOPICS[i % len(TOPICS)]) for i in range(entries)]
        parts = [f"# Paper {n}.{i}: {topic}\n\nWe study {topic} in setting {n}-{i}, with {baseline} as the "
                 f"baseline. 第{i}节。" for i, (topic, baseline) in enumerate(topics)]
        (corpus / f"note{n:02d}.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return notes * entries


class Gated(HashEmbedder):
    """The hash embedder, each batch held until the test opens the gate; ``fail_after`` batches
    it raises instead, as a model that crashed."""

    def __init__(self, dim: int, fail_after: int | None = None) -> None:
        super().__init__(dim)
        self.gate = threading.Event()
        self.fail_after = fail_after
        self.batches = 0

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        assert self.gate.wait(60), "the test never opened the gate"
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise OSError("model crashed")
        self.batches += 1
        return super().embed_passages(texts)


#: "test/slow" is no registered model: a build assumes a small transformer's pace, so 128 chunks
#: (6.4 s) are worth committing the text first; "hash" is measured at 1500 chunks/s.
EMBEDDERS = ("hash", "test/slow")


def rag_json(rag_main: Callable[..., Run], settings: Settings, *argv: str) -> dict:
    env = {"RAG_CORPUS": str(settings.index.corpus), "RAG_INDEX": str(settings.index.path),
           "RAG_EMBEDDERS": ",".join(settings.index.embedders)}
    run = rag_main(*argv, "--json", env=env)
    assert run.code == 0, run.err
    return json.loads(run.out)


def test_a_first_build_answers_from_its_text_then_from_each_embedder(tmp_path: Path, rag_main) -> None:
    settings = settings_for(tmp_path / "corpus", tmp_path / "index", EMBEDDERS)
    assert bulk_corpus(settings.index.corpus, notes=8, entries=16) == 128
    fast, slow = Gated(256), Gated(64)
    events: list[str] = []
    said = threading.Condition()

    def progress(stage: str, done: int, total: int) -> None:
        if not total:
            with said:
                events.append(stage)
                said.notify_all()

    def wait_for(count: int) -> None:
        with said:
            assert said.wait_for(lambda: len(events) >= count, timeout=60), events

    reports: list[BuildReport] = []
    store = open_store(settings)
    builder = threading.Thread(target=lambda: reports.append(
        build_index(settings.index, store, FakeModels({"hash": fast, "test/slow": slow}), progress)))
    builder.start()
    try:
        wait_for(1)  # the text is committed; no vector is computed yet
        assert events[0].startswith("searchable (lexical) after ")
        found = rag_json(rag_main, settings, "search", "speculative decoding")
        assert found["partial"] == ["hash", "test/slow"] and found["hits"]
        assert {r for h in found["hits"] for r in h["why"]["ranks"]} <= {"bm25", "exact", "translated"}
        answer = rag_json(rag_main, settings, "ask", "What do we know about speculative decoding?", "--no-llm")
        assert answer["partial"] == ["hash", "test/slow"] and not answer["refused"] and answer["citations"]

        fast.gate.set()
        wait_for(2)
        assert events[1].startswith("searchable (hash) after ")
        found = rag_json(rag_main, settings, "search", "speculative decoding")
        assert found["partial"] == ["test/slow"] and any("hash" in h["why"]["ranks"] for h in found["hits"])
        with Notes(settings) as notes:
            assert NotesTools(notes).search_notes("speculative decoding").partial == ["test/slow"]
            assert NotesTools(notes).ask_notes("speculative decoding", mode="extractive").partial == ["test/slow"]
    finally:
        fast.gate.set()
        slow.gate.set()
        builder.join(60)
    (report,) = reports
    assert [label for label, _ in report.searchable] == ["lexical", "hash", "test/slow"]
    assert report.embedded == 256 and "searchable (lexical) after" in report.summary()
    assert open_store(settings).manifest().pending == ()
    live = settings.index.path / report.generation  # and the "hash" one it replaced, kept for readers
    shared = {f.name for f in live.rglob("*") if f.is_file() and f.stat().st_nlink == 2}
    assert {"entries.jsonl", "terms-ids.npy", "bm25-scores.npy", "vectors-hash.npy"} <= shared
    assert "vectors-test-slow-" not in str(shared)
    # "test/slow" is no model the CLI could load
    with Notes(settings, FakeModels({"hash": HashEmbedder(256), "test/slow": HashEmbedder(64)})) as notes:
        result = notes.search(SearchRequest(question="speculative decoding"))
    assert result.partial == () and any("test/slow" in h.why.ranks for h in result.hits)


def test_rag_index_json_is_the_build_report(tmp_path: Path, rag_main) -> None:
    settings = settings_for(tmp_path / "corpus", tmp_path / "index")
    bulk_corpus(settings.index.corpus, notes=2, entries=3)
    report = rag_json(rag_main, settings, "index")
    assert (report["notes"], report["chunks"], report["embedded"], report["reused"]) == (2, 6, 6, 0)
    assert report["added"] == ["note00.md", "note01.md"] and report["searchable"] == []  # 6 chunks: one commit
    assert rag_json(rag_main, settings, "index")["up_to_date"] is True


def test_an_incremental_build_of_a_whole_index_commits_once(tmp_path: Path) -> None:
    """A complete index keeps serving until its successor is whole, however much is new."""
    settings = settings_for(tmp_path / "corpus", tmp_path / "index", EMBEDDERS)
    bulk_corpus(settings.index.corpus, notes=1, entries=4)
    models = FakeModels({"hash": HashEmbedder(256), "test/slow": HashEmbedder(64)})
    assert not build_index(settings.index, open_store(settings), models).searchable  # 4 chunks: quick
    bulk_corpus(settings.index.corpus, notes=8, entries=16)
    report = build_index(settings.index, open_store(settings), models)
    assert report.embedded == 2 * (128 - 4) and report.searchable == []


@pytest.mark.parametrize("backend", ["folder", pytest.param("postgres", marks=pytest.mark.slow)])
def test_a_build_that_failed_midway_resumes_with_what_it_had_embedded(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    store_dsn = {"index.store": request.getfixturevalue("pg_dsn")} if backend == "postgres" else {}
    settings = settings_for(tmp_path / "corpus", tmp_path / "index", EMBEDDERS, **store_dsn)
    bulk_corpus(settings.index.corpus, notes=8, entries=16)
    fast, crashing = Gated(256), Gated(64, fail_after=3)
    fast.gate.set()
    crashing.gate.set()
    with pytest.raises(OSError, match="model crashed"):
        build_index(settings.index, open_store(settings), FakeModels({"hash": fast, "test/slow": crashing}))
    store = open_store(settings)
    assert store.manifest().pending in (("test/slow",), ("hash", "test/slow"))  # the text serves meanwhile
    assert crashing.batches == 3

    report = build_index(settings.index, store, FakeModels({"hash": HashEmbedder(256), "test/slow": HashEmbedder(64)}))
    hash_done = 128 if fast.batches == 8 else 16 * fast.batches  # "hash" may have been stopped too
    assert report.embedded == (128 - hash_done) + (128 - 3 * 16) and report.reused == hash_done + 3 * 16
    loaded = store.load()
    assert loaded.manifest.pending == () and set(loaded.dense) == set(EMBEDDERS)
    texts = [c.embed_text for c in loaded.chunks]
    assert np.allclose(loaded.dense["test/slow"].vectors(np.arange(len(texts))), HashEmbedder(64).embed_passages(texts),
                       atol=1e-6)


@pytest.mark.slow
def test_kill_9_of_rag_index_then_rag_index_embeds_only_the_rest(tmp_path: Path) -> None:
    """The real `rag index`, the real e5 model: killed once some batches are checkpointed, the next
    run embeds exactly the chunks whose vectors were not saved."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    chunks = bulk_corpus(corpus, notes=10, entries=20)
    command = [sys.executable, "-m", "rag.app.cli", "index", "--corpus", str(corpus), "--index", str(index),
               "--embedders", "e5-onnx", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() - started < 120:
        logs = list((index / ".cache").rglob("log-*.bin"))
        if logs and logs[0].stat().st_size > 3 * 16 * 384 * 4:  # more than three batches saved
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the build ended before it could be killed"

    store = open_store(settings_for(corpus, index, ("e5-onnx",)))
    live = store.load()  # the lexical generation, committed before embedding started
    assert live.manifest.pending == ("e5-onnx",) and len(live.chunks) == chunks
    saved = len(store.vector_cache(live.manifest.embedder_ids["e5-onnx"]).get([c.hash for c in live.chunks]))
    assert 3 * 16 <= saved < chunks

    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["embedded"], report["reused"], report["chunks"]) == (chunks - saved, saved, chunks)
    assert open_store(settings_for(corpus, index, ("e5-onnx",))).manifest().pending == ()
