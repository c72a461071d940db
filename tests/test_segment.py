"""Many notes are cut up by one process per core, with the same result as one process (fast tier)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.build import segment as seg
from rag.embed.models import Models
from rag.ingest.corpus import read_corpus
from rag.settings import Settings

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def test_parallel_segmenting_gives_what_one_process_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    texts, _ = read_corpus(CORPUS, 10_000_000)
    texts = {**texts, **{f"copy/{name}": text for name, text in texts.items()}}  # 10 notes
    settings = Settings().updated({"index.embedders": ("hash",), "index.max_chunks_per_note": 40}).index
    one = seg.segment_notes(sorted(texts.items()), settings, Models())
    monkeypatch.setattr(seg, "PARALLEL_NOTES", 3)  # two workers here (cores() permitting)
    monkeypatch.setattr(seg, "cores", lambda: 2)
    apart = seg.segment(texts, settings, Models())
    assert list(apart.texts) == sorted(texts) and apart.texts == one.texts
    assert apart.partial == one.partial and one.partial and apart.notices == one.notices


def test_shares_are_consecutive_runs_of_about_equal_text() -> None:
    notes = [(f"{i:03}.md", "x" * (10 + i % 7)) for i in range(300)]
    shares = seg._shares(notes, 2)
    assert [n for share in shares for n in share] == notes and len(shares) == 2  # in order, each once
    sizes = [sum(len(t) for _, t in share) for share in shares]
    assert abs(sizes[0] - sizes[1]) <= 2 * 16  # within a note or so of even
