"""Each note's state against the live index (rag.build.status), and how `rag status`, the Index tab
and MCP list_notes show it; the build's progress lines with their pace."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest

from rag.app.mcp_server import NotesTools
from rag.app.render import index_status
from rag.app.terminal import pace
from rag.app.web import NotesApp
from rag.build import plan, status
from rag.build.builder import build_index
from rag.embed.models import Models
from rag.ingest.corpus import NoteFile
from rag.service import Notes
from rag.settings import Settings
from rag.store import open_store
from tests.battery import Run

NOTES = {"a.md": "# A\n\n## Alpha paper\n\nSparse attention.\n",
         "b.md": "# B\n\n## Beta paper\n\nKV cache.\n",
         "c.md": "# C\n\n## Gamma paper\n\nSpeculative decoding.\n",
         "empty.md": "  \n"}
OLD_NS = 1_600_000_000 * 10**9


@pytest.fixture
def status_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The notes the status reads (a build's reads are not counted); the racy window shut."""
    seen: list[str] = []
    real = status.read_bytes

    def counting(note: NoteFile, max_bytes: int) -> bytes:
        seen.append(note.rel)
        return real(note, max_bytes)

    monkeypatch.setattr(status, "read_bytes", counting)
    monkeypatch.setattr(plan, "RACY_NS", 0)
    return seen


@pytest.fixture
def changed(make_corpus: Callable[..., Settings], models: Models, status_reads: list[str]) -> Settings:
    """Built, then: a.md edited, c.md deleted, d.md added (empty.md was skipped by the build)."""
    settings = make_corpus(NOTES)
    corpus = settings.index.corpus
    for name in NOTES:
        os.utime(corpus / name, ns=(OLD_NS, OLD_NS))
    build_index(settings.index, open_store(settings), models)
    (corpus / "a.md").write_text(NOTES["a.md"] + "More.\n", encoding="utf-8")
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
    settings = make_corpus(NOTES)
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
