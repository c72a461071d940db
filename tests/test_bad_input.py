"""Bad notes never stop a build: each is a Skip with its reason, the rest is indexed, nothing is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

import rag.build.plan
from rag.build.builder import BuildReport, build_index
from rag.embed.models import Models
from rag.ingest.corpus import NoteError, decode_note, find_notes
from rag.retrieve.searcher import Searcher
from rag.settings import Settings, load_settings
from rag.store import open_store

GBK_NOTE = "# 稀疏注意力笔记\n\n本文提出一种新的稀疏注意力方法，长文本推理显存降低一半。\n"
FENCE_NOTE = ("# Fence paper\n\nIntro about fences.\n\n```python\nprint('never closed')\n\n"
              "# Fence sequel\n\nWombatron results.\n")
TABLE_NOTE = ("# Table paper\n\n| model | score |\n|---|\n| Kangarank | 91.2 | extra | cells |\n| only one cell\n"
              "|---|---|---|---|---|\n\n| | |\n\nAfter the table: platypusnet.\n")
GOOD = {"transformer.md": "# Transformer\n\nSelf-attention replaces recurrence. 自注意力机制。\n",
        "audio.md": "# AudioSAE\n\nSparse autoencoders on Whisper and HuBERT. 稀疏自动编码器。\n"}


@pytest.fixture(scope="module")
def models() -> Models:
    return Models()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A corpus holding GOOD, indexed into tmp with the model-free ``hash`` embedder."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in GOOD.items():
        (corpus / name).write_text(text, encoding="utf-8")
    return Settings().updated({"index.corpus": corpus, "index.path": tmp_path / "index", "index.embedders": ("hash",)})


def build(settings: Settings, models: Models) -> BuildReport:
    return build_index(settings.index, open_store(settings), models)


def skips(report: BuildReport) -> dict[str, tuple[str, bool]]:
    return {s.path: (s.reason, s.kept) for s in report.skipped}


def entries_of(settings: Settings, path: str) -> list:
    return [e for e in open_store(settings).load().entries if e.file == path]


def search(settings: Settings, models: Models, question: str):  # type: ignore[no-untyped-def]
    searcher = Searcher(open_store(settings).load(), settings.retrieval, settings.index.corpus, models)
    return searcher.search(question, k=1).hits[0]


def test_bad_files_are_skipped_with_reasons_and_the_rest_is_indexed(settings: Settings, models: Models,
                                                                    tmp_path: Path) -> None:
    corpus = settings.index.corpus
    outside = tmp_path / "outside.md"
    outside.write_text("# Secret\n\nOutside the corpus: snorkelfish.\n", encoding="utf-8")
    for name, data in {"binary.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8,
                       "noise.md": bytes(range(128, 256)) * 16, "empty.md": b"", "blank.md": b"  \n\n\t\n",
                       "gbk.md": GBK_NOTE.encode("gbk"), "fence.md": FENCE_NOTE.encode(),
                       "table.md": TABLE_NOTE.encode(),
                       "my notes 笔记/第 1 篇 note.md": b"# Spacey\n\nQuokkaformer with spaces in its name.\n"}.items():
        (corpus / name).parent.mkdir(exist_ok=True)
        (corpus / name).write_bytes(data)
    with open(corpus / "big.md", "wb") as f:  # 6 MB, sparse
        f.write(b"# Big\n\n")
        f.truncate(6 * 1024 * 1024)
    (corpus / "link.md").symlink_to(outside)

    report = build(settings, models)
    expected = {
        "big.md": ("6.3 MB is over the 5.2 MB cap (RAG_MAX_NOTE_BYTES)", False),
        "binary.md": ("binary file (NUL bytes), not a text note", False),
        "blank.md": ("empty file", False),
        "empty.md": ("empty file", False),
        "link.md": ("symlink pointing outside the corpus: not followed", False),
        "noise.md": ("not UTF-8 and no text encoding could be detected", False),
    }
    assert skips(report) == expected
    manifest = open_store(settings).manifest()
    assert {s.path: (s.reason, s.kept) for s in manifest.skipped} == expected
    assert sorted(manifest.notes) == ["audio.md", "fence.md", "gbk.md", "my notes 笔记/第 1 篇 note.md",
                                      "table.md", "transformer.md"]
    assert search(settings, models, "长文本推理显存").entry.file == "gbk.md"
    assert search(settings, models, "wombatron").entry.file == "fence.md"
    assert search(settings, models, "kangarank").entry.file == search(settings, models, "platypusnet").entry.file \
        == "table.md"
    hit = search(settings, models, "quokkaformer")
    assert hit.entry.file == "my notes 笔记/第 1 篇 note.md"
    assert hit.path.endswith("corpus/my notes 笔记/第 1 篇 note.md")
    assert all("snorkelfish" not in e.text for e in open_store(settings).load().entries)

    again = build(settings, models)  # the same bad files: reported again, nothing to rebuild
    assert again.up_to_date and again.notes == 6 and skips(again) == expected


def test_short_gbk_notes_decode() -> None:
    for text in [GBK_NOTE, "# 笔记\n\n这是一篇关于大模型的笔记。", "# Title\n\nSome English with 一点中文。\n"]:
        assert decode_note(text.encode("gbk")) == text
        assert decode_note(text.encode("gb18030")) == text
    assert decode_note("\ufeff# BOM\n\nutf-8 with BOM".encode()) == "# BOM\n\nutf-8 with BOM"
    with pytest.raises(NoteError, match="binary"):
        decode_note(b"abc\x00def")


def test_note_size_cap_is_a_setting(settings: Settings, models: Models) -> None:
    (settings.index.corpus / "long.md").write_text("# Long\n\n" + "Lengthy " * 300, encoding="utf-8")
    cap = load_settings(env={"RAG_MAX_NOTE_BYTES": "2000"}).index.max_note_bytes
    report = build(settings.updated({"index.max_note_bytes": cap}), models)
    assert skips(report) == {"long.md": ("2.4 kB is over the 2.0 kB cap (RAG_MAX_NOTE_BYTES)", False)}
    assert report.added == ["audio.md", "transformer.md"]
    report = build(settings.updated({"index.max_note_bytes": 10_000}), models)
    assert report.added == ["long.md"] and not report.skipped


def test_symlinks_inside_are_followed_outside_are_not(settings: Settings, models: Models, tmp_path: Path) -> None:
    corpus = settings.index.corpus
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.md").write_text("# Secret\n\nsnorkelfish\n", encoding="utf-8")
    (corpus / "out.md").symlink_to(tmp_path / "elsewhere" / "secret.md")
    (corpus / "outdir").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (corpus / "alias.md").symlink_to(corpus / "audio.md")
    notes, passed_over = find_notes(corpus)
    assert [n.rel for n in notes] == ["alias.md", "audio.md", "transformer.md"]
    assert passed_over == [("out.md", "symlink pointing outside the corpus: not followed")]
    report = build(settings, models)
    assert report.added == ["audio.md", "transformer.md"]  # issue 25: the alias is the same note, indexed once
    assert [(s.path, s.reason) for s in report.skipped] == [
        ("out.md", "symlink pointing outside the corpus: not followed"),
        ("alias.md", "the same file as audio.md: indexed once, under that name")]
    assert all("snorkelfish" not in e.text for e in open_store(settings).load().entries)


def test_note_deleted_while_indexing(settings: Settings, models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = settings.index.corpus
    (corpus / "doomed.md").write_text("# Doomed\n\nVanishing act.\n", encoding="utf-8")
    build(settings, models)
    (corpus / "fresh.md").write_text("# Fresh\n\nJust added, also vanishing.\n", encoding="utf-8")

    def find_then_delete(root: Path, ignore: tuple[str, ...] = ()) -> tuple:
        found = find_notes(root, ignore)
        (root / "doomed.md").unlink()  # gone between the listing and the read
        (root / "fresh.md").unlink()
        return found

    monkeypatch.setattr(rag.build.plan, "find_notes", find_then_delete)
    report = build(settings, models)
    gone = ("deleted while indexing", False)
    assert skips(report) == {"doomed.md": gone, "fresh.md": gone}
    assert report.removed == ["doomed.md"] and not report.added
    assert sorted(open_store(settings).manifest().notes) == ["audio.md", "transformer.md"]


class NoModels(Models):
    def embedder(self, name: str):  # type: ignore[no-untyped-def]
        raise AssertionError(f"model {name} loaded")


def test_a_note_gone_bad_keeps_its_previous_entries(settings: Settings, models: Models,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = settings.index.corpus
    build(settings, models)
    before = entries_of(settings, "audio.md")
    real_read = rag.build.plan.read_bytes

    def unreadable(note_file, max_bytes):  # type: ignore[no-untyped-def]
        if note_file.rel == "audio.md":
            raise NoteError("unreadable: Permission denied")
        return real_read(note_file, max_bytes)

    with monkeypatch.context() as m:
        m.setattr(rag.build.plan, "read_bytes", unreadable)
        (corpus / "transformer.md").write_text("# Transformer\n\nNow about quuxvarn.\n", encoding="utf-8")
        report = build(settings, models)
    assert skips(report) == {"audio.md": ("unreadable: Permission denied", True)}
    assert report.changed == ["transformer.md"] and not report.removed
    assert entries_of(settings, "audio.md") == before
    assert search(settings, models, "Whisper HuBERT").entry.file == "audio.md"

    # overwritten with garbage: still the old entries, and the verdict is remembered
    (corpus / "audio.md").write_bytes(b"\x00garbage\x00")
    report = build(settings, models)
    assert skips(report) == {"audio.md": ("binary file (NUL bytes), not a text note", True)}
    assert entries_of(settings, "audio.md") == before
    generation = open_store(settings).current()
    assert build(settings, NoModels()).up_to_date and open_store(settings).current() == generation

    # emptied on purpose: the entries go
    (corpus / "audio.md").write_text("", encoding="utf-8")
    report = build(settings, models)
    assert report.removed == ["audio.md"] and skips(report) == {"audio.md": ("empty file", False)}
    assert entries_of(settings, "audio.md") == []
