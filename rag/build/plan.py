"""What a build has to do: the corpus as scanned now against the live manifest, as typed data.

Scanning reads bytes and hashes them; planning compares hashes with the manifest and decodes only
notes whose bytes changed. A bad note is a :class:`Skip` with its reason; ``kept`` says its
previously indexed version still serves (a note that turns unreadable should not vanish from
search; one that was emptied or deleted on purpose should).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from rag.ingest.corpus import NoteError, NoteFile, decode_note, display_name, file_hash, find_notes, read_bytes
from rag.store.manifest import Manifest, Skip


@dataclass(frozen=True)
class ScannedNote:
    path: str
    sha256: str
    data: bytes


@dataclass(frozen=True)
class Scan:
    """Readable notes by path, and the notes that could not be read. A skip's ``kept`` here means
    "keep the indexed version if there is one"; the plan settles it against the manifest."""

    notes: dict[str, ScannedNote]
    skips: tuple[Skip, ...]


def _one_name_per_file(files: list[NoteFile]) -> tuple[list[NoteFile], list[Skip]]:
    """A file reached through several names (symlinks, hard links) is one note, or each hit would
    come back once per name: the name that is not a symlink is kept (else the first), the others
    are skipped saying which name holds it."""
    by_file: dict[tuple[int, int], list[NoteFile]] = {}
    kept: list[NoteFile] = []
    for note in files:
        try:
            st = os.stat(note.path)
        except OSError:  # vanished or unreadable: read_bytes says so
            kept.append(note)
            continue
        by_file.setdefault((st.st_dev, st.st_ino), []).append(note)
    skips = []
    for names in by_file.values():
        first = min(names, key=lambda n: (n.path.is_symlink(), n.rel))
        kept.append(first)
        skips += [Skip(n.rel, f"the same file as {display_name(first.rel)}: indexed once, under that name")
                  for n in names if n is not first]
    return sorted(kept, key=lambda n: n.rel), skips


def scan_corpus(corpus: Path, max_note_bytes: int, ignore: tuple[str, ...] = ()) -> Scan:
    found, passed_over = find_notes(corpus, ignore)
    files, aliases = _one_name_per_file(found)
    skips = [Skip(path, reason) for path, reason in passed_over] + aliases
    notes: dict[str, ScannedNote] = {}
    for note in files:
        try:
            data = read_bytes(note, max_note_bytes)
        except NoteError as exc:
            skips.append(Skip(note.rel, str(exc), kept=exc.keep_previous))
            continue
        notes[note.rel] = ScannedNote(note.rel, file_hash(data), data)
    return Scan(notes, tuple(skips))


@dataclass(frozen=True)
class Plan:
    """The diff between the corpus and the live generation."""

    texts: dict[str, str]  # decoded text of every note to segment anew (added or changed)
    sha256: dict[str, str]  # of each note in ``texts``
    reuse: frozenset[str]  # notes whose previous entries, chunks and tokens carry over
    indexed_before: frozenset[str]  # notes of the previous generation that can be reused
    removed: tuple[str, ...]
    skips: tuple[Skip, ...]
    full_rebuild_reason: str | None
    up_to_date: bool

    @property
    def added(self) -> list[str]:
        return sorted(p for p in self.texts if p not in self.indexed_before)

    @property
    def changed(self) -> list[str]:
        return sorted(p for p in self.texts if p in self.indexed_before)


def _settings_change(old: dict, new: dict) -> str | None:
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return f"index settings changed ({', '.join(keys)})" if keys else None


def _skip_key(skip: Skip) -> tuple[str, str, bool]:
    return skip.path, skip.reason, skip.kept


def plan_build(scan: Scan, previous: Manifest | None, fingerprint: dict, damaged: str | None = None) -> Plan:
    """Compare ``scan`` with the ``previous`` manifest (None: nothing to reuse, because there is no
    index or, as ``damaged`` says, it is unusable). An unchanged bad file gets its recorded verdict
    again without being decoded."""
    reason = damaged
    if previous is not None:
        reason = _settings_change(previous.fingerprint, fingerprint)
    usable = previous if previous is not None and reason is None else None
    indexed = usable.notes if usable is not None else {}
    verdicts = {s.path: s for s in usable.skipped if s.sha256} if usable is not None else {}

    skips = [replace(s, kept=s.kept and s.path in indexed) for s in scan.skips]
    unchanged = {p for p, note in scan.notes.items() if p in indexed and indexed[p].sha256 == note.sha256}
    texts: dict[str, str] = {}
    for path in sorted(scan.notes.keys() - unchanged):
        note = scan.notes[path]
        old = verdicts.get(path)
        if old is not None and old.sha256 == note.sha256:  # same bytes, same verdict
            skips.append(replace(old, kept=old.kept and path in indexed))
            continue
        try:
            texts[path] = decode_note(note.data)
        except NoteError as exc:
            skips.append(Skip(path, str(exc), kept=exc.keep_previous and path in indexed, sha256=note.sha256))
    reuse = frozenset(unchanged | {s.path for s in skips if s.kept})
    removed = tuple(sorted(p for p in indexed if p not in reuse and p not in texts))
    up_to_date = (usable is not None and not texts and not removed
                  and sorted(map(_skip_key, skips)) == sorted(map(_skip_key, usable.skipped)))
    return Plan(texts=texts, sha256={p: scan.notes[p].sha256 for p in texts}, reuse=reuse,
                indexed_before=frozenset(indexed), removed=removed, skips=tuple(skips),
                full_rebuild_reason=reason, up_to_date=up_to_date)
