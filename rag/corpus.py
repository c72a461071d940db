"""Finding and reading note files, where bad input is turned into a reason instead of a crash."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .notes import NOTE_SUFFIXES, split_lines


class NoteError(Exception):
    """A note that cannot be indexed; the message is the one-line reason shown to the user.

    ``keep_previous``: whether an earlier indexed version should survive. True for problems that
    say nothing about what the user wants indexed (unreadable, oversized, undecodable); false when
    the note is really gone or empty, so its old entries go too.
    """

    def __init__(self, reason: str, keep_previous: bool = True) -> None:
        super().__init__(reason)
        self.keep_previous = keep_previous


@dataclass(frozen=True)
class NoteFile:
    rel: str  # relative to the corpus, forward slashes
    path: Path


def find_notes(corpus: Path) -> tuple[list[NoteFile], list[tuple[str, str]]]:
    """Note files under ``corpus`` (sorted) and (file, reason) for those passed over.

    Symlinks are followed only when they stay inside the corpus; hidden files and folders
    (``.obsidian``, ``.git``) are not notes.
    """
    root = corpus.resolve()
    notes: list[NoteFile] = []
    skipped: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(NOTE_SUFFIXES):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root):
                    skipped.append((rel, "symlink pointing outside the corpus: not followed"))
                    continue
            notes.append(NoteFile(rel, path))
    return notes, skipped


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(note: NoteFile, max_bytes: int) -> bytes:
    """The note's bytes, or a NoteError when it is over the cap, unreadable or just vanished."""
    try:
        with open(note.path, "rb") as f:
            data = f.read(max_bytes + 1)  # never more than the cap, even if the file grows meanwhile
    except FileNotFoundError:
        raise NoteError("deleted while indexing", keep_previous=False) from None
    except OSError as exc:
        raise NoteError(f"unreadable: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        size = max(len(data), _size(note.path))
        raise NoteError(f"{_human(size)} is over the {_human(max_bytes)} cap (RAG_MAX_NOTE_BYTES)")
    return data


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _human(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def _plausible_chinese(text: str) -> bool:
    """Only ASCII, CJK ideographs and CJK/full-width punctuation: what a mis-decoding rarely yields."""
    return all(ord(ch) < 128 or "\u2000" <= ch <= "\u206f" or "\u3000" <= ch <= "\u303f"
               or "\u4e00" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef" for ch in text)


def decode_note(data: bytes) -> str:
    """UTF-8 (with or without BOM), else what charset-normalizer detects, else GB18030.

    Detection is unreliable on short notes (a few GBK-encoded Chinese lines come out as cp949 or
    big5), so a detected decoding that is not plausible Chinese loses to a clean GB18030 one.
    """
    if not data.strip():
        raise NoteError("empty file", keep_previous=False)
    if b"\x00" in data[:8192]:
        raise NoteError("binary file (NUL bytes), not a text note")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    detected = str(best) if best is not None and best.encoding is not None else None
    if detected is not None and _plausible_chinese(detected):
        return detected
    try:
        gb = data.decode("gb18030")
        if _plausible_chinese(gb):
            return gb
    except UnicodeDecodeError:
        pass
    if detected is None:
        raise NoteError("not UTF-8 and no text encoding could be detected")
    if sum(ch.isprintable() or ch.isspace() for ch in detected) < 0.95 * len(detected):
        raise NoteError(f"not UTF-8; decoding as {best.encoding} gives mostly unprintable text")
    return detected


def read_corpus(corpus: Path, max_bytes: int) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Every note the indexer would read, as rel → text (lines numbered as the segmenter numbers
    them), and (rel, reason) for the notes it would skip: for tools (eval, bench) that read the
    corpus themselves, so a bad note is passed over for the same reason, not a traceback."""
    notes, skipped = find_notes(corpus)
    texts: dict[str, str] = {}
    for note in notes:
        try:
            texts[note.rel] = "\n".join(split_lines(decode_note(read_bytes(note, max_bytes))))
        except NoteError as exc:
            skipped.append((note.rel, str(exc)))
    return texts, skipped
