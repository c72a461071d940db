"""Fault battery, index faults: a missing, damaged or unusable index folder (and corpus folder)
under ``rag search`` and ``rag index``. A reader gets one line and exit 2; ``rag index`` rebuilds
what it can and says in one line what it cannot, keeping the previous index. Fast tier: in-process,
``hash`` embedder (tests/test_store.py and test_index.py hold the store-level probes: kill -9,
disk full, read-only folder as another user)."""

from __future__ import annotations

import errno
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import rag.store.folder_files
from tests.battery import PROGRESS, Run, assert_no_traceback, assert_one_line_error
from tests.conftest import QUOKKA

RagMain = Callable[..., Run]


@pytest.fixture
def env(tmp_path: Path, rag_main: RagMain) -> dict[str, str]:
    """A built index of one note."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "quokka.md").write_text(QUOKKA, encoding="utf-8")
    env = {"RAG_CORPUS": str(tmp_path / "corpus"), "RAG_INDEX": str(tmp_path / "index"), "RAG_EMBEDDERS": "hash"}
    assert rag_main("index", env=env).code == 0
    return env


def generation(env: dict[str, str]) -> Path:
    index = Path(env["RAG_INDEX"])
    return index / (index / "CURRENT").read_text().strip()


def searches(rag_main: RagMain, env: dict[str, str]) -> bool:
    run = rag_main("search", "Quokka-Attention", "--json", env=env)
    return run.code == 0 and json.loads(run.out)["hits"][0]["file"] == "quokka.md"


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def replace_with_folder(path: Path) -> None:
    path.unlink()
    (path / "x").mkdir(parents=True)


DAMAGE: dict[str, Callable[[dict[str, str]], None]] = {
    "CURRENT not UTF-8": lambda env: (Path(env["RAG_INDEX"]) / "CURRENT").write_bytes(b"\xff\xfe\x00gen\x81"),
    "CURRENT a folder": lambda env: replace_with_folder(Path(env["RAG_INDEX"]) / "CURRENT"),
    "CURRENT empty": lambda env: (Path(env["RAG_INDEX"]) / "CURRENT").write_bytes(b""),
    "CURRENT a path": lambda env: (Path(env["RAG_INDEX"]) / "CURRENT").write_bytes(b"../../../etc\n"),
    "CURRENT terminal escapes": lambda env: (Path(env["RAG_INDEX"]) / "CURRENT").write_bytes(b"\x1b[2J\x1b[31mgen\n"),
    "CURRENT names a missing generation": lambda env: (Path(env["RAG_INDEX"]) / "CURRENT").write_text(
        "gen-20260101-000000-1-1\n"),
    "generation deleted": lambda env: shutil.rmtree(generation(env)),
    "manifest garbage": lambda env: (generation(env) / "manifest.json").write_bytes(b"{not json"),
    "manifest not UTF-8": lambda env: (generation(env) / "manifest.json").write_bytes(b"\xff\xfe"),
    "manifest a list": lambda env: (generation(env) / "manifest.json").write_text("[1, 2]"),
    "manifest deleted": lambda env: (generation(env) / "manifest.json").unlink(),
    "entries flipped byte": lambda env: flip_byte(generation(env) / "entries.jsonl"),
    "entries truncated": lambda env: truncate(generation(env) / "entries.jsonl"),
    "entries deleted": lambda env: (generation(env) / "entries.jsonl").unlink(),
    "chunks flipped byte": lambda env: flip_byte(generation(env) / "chunks.jsonl"),
    "chunks emptied": lambda env: (generation(env) / "chunks.jsonl").write_bytes(b""),
    "vectors truncated": lambda env: truncate(next(generation(env).glob("vectors-*.npy"))),
    "vectors deleted": lambda env: next(generation(env).glob("vectors-*.npy")).unlink(),
    "bm25 postings deleted": lambda env: (generation(env) / "bm25-docs.npy").unlink(),
    "vocabulary garbage": lambda env: (generation(env) / "vocab.json").write_text('{"doc_freq": 5}'),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_is_one_line_then_rebuilt(damage: str, rag_main: RagMain, env: dict[str, str]) -> None:
    """Issue 16 bug 10 (a corrupt CURRENT) and load-time validation: one line, then `rag index` repairs."""
    DAMAGE[damage](env)
    line = assert_one_line_error(rag_main("search", "quokka", env=env))
    assert "rag index" in line and "\x1b" not in line
    assert_one_line_error(rag_main("ask", "quokka", env=env))
    run = rag_main("index", env=env)
    assert_no_traceback(run)
    assert run.code == 0, run.err
    assert searches(rag_main, env)


def test_no_index_yet_is_one_line(rag_main: RagMain, tmp_path: Path) -> None:
    env = {"RAG_CORPUS": str(tmp_path), "RAG_INDEX": str(tmp_path / "none"), "RAG_EMBEDDERS": "hash"}
    assert_one_line_error(rag_main("search", "quokka", env=env), "rag index")


@pytest.mark.parametrize("where", ["a file", "under a file", "a FIFO", "/proc", "/dev/null"])
def test_unusable_index_folder_is_one_line(where: str, rag_main: RagMain, env: dict[str, str],
                                           tmp_path: Path) -> None:
    """Issue 16 bug 9: OS errors on the index folder gave tracebacks after all the embedding work."""
    import os

    path = {"a file": tmp_path / "file", "under a file": tmp_path / "file" / "index", "a FIFO": tmp_path / "fifo",
            "/proc": Path("/proc/index"), "/dev/null": Path("/dev/null")}[where]
    (tmp_path / "file").write_text("not a folder")
    os.mkfifo(tmp_path / "fifo")
    bad = {**env, "RAG_INDEX": str(path)}
    assert_one_line_error(rag_main("index", env=bad))
    assert_one_line_error(rag_main("search", "quokka", env=bad))


def test_disk_full_while_writing_keeps_the_old_index(rag_main: RagMain, env: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (Path(env["RAG_CORPUS"]) / "more.md").write_text("# More\n\nWombat-Former digs.\n", encoding="utf-8")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(rag.store.folder_files, "_write_jsonl", full)
        assert_one_line_error(rag_main("index", env=env), "No space left on device", "previous index is unchanged")
    assert searches(rag_main, env)


@pytest.mark.parametrize("where", ["missing", "a file", "empty"])
def test_odd_corpus_folder(where: str, rag_main: RagMain, env: dict[str, str], tmp_path: Path) -> None:
    corpus = tmp_path / where
    if where == "a file":
        corpus.write_text("# not a folder\n")
    elif where == "empty":
        corpus.mkdir()
    run = rag_main("index", env={**env, "RAG_CORPUS": str(corpus)})
    if where == "empty":  # nothing to index is no error: the notes are gone, so are their entries
        assert run.code == 0 and [x for x in run.err_lines if not PROGRESS.match(x)][-1].startswith("indexed 0 notes")
    else:
        assert_one_line_error(run, "corpus")
        assert searches(rag_main, env)  # the old index stays


def test_index_check_lists_each_problem_of_a_folder_index(rag_main: RagMain, env: dict[str, str]) -> None:
    """Issue 25: `rag index --check` verifies the live generation against its manifest, builds nothing."""
    fine = rag_main("index", "--check", env=env)
    assert fine.code == 0 and "is whole: 1 notes" in fine.out and fine.err == ""
    DAMAGE["entries flipped byte"](env)
    DAMAGE["vectors deleted"](env)
    damaged = rag_main("index", "--check", env=env)
    assert_no_traceback(damaged)
    assert damaged.code == 2 and damaged.out == "" and len(damaged.err_lines) == 2, damaged.err
    assert "entries.jsonl is corrupt" in damaged.err and "vectors-hash.npy is missing" in damaged.err
    assert rag_main("index", env=env).code == 0
    assert rag_main("index", "--check", env=env).code == 0
