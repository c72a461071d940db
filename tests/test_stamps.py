"""A build reads and hashes only notes whose size or times changed since they were indexed
(rag.build.plan), and each note's state against the live index comes from the same stamps
(rag.build.status) as `rag status`, the Index tab and MCP list_notes show it: reads counted on the
real builder, with the real folder store and the ``hash`` embedder. Also the build's progress pace."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.app.mcp_server import NotesTools
from rag.app.render import index_status
from rag.app.terminal import pace
from rag.app.web import NotesApp
from rag.build import plan, status
from rag.build.builder import BuildReport, build_index
from rag.embed.models import Models
from rag.ingest.corpus import NoteFile
from rag.service import Notes
from rag.settings import Settings
from rag.store import open_store
from rag.store.manifest import Manifest
from tests.battery import Run

NOTES = {f"n{i}.md": f"# Note {i}\n\n## Paper {i}\n\nSparse attention trick number {i}.\n" for i in range(4)}
OLD_NS = 1_600_000_000 * 10**9  # 2020: far from "just written"


@pytest.fixture
def all_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The notes a build ("build") and a status ("status") read, in order. The racy window is shut
    so files written by the test a moment ago may be trusted by their stamp."""
    seen: dict[str, list[str]] = {"build": [], "status": []}
    for key, module in (("build", plan), ("status", status)):
        def counting(note: NoteFile, max_bytes: int, real=module.read_bytes, key=key) -> bytes:
            seen[key].append(note.rel)
            return real(note, max_bytes)

        monkeypatch.setattr(module, "read_bytes", counting)
    monkeypatch.setattr(plan, "RACY_NS", 0)
    return seen


@pytest.fixture
def reads(all_reads: dict[str, list[str]]) -> list[str]:
    return all_reads["build"]


@pytest.fixture
def status_reads(all_reads: dict[str, list[str]]) -> list[str]:
    return all_reads["status"]


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


# ---------------------------------------------------------------------------- status

STATUS_NOTES = {"a.md": "# A\n\n## Alpha paper\n\nSparse attention.\n",
                "b.md": "# B\n\n## Beta paper\n\nKV cache.\n",
                "c.md": "# C\n\n## Gamma paper\n\nSpeculative decoding.\n",
                "empty.md": "  \n"}


@pytest.fixture
def changed(make_corpus: Callable[..., Settings], models: Models, status_reads: list[str]) -> Settings:
    """Built, then: a.md edited, c.md deleted, d.md added (empty.md was skipped by the build)."""
    settings = make_corpus(STATUS_NOTES)
    corpus = settings.index.corpus
    for name in STATUS_NOTES:
        os.utime(corpus / name, ns=(OLD_NS, OLD_NS))
    build_index(settings.index, open_store(settings), models)
    (corpus / "a.md").write_text(STATUS_NOTES["a.md"] + "More.\n", encoding="utf-8")
    (corpus / "c.md").unlink()
    (corpus / "d.md").write_text("# D\n\n## Delta paper\n\nMamba.\n", encoding="utf-8")
    return settings


def test_each_file_has_its_state_and_reason_without_reading_the_notes(changed: Settings, models: Models,
                                                                      status_reads: list[str]) -> None:
    found = Notes(changed, models).status()
    by_file = {f.file: (f.status, f.reason) for f in found.files}
    assert by_file == {"a.md": ("pending", status.CHANGED), "b.md": ("indexed", None),
                       "c.md": ("removed", status.REMOVED), "d.md": ("pending", status.NEW),
                       "empty.md": ("skipped", "empty file")}
    assert found.summary() == "1 of 4 notes indexed, 1 skipped, 2 pending, 1 removed since the last build"
    assert status_reads == ["empty.md"]  # a skip judged by its bytes is checked by them; no indexed note is read
    build_index(changed.index, open_store(changed), models)
    after = Notes(changed, models).status()
    assert after.summary() == "3 of 4 notes indexed, 1 skipped, 0 pending"


def test_before_any_build_and_after_a_settings_change_every_note_is_pending(
        make_corpus: Callable[..., Settings], models: Models) -> None:
    settings = make_corpus(STATUS_NOTES)
    fresh = Notes(settings, models).status()
    assert fresh.generation is None and fresh.summary() == "0 of 4 notes indexed, 0 skipped, 4 pending"
    build_index(settings.index, open_store(settings), models)
    other = settings.updated({"index.chunk_tokens": settings.index.chunk_tokens + 1})
    found = Notes(other, models).status()
    assert found.count("pending") == 4 and "index settings changed (chunk_tokens)" in (found.files[0].reason or "")


def test_rag_status_prints_counts_and_lists_every_file_as_json(changed: Settings, rag_main: Callable[..., Run]) -> None:
    env = {"RAG_CORPUS": str(changed.index.corpus), "RAG_INDEX": str(changed.index.path), "RAG_EMBEDDERS": "hash"}
    shown = rag_main("status", env=env)
    assert shown.code == 0
    assert shown.out.splitlines()[0].startswith("1 of 4 notes indexed, 1 skipped, 2 pending, 1 removed")
    assert "skipped empty.md: empty file" in shown.out and f"pending d.md: {status.NEW}" in shown.out
    data = json.loads(rag_main("status", "--json", env=env).out)
    assert data["counts"] == {"indexed": 1, "skipped": 1, "pending": 2, "removed": 1} and data["notes"] == 4
    assert [f["file"] for f in data["files"]] == ["a.md", "b.md", "c.md", "d.md", "empty.md"]
    assert data["files"][1] == {"file": "b.md", "status": "indexed", "reason": None, "entries": 2, "chunks": 2}
    missing = rag_main("status", env={**env, "RAG_CORPUS": str(changed.index.corpus / "nope")})
    assert missing.code == 2 and missing.err.startswith("rag: corpus folder") and "Traceback" not in missing.err


def test_index_tab_and_list_notes_show_the_same_states(changed: Settings, models: Models) -> None:
    notes = Notes(changed, models)
    tab = NotesApp(notes).status()
    assert "**1 of 4 notes indexed, 1 skipped, 2 pending, 1 removed since the last build**" in tab
    assert f"`d.md`: {status.NEW}" in tab and "`empty.md`: empty file" in tab and "Removed since" in tab
    listed = NotesTools(notes).list_notes()
    assert listed.summary == notes.status().summary()
    assert {n.file: n.status for n in listed.notes} == {"a.md": "pending", "b.md": "indexed", "c.md": "removed"}
    assert {(f.file, f.status) for f in listed.not_indexed} == {("d.md", "pending"), ("empty.md", "skipped")}
    assert "No index yet" in index_status(None, "no index", notes.status())


def test_index_tab_lists_at_most_a_page_of_each_state(make_corpus: Callable[..., Settings], models: Models) -> None:
    settings = make_corpus({f"n{i:03}.md": f"# N{i}\n\nText {i}.\n" for i in range(60)})
    tab = index_status(None, None, Notes(settings, models).status())
    assert "Pending (not in the live index as they are now) (60):" in tab and "… and 10 more" in tab


def test_progress_pace_and_time_left() -> None:
    assert pace(10, 100, (0.0, 10), 5.0) == ""  # nothing done since the stage was first reported
    assert pace(30, 100, (0.0, 10), 2.0) == ", 10.0/s, about 7s left"
    assert pace(20, 1000, (0.0, 0), 1.0) == ", 20.0/s, about 49s left"
    assert pace(20, 10_000, (0.0, 0), 2.0) == ", 10.0/s, about 16m 38s left"
    assert pace(100, 100, (0.0, 0), 2.0) == ""


def test_reading_a_large_corpus_is_reported(tmp_path: Path) -> None:
    for i in range(plan.PROGRESS_EVERY + 50):
        (tmp_path / f"n{i:03}.md").write_text(f"# N{i}\n\nText.\n", encoding="utf-8")
    heard: list[tuple[str, int, int]] = []
    plan.scan_corpus(tmp_path, 10**6, progress=lambda *a: heard.append(a))
    total = plan.PROGRESS_EVERY + 50
    assert heard == [("reading notes", plan.PROGRESS_EVERY, total), ("reading notes", total, total)]
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.md").write_text("# A\n\nText.\n", encoding="utf-8")
    heard.clear()
    plan.scan_corpus(small, 10**6, progress=lambda *a: heard.append(a))
    assert heard == []  # a few notes are read in a blink: no line about them
