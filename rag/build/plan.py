"""What a build has to do: the corpus as scanned now against the live manifest, as typed data.

Scanning stats every note and reads and hashes only those whose stamp (size, mtime, ctime) differs
from the one recorded when they were indexed; planning compares hashes with the manifest and
decodes only notes whose bytes changed. A bad note is a :class:`Skip` with its reason; ``kept``
says its previously indexed version still serves (a note that turns unreadable should not vanish
from search; one that was emptied or deleted on purpose should).

Why trusting stamps is safe enough: it is what git and rsync do. An editor, sync client or
``git checkout`` that changes a note's bytes sets its mtime, and any write at all sets its ctime,
which no user-space tool can set back: even a copy that preserves mtimes (``rsync -a``, ``tar x``,
``cp -p``) leaves a new ctime, so the note is hashed again. A stamp is not recorded for a file
changed within :data:`RACY_NS` of the scan (a second write within the clock's tick would keep it),
so such a note is hashed next time too. On a file system that reports no real ctime, a tool that
rewrites a note with the same size and puts its mtime back fools the stamp; ``rag index --rehash``
then reads and hashes every note.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from rag.ingest.corpus import NoteError, NoteFile, decode_note, display_name, file_hash, find_notes, read_bytes
from rag.store.manifest import Manifest, NoteRecord, Skip

#: A file changed this recently (2 s) is hashed again next time rather than trusted by its stamp.
RACY_NS = 2_000_000_000

#: Reading notes is reported every this many notes.
PROGRESS_EVERY = 100

Stamp = tuple[int, int, int]  # size, mtime_ns, ctime_ns


@dataclass(frozen=True)
class ScannedNote:
    path: str
    sha256: str
    data: bytes | None  # None: its stamp matched the record, so its bytes are the ones indexed (unread)
    stamp: Stamp | None  # None: changed too recently to trust (see RACY_NS)
    file: NoteFile


@dataclass(frozen=True)
class Scan:
    """Readable notes by path, and the notes that could not be read. A skip's ``kept`` here means
    "keep the indexed version if there is one"; the plan settles it against the manifest."""

    notes: dict[str, ScannedNote]
    skips: tuple[Skip, ...]
    max_note_bytes: int

    def read(self, note: ScannedNote) -> ScannedNote:
        """``note`` with its bytes: those of a note the stamp let the scan pass over are needed when
        the manifest turns out unusable (NoteError when they cannot be read now)."""
        if note.data is not None:
            return note
        data = read_bytes(note.file, self.max_note_bytes)
        return replace(note, sha256=file_hash(data), data=data)


def stamp_of(st: os.stat_result, now_ns: int) -> Stamp | None:
    """The file's stamp, or None when it changed within RACY_NS of ``now_ns``."""
    if now_ns - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def distinct_files(files: list[NoteFile]) -> tuple[list[tuple[NoteFile, os.stat_result | None]], list[Skip]]:
    """One name per file, with its stat (None when it vanished or cannot be stat'ed: reading says why).

    A file reached through several names (symlinks, hard links) is one note, or each hit would
    come back once per name: the name that is not a symlink is kept (else the first), the others
    are skipped saying which name holds it."""
    by_file: dict[tuple[int, int], list[tuple[NoteFile, os.stat_result]]] = {}
    kept: list[tuple[NoteFile, os.stat_result | None]] = []
    for note in files:
        try:
            st = os.stat(note.path)
        except OSError:  # vanished or unreadable: read_bytes says so
            kept.append((note, None))
            continue
        by_file.setdefault((st.st_dev, st.st_ino), []).append((note, st))
    skips = []
    for names in by_file.values():
        first = min(names, key=lambda n: (n[0].path.is_symlink(), n[0].rel))
        kept.append(first)
        skips += [Skip(n.rel, f"the same file as {display_name(first[0].rel)}: indexed once, under that name")
                  for n, _ in names if n is not first[0]]
    return sorted(kept, key=lambda n: n[0].rel), skips


def scan_corpus(corpus: Path, max_note_bytes: int, ignore: tuple[str, ...] = (),
                known: Mapping[str, NoteRecord] | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> Scan:
    """Every note of ``corpus``; one whose stamp matches its record in ``known`` (the live
    manifest's notes) is not read: it gets the recorded hash. ``known=None`` reads every note.
    ``progress`` hears ("reading notes", done, total) every :data:`PROGRESS_EVERY` notes and at the
    end, when there are that many (fewer are read in a blink: a line about them is only noise)."""
    found, passed_over = find_notes(corpus, ignore)
    files, aliases = distinct_files(found)
    skips = [Skip(path, reason) for path, reason in passed_over] + aliases
    notes: dict[str, ScannedNote] = {}
    now = time.time_ns()
    report = progress if progress is not None and len(files) >= PROGRESS_EVERY else None
    for done, (note, st) in enumerate(files):
        if report is not None and done and done % PROGRESS_EVERY == 0:
            report("reading notes", done, len(files))
        stamp = stamp_of(st, now) if st is not None else None
        record = (known or {}).get(note.rel)
        if stamp is not None and record is not None and record.stamp == stamp and stamp[0] <= max_note_bytes:
            notes[note.rel] = ScannedNote(note.rel, record.sha256, None, stamp, note)
            continue
        try:
            data = read_bytes(note, max_note_bytes)
        except NoteError as exc:
            skips.append(Skip(note.rel, str(exc), kept=exc.keep_previous))
            continue
        notes[note.rel] = ScannedNote(note.rel, file_hash(data), data, stamp, note)
    if report is not None:
        report("reading notes", len(files), len(files))
    return Scan(notes, tuple(skips), max_note_bytes)


@dataclass(frozen=True)
class Plan:
    """The diff between the corpus and the live generation."""

    texts: dict[str, str]  # decoded text of every note to segment anew (added or changed)
    sha256: dict[str, str]  # of each note in ``texts``
    stamps: dict[str, Stamp | None]  # of each note in ``texts`` and each unchanged one, as scanned
    reuse: frozenset[str]  # notes whose previous entries, chunks and tokens carry over
    indexed_before: frozenset[str]  # notes of the previous generation that can be reused
    removed: tuple[str, ...]
    skips: tuple[Skip, ...]
    full_rebuild_reason: str | None
    up_to_date: bool

    def record(self, path: str, entries: int, chunks: int) -> NoteRecord:
        """The manifest record of a note indexed anew."""
        return _stamped(NoteRecord(self.sha256[path], entries, chunks), self.stamps[path])

    def restamped(self, path: str, record: NoteRecord) -> NoteRecord:
        """The record of a reused note, with the stamp it has now when its bytes are the ones indexed
        (a note touched without a change is then trusted again); a kept note's stays as it was."""
        return _stamped(record, self.stamps[path]) if path in self.stamps else record

    @property
    def added(self) -> list[str]:
        return sorted(p for p in self.texts if p not in self.indexed_before)

    @property
    def changed(self) -> list[str]:
        return sorted(p for p in self.texts if p in self.indexed_before)


def _stamped(record: NoteRecord, stamp: Stamp | None) -> NoteRecord:
    size, mtime_ns, ctime_ns = stamp or (None, None, None)
    return replace(record, size=size, mtime_ns=mtime_ns, ctime_ns=ctime_ns)


def settings_change(old: dict, new: dict) -> str | None:
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
        reason = settings_change(previous.fingerprint, fingerprint)
    usable = previous if previous is not None and reason is None else None
    indexed = usable.notes if usable is not None else {}
    verdicts = {s.path: s for s in usable.skipped if s.sha256} if usable is not None else {}

    skips = [replace(s, kept=s.kept and s.path in indexed) for s in scan.skips]
    unchanged = {p for p, note in scan.notes.items() if p in indexed and indexed[p].sha256 == note.sha256}
    texts: dict[str, str] = {}
    stamps = {p: scan.notes[p].stamp for p in unchanged}
    sha256: dict[str, str] = {}
    for path in sorted(scan.notes.keys() - unchanged):
        try:
            note = scan.read(scan.notes[path])
        except NoteError as exc:
            skips.append(Skip(path, str(exc), kept=exc.keep_previous and path in indexed))
            continue
        old = verdicts.get(path)
        if old is not None and old.sha256 == note.sha256:  # same bytes, same verdict
            skips.append(replace(old, kept=old.kept and path in indexed))
            continue
        try:
            texts[path] = decode_note(note.data)  # type: ignore[arg-type]  # read above
            sha256[path], stamps[path] = note.sha256, note.stamp
        except NoteError as exc:
            skips.append(Skip(path, str(exc), kept=exc.keep_previous and path in indexed, sha256=note.sha256))
    reuse = frozenset(unchanged | {s.path for s in skips if s.kept})
    removed = tuple(sorted(p for p in indexed if p not in reuse and p not in texts))
    up_to_date = (usable is not None and not texts and not removed
                  and sorted(map(_skip_key, skips)) == sorted(map(_skip_key, usable.skipped)))
    return Plan(texts=texts, sha256=sha256, stamps=stamps, reuse=reuse,
                indexed_before=frozenset(indexed), removed=removed, skips=tuple(skips),
                full_rebuild_reason=reason, up_to_date=up_to_date)
