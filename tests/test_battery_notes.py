"""Fault battery, notes: one hostile or clumsy file in a corpus beside a good note, through
``rag index``. The build always ends (exit 0, quickly), the good note is searchable, and the bad
file is either indexed as text or skipped with one escaped line saying why. Fast tier: in-process,
``hash`` embedder (tests/test_fault_notes.py holds the unit-level probes of rag/ingest/corpus.py)."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.app.render import index_status, report_text
from rag.embed.models import Models
from rag.ingest.corpus import display_name
from rag.service import Notes
from tests.battery import PROGRESS, Run, assert_no_traceback
from tests.conftest import settings_for

RagMain = Callable[..., Run]
GOOD = "# Good\n\n## Kangaroo-Net: hopping transformers\n\nKangaroo-Net hops over tokens.\n"


def fifo(path: Path) -> None:
    os.mkfifo(path)


def unix_socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


def loop(path: Path) -> None:
    path.symlink_to(path.name)


def pair_loop(path: Path) -> None:
    path.symlink_to(path.with_name("b.md"))
    path.with_name("b.md").symlink_to(path.name)


def broken(path: Path) -> None:
    path.symlink_to(path.with_name("gone.md"))


def outside(path: Path) -> None:
    path.symlink_to("/etc/passwd")


def folder(path: Path) -> None:
    (path / "inner").mkdir(parents=True)


def write(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def sparse(size: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with open(path, "wb") as f:
            f.write(b"# Big\n\n")
            f.truncate(size)

    return make


TEXT = "# Wombat notes\n\n## Wombat-Former\n\nWombat-Former digs tunnels through attention.\n"
#: name → (how to make it, "indexed" or a fragment of the skip reason)
PROBES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "FIFO": ("fifo.md", fifo, "a FIFO (named pipe), not a regular file"),
    "socket": ("sock.md", unix_socket, "a socket, not a regular file"),
    "folder named .md": ("dir.md", folder, "indexed-nothing"),
    "symlink to itself": ("loop.md", loop, "symlink loop"),
    "symlink pair loop": ("a.md", pair_loop, "symlink loop"),
    "broken symlink": ("broken.md", broken, "broken symlink"),
    "symlink out of the corpus": ("passwd.md", outside, "pointing outside the corpus"),
    "name not UTF-8": (os.fsdecode(b"bad-\xff\xfe.md"), write(TEXT.encode()), "file name is not valid UTF-8"),
    "newline in the name": ("fake\nindexed 99 notes.md", write(TEXT.encode()), "indexed"),
    "terminal escape in the name": ("\x1b[2Jclear.md", write(TEXT.encode()), "indexed"),
    "right-to-left override in the name": ("evil\u202edm.txt", write(TEXT.encode()), "indexed"),
    "UTF-16 LE with BOM": ("u16le.md", write(TEXT.encode("utf-16")), "indexed"),
    "UTF-16 BE with BOM": ("u16be.md", write(b"\xfe\xff" + TEXT.encode("utf-16-be")), "indexed"),
    "UTF-32 with BOM": ("u32.md", write(TEXT.encode("utf-32")), "indexed"),
    "UTF-8 with BOM": ("bom.md", write(b"\xef\xbb\xbf" + TEXT.encode()), "indexed"),
    "CRLF line ends": ("crlf.md", write(TEXT.replace("\n", "\r\n").encode()), "indexed"),
    "CR line ends": ("cr.md", write(TEXT.replace("\n", "\r").encode()), "indexed"),
    "GBK": ("gbk.md", write("# 袋熊笔记\n\n## Wombat-Former\n\nWombat-Former 在注意力中挖隧道，显存降低一半。\n"
                            .encode("gbk")), "indexed"),
    "Latin-1": ("latin1.md", write("# Café notes\n\n## Wombat-Former\n\nWombat-Former über Kräfte: "
                                   "très élégant, naïve façade.\n".encode("latin-1")), "indexed"),
    "binary (PNG)": ("img.md", write(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4), "binary file"),
    "NUL in the middle": ("nul.md", write(TEXT.encode() + b"\x00tail"), "binary file"),
    "random high bytes": ("noise.md", write(bytes(range(128, 256)) * 8), "not UTF-8"),
    "empty": ("empty.md", write(b""), "empty file"),
    "whitespace only": ("blank.md", write(b" \n\t\n\r\n"), "empty file"),
    "BOM only": ("bomonly.md", write(b"\xef\xbb\xbf"), "empty file"),
    "UTF-16 BOM then garbage": ("badbom.md", write(b"\xff\xfe\x00\xd8"), "byte-order mark"),
    "over the size cap": ("big.md", sparse(6 * 1024 * 1024), "over the"),
    "one 300 kB line": ("line.md", write(b"# Dump\n\n" + b"wombat " * 43_000), "in part"),
    "no separators at all": ("blob.md", write(b"# Blob\n\n" + b"x" * 30_000), "indexed"),
    "10k nested blockquotes": ("quote.md", write(b"# Q\n\n" + b">" * 10_000 + b" Wombat-Former\n"), "indexed"),
    "5k nested list levels": ("list.md", write(b"# L\n\n" + b"".join(b"  " * i + b"- Wombat-Former\n"
                                                                    for i in range(0, 5000, 50))), "indexed"),
    "10k heading levels": ("heads.md", write(b"#" * 10_000 + b" Wombat-Former\n\ntext\n"), "indexed"),
    "2000 headings": ("many.md", write(b"".join(b"## H%d\n\nWombat-Former %d\n\n" % (i, i) for i in range(2000))),
                      "in part"),
    "unclosed code fence": ("fence.md", write(b"# F\n\n```python\nprint('Wombat-Former')\n"), "indexed"),
    "100 kB title": ("title.md", write(b"# " + b"Wombat" * 17_000 + b"\n\ntext\n"), "indexed"),
    "only a link": ("link.md", write(b"https://example.org/wombat-former\n"), "indexed"),
    "HTML page": ("page.md", write(b"<html><head><script>alert(1)</script></head><body>Wombat-Former</body></html>"),
                  "indexed"),
    "control characters": ("ctrl.md", write(b"# C\n\nWombat-Former \x07\x08\x1b[31m red \x1b[0m\x0c\n"), "indexed"),
    "lone surrogate as CESU bytes": ("cesu.md", write(b"# S\n\nWombat-Former \xed\xa0\x80 x\n"), "indexed-or-skipped"),
}


@pytest.mark.parametrize("probe", PROBES)
def test_hostile_note_never_stops_the_build(probe: str, rag_main: RagMain, tmp_path: Path) -> None:
    """Issue 16 bugs 1, 3, 4, 19 and the cost-bomb and encoding risks, each as one file."""
    name, make, expected = PROBES[probe]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.md").write_text(GOOD, encoding="utf-8")
    make(corpus / name)
    env = {"RAG_CORPUS": str(corpus), "RAG_INDEX": str(tmp_path / "index"), "RAG_EMBEDDERS": "hash",
           "RAG_MAX_CHUNKS_PER_NOTE": "40"}
    release = threading.Timer(20, lambda: os.close(os.open(corpus / name, os.O_WRONLY | os.O_NONBLOCK)))
    if probe == "FIFO":
        release.start()  # frees a build stuck opening the FIFO, so a regression fails instead of hanging
    started = time.monotonic()
    run = rag_main("index", env=env)
    release.cancel()
    assert time.monotonic() - started < 15
    assert_no_traceback(run)
    assert run.code == 0 and run.out == ""
    *lines, summary = [line for line in run.err_lines if not PROGRESS.match(line)]
    assert summary.startswith("indexed "), run.err
    shown = display_name(name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    partial = [line for line in lines if line.startswith(f"{shown}: indexed in part, its first 40 of ")]
    skips = [line for line in lines if line not in partial]
    assert all(line.startswith("skipped ") for line in skips), skips
    if expected == "in part":  # issue 25: over the chunk cap, the first chunks are indexed, not none
        assert partial and not skips, lines
    elif expected.startswith("indexed"):
        assert not [s for s in skips if shown in s] or expected == "indexed-or-skipped", skips
    else:
        assert [s for s in skips if s.startswith(f"skipped {shown}") and expected in s], (shown, skips)
    hits = json.loads(rag_main("search", "Kangaroo-Net hops", "--json", "-k", "1", env=env).out)["hits"]
    assert hits[0]["file"] == "good.md"
    if expected == "indexed":
        found = json.loads(rag_main("search", "Wombat-Former", "--json", "--file", name, env=env).out)["hits"]
        assert found, f"{name!r} was not indexed"


@pytest.mark.parametrize("name", ["x.md: ok\nindexed 99 notes: all fine\x1b[2K.md", "a\rindexed 99 notes.md",
                                  "tick` [click](javascript:alert(1)) `.md", "<img src=x onerror=alert(1)>.md"])
def test_a_bad_file_named_to_fake_lines_is_escaped_everywhere(name: str, rag_main: RagMain, tmp_path: Path,
                                                             models: Models) -> None:
    """A file name cannot fake a line or markup in `rag index`'s output nor in the app's Index tab."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.md").write_text(GOOD, encoding="utf-8")
    (corpus / name).write_bytes(b"\x00binary")
    env = {"RAG_CORPUS": str(corpus), "RAG_INDEX": str(tmp_path / "index"), "RAG_EMBEDDERS": "hash"}
    run = rag_main("index", env=env)
    assert run.code == 0
    skips = [line for line in run.err.split("\n") if line.startswith("skipped ")]
    assert skips == [f"skipped {display_name(name)}: binary file (NUL bytes), not a text note"]
    assert not any(line.startswith("indexed 99") for line in run.err.splitlines())
    notes = Notes(settings_for(corpus, tmp_path / "index"), models)
    for shown in (report_text(notes.build()), index_status(notes.index())):
        line = next(x for x in shown.split("\n") if "binary file" in x)
        span = re.match(r"- (`+) ?(.*?) ?\1: binary file", line)  # one code span holds the whole name
        assert span and max(map(len, re.findall("`+", span[2])), default=0) < len(span[1]), line
        assert "<img" not in line and "\r" not in line and "\x1b" not in line, line
        assert not any(x.startswith("indexed 99") for x in shown.split("\n"))


def test_a_note_reached_through_several_names_is_indexed_once(rag_main: RagMain, tmp_path: Path) -> None:
    """Issue 25 risk: a note reached through a symlink was indexed once per name (3 hits for one entry)."""
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "sub" / "real.md").write_text(GOOD, encoding="utf-8")
    (corpus / "a-link.md").symlink_to(corpus / "sub" / "real.md")
    os.link(corpus / "sub" / "real.md", corpus / "hard.md")
    env = {"RAG_CORPUS": str(corpus), "RAG_INDEX": str(tmp_path / "index"), "RAG_EMBEDDERS": "hash"}
    run = rag_main("index", env=env)
    assert run.code == 0 and run.err_lines[-1].startswith("indexed 1 notes"), run.err
    assert sorted(line for line in run.err_lines if "the same file as" in line) == [
        "skipped a-link.md: the same file as hard.md: indexed once, under that name",
        "skipped sub/real.md: the same file as hard.md: indexed once, under that name"]  # hard links: the first name
    hits = json.loads(rag_main("search", "Kangaroo-Net", "--json", env=env).out)["hits"]
    assert {h["file"] for h in hits} == {"hard.md"}
    assert len({(h["title"], h["line_start"]) for h in hits}) == len(hits)  # each entry once
    assert rag_main("index", env=env).err_lines[-1].startswith("index is up to date")
