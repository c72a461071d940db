"""Fault battery, notes group: hostile and clumsy note files each give one reason, never a hang,
a crash or gibberish. Fast tier: no model loads (chunking gets a plain token counter)."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rag.ingest.chunking import chunk_entries
from rag.ingest.corpus import NoteError, NoteFile, decode_note, display_name, find_notes, read_bytes
from rag.ingest.notes import split_entries

MAX_BYTES = 5 * 1024 * 1024
NOTE = "# Paper\n\nA regular note about attention.\n"


def within(seconds: float, fn: Callable[[], Any], fifo: Path | None = None) -> Any:
    """``fn()``, failing the test (instead of hanging it) when it takes longer than ``seconds``;
    a reader stuck opening ``fifo`` is released by opening its other end."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"did not finish within {seconds} s")
    if "error" in result:
        raise result["error"]
    return result["value"]


def scan(corpus: Path) -> tuple[dict[str, str], dict[str, str]]:
    """What a build would see: {file: text or reason} for notes read, {file: reason} passed over."""
    notes, skipped = find_notes(corpus)
    read: dict[str, str] = {}
    for note in notes:
        try:
            read[note.rel] = decode_note(read_bytes(note, MAX_BYTES))
        except NoteError as exc:
            read[note.rel] = f"skipped: {exc}"
    return read, dict(skipped)


def reason(data: bytes) -> NoteError:
    with pytest.raises(NoteError) as caught:
        decode_note(data)
    return caught.value


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "good.md").write_text(NOTE, encoding="utf-8")
    return folder


# ---------------------------------------------------------------------------- special files

def test_fifo_in_corpus_is_passed_over_without_hanging(corpus: Path) -> None:
    os.mkfifo(corpus / "fifo.md")
    read, skipped = within(5, lambda: scan(corpus), fifo=corpus / "fifo.md")
    assert read == {"good.md": NOTE}
    assert skipped == {"fifo.md": "a FIFO (named pipe), not a regular file: passed over"}


def test_fifo_swapped_in_after_listing_is_refused_by_the_read(corpus: Path) -> None:
    os.mkfifo(corpus / "late.md")  # read_bytes checks the opened descriptor, not an earlier stat
    with pytest.raises(NoteError, match="FIFO") as caught:
        within(5, lambda: read_bytes(NoteFile("late.md", corpus / "late.md"), MAX_BYTES), fifo=corpus / "late.md")
    assert caught.value.keep_previous is False


def test_socket_in_corpus_is_passed_over(corpus: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(corpus / "sock.md"))
        read, skipped = within(5, lambda: scan(corpus))
    assert read == {"good.md": NOTE}
    assert skipped == {"sock.md": "a socket, not a regular file: passed over"}


def test_device_is_refused_by_the_read() -> None:
    with pytest.raises(NoteError, match=r"^a character device, not a regular file"):
        within(5, lambda: read_bytes(NoteFile("zero.md", Path("/dev/zero")), MAX_BYTES))


def test_symlink_to_a_fifo_inside_the_corpus_is_passed_over(corpus: Path) -> None:
    os.mkfifo(corpus / "pipe")  # no note suffix: not listed itself
    (corpus / "alias.md").symlink_to(corpus / "pipe")
    _, skipped = within(5, lambda: scan(corpus), fifo=corpus / "pipe")
    assert skipped == {"alias.md": "a FIFO (named pipe), not a regular file: passed over"}


# ---------------------------------------------------------------------------- symlinks and names

def test_symlink_loop_is_skipped(corpus: Path) -> None:
    (corpus / "a.md").symlink_to(corpus / "b.md")
    (corpus / "b.md").symlink_to(corpus / "a.md")
    (corpus / "self.md").symlink_to(corpus / "self.md")
    read, skipped = scan(corpus)
    assert read == {"good.md": NOTE}
    assert skipped == {name: "symlink loop: not followed" for name in ("a.md", "b.md", "self.md")}


def test_broken_symlink_is_skipped(corpus: Path) -> None:
    (corpus / "dangling.md").symlink_to(corpus / "missing.md")
    _, skipped = scan(corpus)
    assert skipped == {"dangling.md": "broken symlink (its target does not exist)"}


def test_non_utf8_file_name_is_passed_over_escaped(corpus: Path) -> None:
    root = os.fsencode(corpus)
    with open(os.path.join(root, b"caf\xe9.md"), "wb") as f:
        f.write(NOTE.encode())
    os.mkdir(os.path.join(root, b"dir\xff"))
    with open(os.path.join(root, b"dir\xff", b"inner.md"), "wb") as f:
        f.write(NOTE.encode())
    notes, skipped = find_notes(corpus)
    assert [n.rel for n in notes] == ["good.md"]
    assert skipped == [("caf\ufffd.md", "file name is not valid UTF-8: rename the file to index it"),
                       ("dir\ufffd/inner.md", "file name is not valid UTF-8: rename the file to index it")]
    assert [display_name(name) for name, _ in skipped] == ["caf\ufffd.md", "dir\ufffd/inner.md"]  # escaped once
    json.dumps(skipped, ensure_ascii=False).encode("utf-8")  # what the manifest writer does


def test_file_name_with_newline_cannot_fake_a_line() -> None:
    fake = "x.md: ok\nskipped secret.md\x1b[2K\u202egnp.md"
    shown = display_name(fake)
    assert "\n" not in shown and "\x1b" not in shown and "\u202e" not in shown
    assert shown == "x.md: ok\\nskipped secret.md\\x1b[2K\\u202egnp.md"
    assert display_name("my notes 笔记/第 1 篇 note.md") == "my notes 笔记/第 1 篇 note.md"
    assert display_name("a\\n.md") == "a\\\\n.md"  # a real backslash stays tellable from an escape
    assert display_name("bad\udce9\ud800.md") == "bad\\xe9\\ud800.md"
    display_name("bad\udce9\ud800.md").encode("utf-8")


# ---------------------------------------------------------------------------- reading

def test_note_vanished_between_listing_and_reading(corpus: Path) -> None:
    notes, _ = find_notes(corpus)
    (corpus / "good.md").unlink()
    with pytest.raises(NoteError, match=r"^deleted while indexing$") as caught:
        read_bytes(notes[0], MAX_BYTES)
    assert caught.value.keep_previous is False


def read_without_privileges(note: NoteFile) -> str:
    """``read_bytes``'s verdict in a child that dropped root (root reads any file), as "reason|keep"."""
    if os.geteuid() != 0:
        try:
            read_bytes(note, MAX_BYTES)
        except NoteError as exc:
            return f"{exc}|{exc.keep_previous}"
        return "read"
    out, into = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                read_bytes(note, MAX_BYTES)
                verdict = "read"
            except NoteError as exc:
                verdict = f"{exc}|{exc.keep_previous}"
            os.write(into, verdict.encode())
        finally:
            os._exit(0)
    os.close(into)
    verdict = os.read(out, 4096).decode()
    os.close(out)
    os.waitpid(pid, 0)
    return verdict


def test_permission_denied_note(corpus: Path) -> None:
    (corpus / "good.md").chmod(0)
    verdict = read_without_privileges(NoteFile("good.md", corpus / "good.md"))
    assert verdict == "unreadable: Permission denied|True"


@pytest.mark.parametrize("data", [b"", b"  \n\n\t\n", "\ufeff \n".encode(), " \n".encode("utf-16"),
                                  "\n".encode("utf-32")], ids=["empty", "whitespace", "utf8-bom-whitespace",
                                                              "utf16-whitespace", "utf32-newline"])
def test_empty_and_whitespace_only_notes(data: bytes) -> None:
    error = reason(data)
    assert str(error) == "empty file" and error.keep_previous is False


# ---------------------------------------------------------------------------- encodings

CHINESE = "# 稀疏注意力笔记\n\n本文提出一种新的稀疏注意力方法，长文本推理显存降低一半。\n"
JAPANESE = ("# 論文メモ\n\nこの論文では、大規模言語モデルの推論を高速化する新しい手法を提案している。"
            "KVキャッシュを削減。\n")
KOREAN = ("# 논문 메모\n\n이 논문은 대규모 언어 모델의 추론 속도를 높이는 새로운 방법을 제안한다. "
          "KV 캐시 메모리를 줄인다.\n")
FRENCH = "# Notes de lecture\n\nCet article présente une méthode très efficace pour réduire la mémoire du cache.\n"
TRADITIONAL = "# 稀疏注意力筆記\n\n本文提出一種新的稀疏注意力方法，長文本推理顯存降低一半。\n"
GERMAN = ("# Notizen\n\nDie Größe des Modells wurde für die Übersetzung verkleinert. "
          "Müller berichtet über Verbesserungen.\n")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_notes_with_bom_decode(encoding: str) -> None:
    text = CHINESE + "English too: KV-cache.\n"
    data = text.encode(encoding) if encoding in ("utf-16", "utf-32") else ("\ufeff" + text).encode(encoding)
    assert decode_note(data) == text


def test_bom_followed_by_garbage_is_not_text() -> None:
    assert "not valid UTF-16" in str(reason(b"\xff\xfe" + b"\x00\xd8" * 100))  # lone surrogates
    garbage = b"".join(bytes([0x00, hi]) for hi in range(0xE0, 0xF8)) * 20  # private-use characters
    assert str(reason(b"\xff\xfe" + garbage)) == "starts with a UTF-16 byte-order mark but does not read as text"


@pytest.mark.parametrize(("text", "encoding"), [
    pytest.param(JAPANESE, "shift_jis", id="japanese-shift_jis"),
    pytest.param(JAPANESE, "euc_jp", id="japanese-euc_jp"),
    pytest.param(JAPANESE, "cp932", id="japanese-cp932"),
    pytest.param("# メモ\n\nこれはテストです。\n", "shift_jis", id="short-japanese-shift_jis"),
    pytest.param(KOREAN, "euc_kr", id="korean-euc_kr"),
    pytest.param(KOREAN, "cp949", id="korean-cp949"),
    pytest.param("# 메모\n\n테스트입니다.\n", "euc_kr", id="short-korean-euc_kr"),
    pytest.param(FRENCH, "latin-1", id="french-latin1"),
    pytest.param(FRENCH, "cp1252", id="french-cp1252"),
    pytest.param(GERMAN, "latin-1", id="german-latin1"),
    pytest.param("# Notes\n\nThe “best” results – 3× faster, 5 €.\n", "cp1252", id="english-cp1252-signs"),
    pytest.param(CHINESE, "gbk", id="chinese-gbk"),
    pytest.param(CHINESE, "gb18030", id="chinese-gb18030"),
    pytest.param(TRADITIONAL, "big5", id="chinese-big5"),
])
def test_legacy_encoded_notes_decode_in_their_own_script(text: str, encoding: str) -> None:
    assert decode_note(text.encode(encoding)) == text


def test_legacy_text_no_encoding_reads_is_skipped() -> None:
    mixed = CHINESE.encode("gbk") + "Un café très noir.\n".encode("latin-1")  # two encodings in one file
    error = reason(mixed)
    assert str(error).startswith("not UTF-8, and no encoding reads as plausible text (closest: ")
    assert str(error).endswith("save it as UTF-8") and error.keep_previous is True


# ---------------------------------------------------------------------------- chunking cost

def e5_like(text: str) -> int:
    """One token per character plus five for every call, as e5 charges specials for ""."""
    return len(text) + 5


def entries_of(text: str) -> list:
    return split_entries(text, "big.md")


def test_text_without_separators_makes_full_size_chunks() -> None:
    chunks = chunk_entries(entries_of("# Big\n\n" + "x" * 20_000), 256, 32, e5_like)
    budget = 256 - e5_like("Big") - 2
    assert all(len(c.text) <= budget for c in chunks)
    assert chunks[0].text == "# Big"  # the heading line is a paragraph of its own
    assert min(len(c.text) for c in chunks[1:-1]) >= budget - 1  # not 25-character slivers
    assert len(chunks) <= 20_000 // (budget - 32) + 2


def test_separators_cost_no_phantom_tokens() -> None:
    words = " ".join(["attention"] * 5000)
    chunks = chunk_entries(entries_of("# Big\n\n" + words), 256, 32, e5_like)
    budget = 256 - e5_like("Big") - 2
    assert all(budget - 12 <= len(c.text) <= budget for c in chunks[1:-1])
