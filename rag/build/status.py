"""Every note's state against the live index: indexed, skipped (why), pending (why), or removed.

One function for every adapter (``rag status``, the app's Index tab, MCP ``list_notes``), cheap
at 10,000 notes: a walk and a stat per note, compared with the stamps the manifest records (see
:mod:`rag.build.plan`). Bytes are read only for a note indexed before stamps were recorded or
judged bad by its hash: a handful, not the corpus.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Literal

from rag.ingest.corpus import NoteError, NoteFile, file_hash, find_notes, read_bytes
from rag.settings import IndexSettings
from rag.store import IndexStore, IndexUnavailable
from rag.store.manifest import Manifest, NoteRecord, Skip

from .builder import fingerprint_of
from .plan import distinct_files, settings_change

State = Literal["indexed", "skipped", "pending", "removed"]
STATES: tuple[State, ...] = ("indexed", "skipped", "pending", "removed")
CHANGED = "changed since it was indexed"
NEW = "not indexed yet"
REMOVED = "deleted or renamed since it was indexed; still found by search until the next build"


@dataclass(frozen=True)
class FileStatus:
    file: str  # relative to the corpus
    status: State
    reason: str | None = None  # why skipped or pending
    entries: int | None = None  # in the live index
    chunks: int | None = None


@dataclass(frozen=True)
class CorpusStatus:
    files: tuple[FileStatus, ...]
    generation: str | None  # the live one, None before the first build
    built_at: str
    problem: str | None = None  # why the live index cannot be used, if it cannot

    def count(self, state: State) -> int:
        return sum(f.status == state for f in self.files)

    @property
    def notes(self) -> int:
        """Note files in the corpus now (a removed one is not)."""
        return len(self.files) - self.count("removed")

    def summary(self) -> str:
        """"9,812 of 10,000 notes indexed, 3 skipped, 185 pending" (and removed ones, when any)."""
        line = (f"{self.count('indexed'):,} of {self.notes:,} notes indexed, {self.count('skipped'):,} skipped, "
                f"{self.count('pending'):,} pending")
        if removed := self.count("removed"):
            line += f", {removed:,} removed since the last build"
        return line

    def to_json(self) -> dict:
        return {"generation": self.generation, "built_at": self.built_at, "problem": self.problem,
                "summary": self.summary(), "notes": self.notes, "counts": {s: self.count(s) for s in STATES},
                "files": [asdict(f) for f in self.files]}


def _same_bytes(note: NoteFile, sha256: str | None, max_bytes: int) -> bool:
    """Whether the note still holds the bytes of that hash (False when it cannot be read)."""
    try:
        return sha256 is not None and file_hash(read_bytes(note, max_bytes)) == sha256
    except NoteError:
        return False


def _one(note: NoteFile, st: os.stat_result | None, record: NoteRecord | None, skip: Skip | None,
         max_bytes: int, new: str) -> FileStatus:
    """The state of one note file found in the corpus; ``new``: why a note the index lacks is pending."""
    counts = {"entries": record.entries, "chunks": record.chunks} if record is not None else {}
    if skip is not None:
        if skip.sha256 is None or _same_bytes(note, skip.sha256, max_bytes):
            return FileStatus(note.rel, "skipped", skip.note, **counts)
        return FileStatus(note.rel, "pending", "changed since it was skipped", **counts)
    if record is None:
        return FileStatus(note.rel, "pending", new)
    if st is not None and record.stamp is not None:
        same = record.stamp == (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    else:  # indexed before stamps were recorded, or too fresh then to trust
        same = _same_bytes(note, record.sha256, max_bytes)
    return FileStatus(note.rel, "indexed", **counts) if same else FileStatus(note.rel, "pending", CHANGED, **counts)


def _live(store: IndexStore) -> tuple[str | None, Manifest | None, str | None]:
    """(generation, manifest, None), or what keeps the live index from being used."""
    try:
        generation = store.current()
        return (generation, store.manifest(), None) if generation is not None else (None, None, None)
    except IndexUnavailable as exc:
        return None, None, str(exc)


def corpus_status(settings: IndexSettings, store: IndexStore) -> CorpusStatus:
    """Each note of ``settings.corpus`` against the live generation of ``store``, in path order;
    IndexUnavailable when there is no corpus folder to look at."""
    if not settings.corpus.is_dir():
        raise IndexUnavailable(f"corpus folder {settings.corpus} does not exist")
    generation, manifest, problem = _live(store)
    if manifest is not None and (change := settings_change(manifest.fingerprint, fingerprint_of(settings))):
        problem, manifest = f"{change}: the next build re-indexes every note", None
    notes = manifest.notes if manifest is not None else {}
    judged = {s.path: s for s in manifest.skipped} if manifest is not None else {}
    found, passed_over = find_notes(settings.corpus, settings.ignore)
    files, aliases = distinct_files(found)
    out = [FileStatus(path, "skipped", reason) for path, reason in passed_over]
    out += [FileStatus(s.path, "skipped", s.reason) for s in aliases]
    out += [_one(note, st, notes.get(note.rel), judged.get(note.rel), settings.max_note_bytes, problem or NEW)
            for note, st in files]
    seen = {f.file for f in out}
    out += [FileStatus(path, "removed", REMOVED, r.entries, r.chunks) for path, r in notes.items() if path not in seen]
    return CorpusStatus(tuple(sorted(out, key=lambda f: f.file)), generation, manifest.built_at if manifest else "",
                        problem)
