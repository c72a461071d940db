"""Notes added from the app: a safe file name, the indexer's own checks, never an overwrite."""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from pathlib import Path

from rag.errors import RagError
from rag.ingest.corpus import NoteError, decode_note
from rag.ingest.notes import NOTE_SUFFIXES


class UploadError(RagError, ValueError):
    """An uploaded file that is not added; the message is shown as is."""


def safe_note_name(name: str) -> str:
    """A plain file name for the corpus folder: no folders, no dot-files, a note suffix.

    Browsers may send a full path (``C:\\Users\\…``) or ``../`` tricks; only the last part
    survives, and any character outside letters, digits, ``._-`` and spaces becomes ``_``.
    """
    base = unicodedata.normalize("NFC", re.split(r"[/\\]", name)[-1]).strip()
    base = re.sub(r"[^\w.\- ]", "_", base).lstrip(". ")
    if len(base) > 120:
        stem, dot, suffix = base.rpartition(".")
        base = stem[: 119 - len(suffix)] + dot + suffix
    if not base.lower().endswith((".md", ".txt")):
        raise UploadError(f"{name}: only .md, .txt and .org notes can be added")
    if base.lower() in NOTE_SUFFIXES or not base.rpartition(".")[0].strip("._- "):
        raise UploadError(f"{name}: the file name has no usable characters")
    return base


def add_note(corpus: Path, name: str, data: bytes, max_bytes: int) -> str:
    """Check an uploaded note and write it into the corpus as UTF-8; returns its file name.

    The checks are the indexer's own (size cap, text decoding), so a note accepted here is not
    skipped later. The text goes to a hidden temporary file first and is then hard-linked under
    its name, so a watcher never sees half a note and an existing note is never overwritten.
    """
    safe = safe_note_name(name)
    if len(data) > max_bytes:
        raise UploadError(f"{safe}: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB cap")
    try:
        text = decode_note(data)
    except NoteError as exc:
        raise UploadError(f"{safe}: {exc}") from None
    root = corpus.resolve()
    target = root / safe
    if target.parent != root:
        raise UploadError(f"{name}: not a plain file name")
    tmp = root / f".upload-{os.getpid()}-{threading.get_ident()}.tmp"
    tmp.write_text(text, encoding="utf-8", newline="")
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise UploadError(f"{safe}: a note with this name is already in the corpus; rename the file") from None
    finally:
        tmp.unlink()
    return safe
