"""The folder store on tiny synthetic generations: atomic swap, garbage collection, validation on load,
one checksum pass, vectors kept once, the vector cache. No corpus, no builder, no model."""

from __future__ import annotations

import errno
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import rag.store.folder
import rag.store.vector_cache
from rag.ingest.chunking import Chunk
from rag.ingest.notes import Entry
from rag.store import GenerationData, IndexDamaged, IndexHandle, IndexUnavailable
from rag.store.dense import ExactDense, HnswDense
from rag.store.folder import FolderStore, sha256_file
from rag.store.manifest import Counts, Manifest, NoteRecord, index_fingerprint
from rag.store.terms import Terms
from rag.store.vector_cache import FolderVectorCache


def generation(n: int = 4, dim: int = 8, seed: int = 0, note: str = "a.md") -> GenerationData:
    """``n`` entries of one note, one chunk each, random unit vectors for embedder ``e``."""
    entries = [Entry(note, f"Title {i}", 3 * i + 1, 3 * i + 2, None, None, f"text {i} word{i}") for i in range(n)]
    chunks = [Chunk(e.id, e.file, e.line_start, e.line_end, e.text, e.title) for e in entries]
    terms = Terms.of(["text", f"word{i}"] for i in range(n))
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    manifest = Manifest(fingerprint=index_fingerprint(("e",), 256, 32), embedder_ids={"e": "e-model/v1"},
                        notes={note: NoteRecord("0" * 64, n, n)}, counts=Counts(1, n, n))
    return GenerationData(manifest, entries, chunks, terms, {"e": vectors})


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def rewrite(store: FolderStore, rel: str, data: bytes) -> None:
    """Replace a file of the live generation and fix its checksum: what a buggy writer would leave."""
    root = store.path / store.current()
    (root / rel).write_bytes(data)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["checksums"][rel] = sha256_file(root / rel)
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_commit_then_load_round_trips(tmp_path: Path) -> None:
    store, data = FolderStore(tmp_path / "index"), generation()
    assert store.current() is None
    name = store.commit(data)
    assert store.current() == name == (tmp_path / "index" / "CURRENT").read_text().strip()
    index = FolderStore(tmp_path / "index").load()  # a fresh reader
    assert (index.generation, index.entries, index.chunks) == (name, data.entries, data.chunks)
    assert index.manifest.counts == Counts(1, 4, 4) and len(index.manifest.checksums) >= 6
    assert index.lexicon.n_chunks == 4 and index.lexicon.doc_freq["text"] == 4 and index.lexicon.knows("word2")
    dense = index.dense["e"]
    assert isinstance(dense, ExactDense) and isinstance(dense.matrix, np.memmap)
    assert dense.search(data.vectors["e"][2], 1)[0].tolist() == [2]
    assert index.bm25.get_scores(["word3"]).argmax() == 3
    assert [p.name for p in (tmp_path / "index" / name).glob("*.faiss")] == []  # vectors once


def test_readers_never_read_terms(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "index")
    name = store.commit(generation())
    (store.path / name / "terms-counts.npy").unlink()
    reader = FolderStore(store.path)
    assert len(reader.load().chunks) == 4  # the term counts are the builder's alone
    with pytest.raises(IndexDamaged, match=r"terms-counts\.npy is missing"):
        reader.manifest()
    assert reader.previous() is None


def test_previous_gives_the_builder_everything(tmp_path: Path) -> None:
    store, data = FolderStore(tmp_path / "index"), generation()
    assert store.previous() is None
    store.commit(data)
    prev = store.previous()
    assert prev is not None and prev.terms.bags() == data.terms.bags() and prev.entries == data.entries
    assert np.array_equal(prev.vectors["e"], data.vectors["e"])


def test_hnsw_from_the_threshold_on_keeps_vectors_only_in_faiss(tmp_path: Path) -> None:
    store, data = FolderStore(tmp_path / "index", hnsw_threshold=6, ef_search=64), generation(n=6)
    name = store.commit(data)
    files = sorted(p.name for p in (store.path / name).iterdir())
    assert "dense-e.faiss" in files and not any(f.startswith("vectors-") for f in files)
    dense = store.load().dense["e"]
    assert isinstance(dense, HnswDense) and dense.index.hnsw.efSearch == 64
    assert dense.search(data.vectors["e"][4], 1)[0].tolist() == [4]
    assert np.allclose(dense.vectors(np.array([1, 4])), data.vectors["e"][[1, 4]])
    assert np.allclose(store.previous().vectors["e"], data.vectors["e"])


def test_swap_keeps_the_replaced_generation_and_sweeps_the_rest(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "index")
    first = store.commit(generation(seed=1))
    second = store.commit(generation(seed=2))
    assert store.current() == second and (store.path / first).is_dir()  # for readers still loading it
    (store.path / ".tmp-gen-20260101-000000-1-1").mkdir()  # a crashed build's leftover
    third = store.commit(generation(seed=3))
    assert sorted(p.name for p in store.path.glob("*gen-*")) == sorted([second, third])


def test_a_failed_commit_leaves_the_live_generation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FolderStore(tmp_path / "index")
    live = store.commit(generation(seed=1))

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    with pytest.raises(IndexUnavailable) as exc:
        store.commit(generation(seed=2))
    assert "No space left on device" in one_line(exc) and "previous index is unchanged" in one_line(exc)
    assert store.current() == live and not list(store.path.glob(".tmp-*"))
    assert FolderStore(store.path).load().generation == live


def test_crash_between_generation_and_pointer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FolderStore(tmp_path / "index")
    live = store.commit(generation(seed=1))

    def crash(self: FolderStore, name: str) -> None:
        raise OSError(errno.EIO, "simulated crash before the swap")

    with monkeypatch.context() as m:
        m.setattr(FolderStore, "_point_to", crash)
        with pytest.raises(IndexUnavailable, match="simulated crash"):
            store.commit(generation(seed=2))
    orphans = [p.name for p in store.path.glob("gen-*") if p.name != live]
    assert store.current() == live and len(orphans) == 1  # complete but never made current
    newest = store.commit(generation(seed=3))
    assert sorted(p.name for p in store.path.glob("gen-*")) == sorted([live, newest])


@pytest.mark.parametrize("damage", ["non-UTF-8 bytes", "a folder", "garbage", "a path", "empty",
                                    "a missing generation"])
def test_a_corrupt_current_is_one_line(tmp_path: Path, damage: str) -> None:
    store = FolderStore(tmp_path / "index")
    store.commit(generation(seed=1))
    pointer = store.path / "CURRENT"
    if damage == "a folder":
        pointer.unlink()
        (pointer / "sub").mkdir(parents=True)
    else:
        pointer.write_bytes({"non-UTF-8 bytes": b"\xff\xfe\x00gen\x81", "garbage": b"\x1b[2J lol\n",
                             "a path": b"../../etc\n", "empty": b"",
                             "a missing generation": b"gen-20260101-000000-1-1\n"}[damage])
    reader = FolderStore(store.path)
    for read in (reader.load, reader.manifest):
        with pytest.raises(IndexDamaged) as exc:
            read()
        assert one_line(exc).endswith("run `rag index` to rebuild") and "\x1b" not in one_line(exc)
    assert reader.previous() is None
    name = reader.commit(generation(seed=2))  # a build replaces the pointer, whatever it was
    assert reader.load().generation == name


@pytest.mark.parametrize("problem, expected", [
    ("chunk without entry", "chunks whose entry is missing"),
    ("counts", "but its manifest says"),
    ("vector rows", "vectors for e but 4 chunks"),
    ("bm25 rows", "is unreadable (ValueError)"),
])
def test_load_validates_the_generation(tmp_path: Path, problem: str, expected: str) -> None:
    store = FolderStore(tmp_path / "index")
    data = generation()
    if problem == "chunk without entry":
        data = replace(data, chunks=[*data.chunks[:3], replace(data.chunks[3], entry_id="nowhere")])
    elif problem == "counts":
        data = replace(data, manifest=replace(data.manifest, counts=Counts(1, 5, 4)))
    store.commit(data)
    if problem == "vector rows":
        with open(store.path / store.current() / "vectors-e.npy", "wb") as f:
            np.save(f, data.vectors["e"][:3])
        rewrite(store, "vectors-e.npy", (store.path / store.current() / "vectors-e.npy").read_bytes())
    elif problem == "bm25 rows":  # postings of chunks the generation does not have
        docs = np.load(store.path / store.current() / "bm25-docs.npy") + 9
        with open(store.path / store.current() / "bm25-docs.npy", "wb") as f:
            np.save(f, docs)
        rewrite(store, "bm25-docs.npy", (store.path / store.current() / "bm25-docs.npy").read_bytes())
    with pytest.raises(IndexDamaged) as exc:
        FolderStore(store.path).load()
    assert expected in one_line(exc)


@pytest.mark.parametrize("damage", ["flip a byte", "truncate vectors", "garbage manifest", "missing vectors",
                                    "manifest of another schema"])
def test_damaged_files_are_found_by_their_checksums(tmp_path: Path, damage: str) -> None:
    store = FolderStore(tmp_path / "index")
    root = store.path / store.commit(generation())
    if damage == "flip a byte":
        data = bytearray((root / "chunks.jsonl").read_bytes())
        data[len(data) // 2] ^= 0x01
        (root / "chunks.jsonl").write_bytes(bytes(data))
    elif damage == "truncate vectors":
        (root / "vectors-e.npy").write_bytes((root / "vectors-e.npy").read_bytes()[:100])
    elif damage == "garbage manifest":
        (root / "manifest.json").write_bytes(os.urandom(64))
    elif damage == "missing vectors":
        (root / "vectors-e.npy").unlink()
    else:
        manifest = json.loads((root / "manifest.json").read_text())
        manifest["fingerprint"]["schema"] = 3
        (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexDamaged) as exc:
        FolderStore(store.path).load()
    message = one_line(exc)
    expected = {"flip a byte": "chunks.jsonl is corrupt (checksum mismatch)",
                "truncate vectors": "vectors-e.npy is corrupt (checksum mismatch)",
                "garbage manifest": "manifest.json is unreadable", "missing vectors": "vectors-e.npy is missing",
                "manifest of another schema": "written in another format (schema 3"}[damage]
    assert expected in message


def test_one_checksum_pass_per_generation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FolderStore(tmp_path / "index").commit(generation())
    hashed: list[str] = []
    real = rag.store.folder.sha256_file
    monkeypatch.setattr(rag.store.folder, "sha256_file", lambda path: hashed.append(path.name) or real(path))
    store = FolderStore(tmp_path / "index")
    store.load()
    assert not {"terms-indptr.npy", "terms-ids.npy", "terms-counts.npy"} & set(hashed)
    assert len(hashed) == len(set(hashed))
    readers = len(hashed)
    store.manifest()
    store.previous()  # what a build does: its manifest check, then the data to reuse
    assert sorted(hashed[readers:]) == ["terms-counts.npy", "terms-ids.npy", "terms-indptr.npy"]


def test_lock_and_writability(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "index")
    with store.lock(), pytest.raises(IndexUnavailable, match="another `rag index` is building"), \
            store.lock(wait=False):
        pass
    with store.lock(wait=False):  # released
        store.check_writable()
    (tmp_path / "file").write_text("not a folder")
    under_a_file = FolderStore(tmp_path / "file" / "index")
    for attempt in (under_a_file.check_writable, lambda: under_a_file.lock().__enter__()):
        with pytest.raises(IndexUnavailable) as exc:
            attempt()
        assert "Not a directory" in one_line(exc)
    with pytest.raises(IndexUnavailable, match="is not a folder"):
        under_a_file.load()


def test_handle_follows_commits_and_survives_a_bad_one(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "index")
    handle = IndexHandle(FolderStore(store.path))
    with pytest.raises(IndexUnavailable, match="run `rag index` first"):
        handle.get()
    first = store.commit(generation(seed=1))
    old = handle.get()
    assert old.generation == first and handle.get() is old
    second = store.commit(generation(seed=2))
    new = handle.get()
    assert new is not old and new.generation == second
    store.commit(generation(seed=3))
    (store.path / store.current() / "entries.jsonl").write_text("damaged", encoding="utf-8")
    assert handle.get() is new  # the last good generation keeps serving


def test_vector_cache_checkpoints_and_prunes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FolderVectorCache(tmp_path / "cache")
    rows = np.eye(4, dtype=np.float32)
    cache.put(["a", "b"], rows[:2])
    cache.put(["c", "d"], rows[2:])  # never flushed: a kill -9 now would lose none of it
    fresh = FolderVectorCache(tmp_path / "cache")  # a later build, after this one died
    assert np.array_equal(fresh.get(["c"])["c"], rows[2]) and set(fresh.get(["a", "b", "c", "d", "z"])) == set("abcd")
    (log,) = (tmp_path / "cache").glob("log-*.bin")
    log.write_bytes(log.read_bytes()[:-10])  # its last record torn by a power cut
    assert set(fresh.get(["a", "b", "c", "d"])) == {"a", "b"}
    fresh.put(["e"], rows[:1])
    fresh.prune({"b", "e"})  # one stale row of three: more than a quarter, so the files are rewritten
    (shard,) = (tmp_path / "cache").iterdir()
    assert shard.name.startswith("shard-") and set(FolderVectorCache(shard.parent).get(["a", "b", "e"])) == {"b", "e"}
    shard.write_bytes(shard.read_bytes()[:40])  # a shard torn by a power cut
    assert FolderVectorCache(shard.parent).get(["b"]) == {} and not shard.exists()


def test_prune_reads_no_vectors_while_little_is_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-note update of a big index: stale rows are counted from the hashes; no vector is read,
    and a lookup of a few rows reads only the records that hold them."""
    cache = FolderVectorCache(tmp_path / "cache")
    cache.put([f"h{i}" for i in range(8)], np.eye(8, dtype=np.float32))
    monkeypatch.setattr(rag.store.vector_cache, "_log_rows", lambda *a: pytest.fail("prune read the vectors"))
    cache.prune({f"h{i}" for i in range(7)})  # one stale row of eight
    assert len(list((tmp_path / "cache").iterdir())) == 1
    cache.put(["x"], np.ones((1, 8), np.float32))
    monkeypatch.undo()
    read: list[int] = []
    real = rag.store.vector_cache._log_rows
    monkeypatch.setattr(rag.store.vector_cache, "_log_rows", lambda *a: read.append(a[1]) or real(*a))
    fresh = FolderVectorCache(tmp_path / "cache")
    assert set(fresh.get(["x"])) == {"x"} and len(read) == 1 and fresh.missing(["h1", "x", "y"]) == {"y"}


def test_commit_prunes_caches_of_embedders_no_longer_used(tmp_path: Path) -> None:
    store, data = FolderStore(tmp_path / "index"), generation()
    old = store.vector_cache("retired-model/v0")
    old.put(["x"], np.ones((1, 8), np.float32))
    old.flush()
    live = store.vector_cache("e-model/v1")
    live.put([c.hash for c in data.chunks] + ["stale"] * 4, np.ones((8, 8), np.float32))
    live.flush()
    store.commit(data)
    assert not old.root.exists() and live.root.is_dir()
    assert set(store.vector_cache("e-model/v1").get([c.hash for c in data.chunks] + ["stale"])) == {
        c.hash for c in data.chunks}
