"""Finding and reading note files, where bad input is turned into a reason instead of a crash."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .notes import NOTE_SUFFIXES


class NoteError(Exception):
    """A note that cannot be indexed; the message is the one-line reason shown to the user."""


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
    try:
        size = note.path.stat().st_size
        if size > max_bytes:
            raise NoteError(f"{size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB cap "
                            "(RAG_MAX_NOTE_BYTES)")
        return note.path.read_bytes()
    except FileNotFoundError:
        raise NoteError("deleted while indexing") from None
    except OSError as exc:
        raise NoteError(f"unreadable: {exc.strerror or exc}") from None


def decode_note(data: bytes) -> str:
    """UTF-8 (with or without BOM), else the encoding charset-normalizer is confident about."""
    if not data.strip():
        raise NoteError("empty file")
    if b"\x00" in data[:8192]:
        raise NoteError("binary file (NUL bytes), not a text note")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise NoteError("not UTF-8 and no text encoding could be detected")
    text = str(best)
    if sum(ch.isprintable() or ch.isspace() for ch in text) < 0.95 * len(text):
        raise NoteError(f"not UTF-8; decoding as {best.encoding} gives mostly unprintable text")
    return text
