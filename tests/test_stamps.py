"""A build reads and hashes only notes whose size or times changed since they were indexed
(rag.build.plan): counted on the real builder, with the real folder store and the ``hash`` embedder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.build import plan
from rag.build.builder import BuildReport, build_index
from rag.embed.models import Models
from rag.ingest.corpus import NoteFile
from rag.settings import Settings
from rag.store import open_store
from rag.store.manifest import Manifest

NOTES = {f"n{i}.md": f"# Note {i}\n\n## Paper {i}\n\nSparse attention trick number {i}.\n" for i in range(4)}
OLD_NS = 1_600_000_000 * 10**9  # 2020: far from "just written"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The notes the scan or plan reads, in order. The racy window is shut so files written by
    the test a moment ago may be trusted by their stamp."""
    seen: list[str] = []
    real = plan.read_bytes

    def counting(note: NoteFile, max_bytes: int) -> bytes:
        seen.append(note.rel)
        return real(note, max_bytes)

    monkeypatch.setattr(plan, "read_bytes", counting)
    monkeypatch.setattr(plan, "RACY_NS", 0)
    return seen


def build(settings: Settings, models: Models, **kw: object) -> BuildReport:
    return build_index(settings.index, open_store(settings), models, **kw)  # type: ignore[arg-type]


@pytest.fixture
def indexed(make_corpus: Callable[..., Settings], models: Models, reads: list[str]) -> Settings:
    settings = make_corpus(NOTES)
    for name in NOTES:
        os.utime(settings.index.corpus / name, ns=(OLD_NS, OLD_NS))
    build(settings, models)
    assert sorted(reads) == sorted(NOTES)
    reads.clear()
    return settings


def test_unchanged_notes_are_not_read(indexed: Settings, models: Models, reads: list[str]) -> None:
    report = build(indexed, models)
    assert report.up_to_date and reads == []
    records = open_store(indexed).manifest().notes
    assert all(r.stamp is not None and r.stamp[0] == len(NOTES[p].encode()) for p, r in records.items())


def test_a_note_changed_with_its_mtime_is_read_again(indexed: Settings, models: Models, reads: list[str]) -> None:
    path = indexed.index.corpus / "n2.md"
    path.write_text(NOTES["n2.md"].replace("Sparse", "Dense!"), encoding="utf-8")  # same size
    os.utime(path, ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    report = build(indexed, models)
    assert reads == ["n2.md"] and report.changed == ["n2.md"] and report.embedded == 1
    reads.clear()
    assert build(indexed, models).up_to_date and reads == []  # the new stamp was recorded


def test_preserved_mtime_still_rereads_by_ctime(indexed: Settings, models: Models, reads: list[str]) -> None:
    """A copy that puts the old mtime back (rsync -a, cp -p) cannot set ctime back."""
    path = indexed.index.corpus / "n1.md"
    path.write_text(NOTES["n1.md"].replace("trick", "TRICK"), encoding="utf-8")
    os.utime(path, ns=(OLD_NS, OLD_NS))
    assert build(indexed, models).changed == ["n1.md"] and reads == ["n1.md"]


def test_rehash_reads_every_note(indexed: Settings, models: Models, reads: list[str]) -> None:
    assert build(indexed, models, rehash=True).up_to_date
    assert sorted(reads) == sorted(NOTES)


def test_a_settings_change_reads_the_notes_the_stamp_passed_over(indexed: Settings, models: Models,
                                                                 reads: list[str]) -> None:
    changed = indexed.updated({"index.chunk_tokens": indexed.index.chunk_tokens + 10})
    report = build(changed, models)
    assert report.full_rebuild_reason and report.notes == len(NOTES) and sorted(reads) == sorted(NOTES)


def test_a_fresh_file_is_not_trusted_by_its_stamp(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("x", encoding="utf-8")
    st = os.stat(note)
    assert plan.stamp_of(st, st.st_ctime_ns + plan.RACY_NS - 1) is None
    assert plan.stamp_of(st, st.st_ctime_ns + plan.RACY_NS) == (1, st.st_mtime_ns, st.st_ctime_ns)


def test_manifests_without_stamps_still_load(indexed: Settings) -> None:
    data = open_store(indexed).manifest().to_json()
    for record in data["notes"].values():
        for key in ("size", "mtime_ns", "ctime_ns"):
            del record[key]
    old = Manifest.from_json(data)
    assert all(r.stamp is None for r in old.notes.values())
    scan = plan.scan_corpus(indexed.index.corpus, indexed.index.max_note_bytes, known=old.notes)
    assert all(n.data is not None for n in scan.notes.values())  # hashed: nothing to trust
