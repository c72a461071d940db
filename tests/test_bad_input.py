"""Bad notes never stop a build: each is skipped with its reason, the rest is indexed, nothing is lost."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import rag.index
from rag.config import Config
from rag.corpus import NoteError, decode_note, find_notes
from rag.index import KEPT, Index, build_index, current_generation
from tests.test_index import NOTES, forbid_models, note, run_rag, top_file

GBK_NOTE = "# 稀疏注意力笔记\n\n本文提出一种新的稀疏注意力方法，长文本推理显存降低一半。\n"
FENCE_NOTE = ("# Fence paper\n\nIntro about fences.\n\n```python\nprint('never closed')\n\n"
              "# Fence sequel\n\nWombatron results.\n")
TABLE_NOTE = ("# Table paper\n\n| model | score |\n|---|\n| Kangarank | 91.2 | extra | cells |\n| only one cell\n"
              "|---|---|---|---|---|\n\n| | |\n\nAfter the table: platypusnet.\n")


def skip_reasons(report_or_lines: list) -> dict[str, str]:
    return {s.file: s.reason for s in report_or_lines}


def test_bad_files_are_skipped_with_reasons_and_the_rest_is_indexed(make_corpus: Callable[..., Config],
                                                                    tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("# Secret\n\nOutside the corpus: snorkelfish.\n", encoding="utf-8")
    config = make_corpus({**NOTES,
                          "binary.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8,
                          "noise.md": bytes(range(128, 256)) * 16,
                          "empty.md": b"",
                          "blank.md": "  \n\n\t\n",
                          "gbk.md": GBK_NOTE.encode("gbk"),
                          "fence.md": FENCE_NOTE,
                          "table.md": TABLE_NOTE,
                          "my notes 笔记/第 1 篇 note.md": note("Spacey", "Quokkaformer with spaces in its name.")})
    with open(config.corpus / "big.md", "wb") as f:  # 50 MB
        f.write(b"# Big\n\n" + b"x" * (50 * 1024 * 1024))
    (config.corpus / "link.md").symlink_to(outside)

    done = run_rag(config, "index")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    printed = dict(line.removeprefix("skipped ").split(": ", 1) for line in done.stderr.splitlines()
                   if line.startswith("skipped "))
    assert printed == {
        "big.md": "52.4 MB is over the 5.2 MB cap (RAG_MAX_NOTE_BYTES)",
        "binary.md": "binary file (NUL bytes), not a text note",
        "blank.md": "empty file",
        "empty.md": "empty file",
        "link.md": "symlink pointing outside the corpus: not followed",
        "noise.md": "not UTF-8 and no text encoding could be detected",
    }
    manifest = Index.load(config.index).manifest
    assert {s["file"]: s["reason"] for s in manifest["skipped"]} == printed
    assert sorted(manifest["notes"]) == ["audio.md", "fence.md", "gbk.md", "my notes 笔记/第 1 篇 note.md",
                                         "table.md", "transformer.md"]
    assert top_file(config, "长文本推理显存") == "gbk.md"
    assert top_file(config, "wombatron") == "fence.md"
    assert top_file(config, "kangarank") == "table.md" and top_file(config, "platypusnet") == "table.md"
    searched = run_rag(config, "search", "quokkaformer", "--json", "-k", "1")
    hit = json.loads(searched.stdout)["hits"][0]
    assert hit["file"] == "my notes 笔记/第 1 篇 note.md"
    assert hit["path"].endswith("corpus/my notes 笔记/第 1 篇 note.md")
    assert all("snorkelfish" not in e.text for e in Index.load(config.index).entries)

    again = run_rag(config, "index")  # the same bad files: reported again, nothing to rebuild
    assert again.returncode == 0 and "index is up to date (6 notes" in again.stderr
    assert again.stderr.count("skipped ") == 6


def test_short_gbk_notes_decode() -> None:
    for text in [GBK_NOTE, "# 笔记\n\n这是一篇关于大模型的笔记。", "# Title\n\nSome English with 一点中文。\n"]:
        assert decode_note(text.encode("gbk")) == text
        assert decode_note(text.encode("gb18030")) == text
    assert decode_note("\ufeff# BOM\n\nutf-8 with BOM".encode()) == "# BOM\n\nutf-8 with BOM"
    with pytest.raises(NoteError, match="binary"):
        decode_note(b"abc\x00def")


def test_note_size_cap_is_configurable(make_corpus: Callable[..., Config], monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_corpus({**NOTES, "long.md": note("Long", "Lengthy " * 300)})
    monkeypatch.setenv("RAG_MAX_NOTE_BYTES", "2000")
    capped = config.with_(max_note_bytes=Config.from_env().max_note_bytes)
    assert capped.max_note_bytes == 2000
    report = build_index(capped)
    assert skip_reasons(report.skipped) == {"long.md": "2.4 kB is over the 2.0 kB cap (RAG_MAX_NOTE_BYTES)"}
    assert sorted(report.added) == ["audio.md", "transformer.md"]
    report = build_index(config.with_(max_note_bytes=10_000))
    assert report.added == ["long.md"] and not report.skipped


def test_symlinks_inside_are_followed_outside_are_not(make_corpus: Callable[..., Config], tmp_path: Path) -> None:
    config = make_corpus(NOTES)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.md").write_text("# Secret\n\nsnorkelfish\n", encoding="utf-8")
    (config.corpus / "out.md").symlink_to(tmp_path / "elsewhere" / "secret.md")
    (config.corpus / "outdir").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (config.corpus / "alias.md").symlink_to(config.corpus / "audio.md")
    notes, skipped = find_notes(config.corpus)
    assert [n.rel for n in notes] == ["alias.md", "audio.md", "transformer.md"]
    assert skipped == [("out.md", "symlink pointing outside the corpus: not followed")]
    report = build_index(config)
    assert sorted(report.added) == ["alias.md", "audio.md", "transformer.md"]
    assert all("snorkelfish" not in e.text for e in Index.load(config.index).entries)


def test_note_deleted_while_indexing(make_corpus: Callable[..., Config], monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_corpus({**NOTES, "doomed.md": note("Doomed", "Vanishing act.")})
    build_index(config)
    (config.corpus / "fresh.md").write_text(note("Fresh", "Just added, also vanishing."), encoding="utf-8")

    def find_then_delete(corpus: Path) -> tuple:
        found = find_notes(corpus)
        (corpus / "doomed.md").unlink()  # gone between the listing and the read
        (corpus / "fresh.md").unlink()
        return found

    monkeypatch.setattr(rag.index, "find_notes", find_then_delete)
    report = build_index(config)
    assert skip_reasons(report.skipped) == {"doomed.md": "deleted while indexing", "fresh.md": "deleted while indexing"}
    assert report.removed == ["doomed.md"] and not report.added
    assert sorted(Index.load(config.index).manifest["notes"]) == ["audio.md", "transformer.md"]


def test_a_note_gone_bad_keeps_its_previous_entries(make_corpus: Callable[..., Config],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_corpus(NOTES)
    build_index(config)
    before = [e for e in Index.load(config.index).entries if e.file == "audio.md"]

    real_read = rag.index.read_bytes

    def unreadable(note_file, max_bytes):  # type: ignore[no-untyped-def]
        if note_file.rel == "audio.md":
            raise NoteError("unreadable: Permission denied")
        return real_read(note_file, max_bytes)

    with monkeypatch.context() as m:
        m.setattr(rag.index, "read_bytes", unreadable)
        (config.corpus / "transformer.md").write_text(note("Transformer", "Now about quuxvarn."), encoding="utf-8")
        report = build_index(config)
    assert skip_reasons(report.skipped) == {"audio.md": "unreadable: Permission denied" + KEPT}
    assert report.changed == ["transformer.md"] and not report.removed
    assert [e for e in Index.load(config.index).entries if e.file == "audio.md"] == before
    assert top_file(config, "Whisper HuBERT") == "audio.md"

    # overwritten with garbage: still the old entries, and the verdict is remembered
    (config.corpus / "audio.md").write_bytes(b"\x00garbage\x00")
    report = build_index(config)
    assert skip_reasons(report.skipped) == {"audio.md": "binary file (NUL bytes), not a text note" + KEPT}
    assert [e for e in Index.load(config.index).entries if e.file == "audio.md"] == before
    generation = current_generation(config.index)
    with monkeypatch.context() as m:
        forbid_models(m)
        assert build_index(config).up_to_date and current_generation(config.index) == generation

    # emptied on purpose: the entries go
    (config.corpus / "audio.md").write_text("", encoding="utf-8")
    report = build_index(config)
    assert report.removed == ["audio.md"] and skip_reasons(report.skipped) == {"audio.md": "empty file"}
    assert all(e.file != "audio.md" for e in Index.load(config.index).entries)
