"""The segmenter on the five real notes (spans written down from reading them) and edge cases."""

from __future__ import annotations

import pytest

from rag.ingest.markup import split_lines
from rag.ingest.notes import split_entries
from tests.conftest import CORPUS


def entries_of(name: str):
    return split_entries((CORPUS / name).read_text(encoding="utf-8"), name)


def spans(entries):
    return [(e.line_start, e.line_end) for e in entries]


@pytest.mark.parametrize("name, count", [
    ("000_f355a06a0aca4ace.txt", 9),
    ("001_662f7359960ed917.txt", 29),
    ("002_fca464d712ce6204.txt", 46),
    ("003_30331a2e628cd170.txt", 68),
    ("004_5e63984f062d9650.txt", 17),
])
def test_entry_counts(name: str, count: int) -> None:
    assert len(entries_of(name)) == count


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.iterdir()))
def test_every_line_in_exactly_one_entry(name: str) -> None:
    lines = split_lines((CORPUS / name).read_text(encoding="utf-8"))
    owner = [0] * len(lines)
    for e in entries_of(name):
        assert e.text == "\n".join(lines[e.line_start - 1:e.line_end])
        for i in range(e.line_start - 1, e.line_end):
            owner[i] += 1
    body_start = 6 if name.startswith("000") else 0  # 000 opens with front matter (lines 1-5)
    for i, line in enumerate(lines):
        if i >= body_start and line.strip():
            assert owner[i] == 1, f"line {i + 1} of {name} belongs to {owner[i]} entries"
        assert owner[i] <= 1


def test_hf_daily_report_items_with_nested_headings() -> None:
    es = entries_of("001_662f7359960ed917.txt")
    assert spans(es)[:4] == [(1, 5), (7, 40), (42, 68), (70, 107)]
    audio = es[1]
    assert audio.title == "AudioSAE: Towards Understanding of Audio-Processing Models with Sparse AutoEncoders"
    assert audio.url == "https://huggingface.co/papers/2602.05027"
    assert audio.date == "2026-02-09"
    # "# 论文分析报告…" (line 75) and "## 1. 应用领域" (line 554) live inside their items
    entropy = es[3]
    assert "# 论文分析报告" in entropy.text and entropy.title.startswith("On the Entropy Dynamics")
    infty = next(e for e in es if e.title.startswith("InftyThink+"))
    assert (infty.line_start, infty.line_end) == (547, 579)
    assert spans(es)[-1] == (946, 978)
    assert all(e.kind == "item" for e in es[1:])


def test_awesome_list_headings_including_one_without_space() -> None:
    es = entries_of("003_30331a2e628cd170.txt")
    assert spans(es)[:3] == [(1, 2), (4, 62), (64, 123)]
    ioi = next(e for e in es if e.line_start == 1010)
    assert ioi.title == "开源模型 IOI金牌" and ioi.line_end == 1017
    seer = next(e for e in es if e.title == "Seer")
    assert (seer.line_start, seer.line_end) == (460, 529)  # its indented ``` fence stays inside
    assert spans(es)[-1] == (1292, 1304)
    assert es[1].url == "https://arxiv.org/abs/2510.20519"


def test_daily_intel_numbered_items_under_section() -> None:
    es = entries_of("004_5e63984f062d9650.txt")
    assert spans(es)[:3] == [(1, 1), (3, 3), (5, 36)]
    hysparse = next(e for e in es if "HySparse" in e.title)
    assert (hysparse.line_start, hysparse.line_end) == (267, 298)
    assert hysparse.title.startswith("[小米] HySparse")
    assert hysparse.date == "2026-02-07"
    assert "#### 🔹 核心技术/实现逻辑" in hysparse.text
    assert spans(es)[-1] == (426, 451)


def test_dated_log_bullets_are_items() -> None:
    es = entries_of("002_fca464d712ce6204.txt")
    by_start = {e.line_start: e for e in es}
    assert (by_start[2].title, by_start[2].kind, by_start[2].date) == ("1.1", "section", "2026-01-01")
    mhc = by_start[9]
    assert (mhc.title, mhc.line_end, mhc.url, mhc.date) == ("mHC", 10, "https://arxiv.org/abs/2512.24880", "2026-01-02")
    # the paragraphs, images and the non-item bullets after "Motion Attribution" stay with it
    motion = by_start[115]
    assert motion.title == "Motion Attribution for Video Generation" and motion.line_end == 135
    assert "Data Attribution" in motion.text and "Ex-DL时代" in motion.text
    # a bare-URL bullet is titled by the text beside the URL, or its first child line
    assert by_start[24].title == "Agent Learning EcoSystem"
    assert by_start[155].title.startswith("美团的Paper")
    assert spans(es)[-1] == (242, 253)


def test_fenced_comment_is_not_a_heading() -> None:
    es = entries_of("002_fca464d712ce6204.txt")
    undet = next(e for e in es if e.title == "Undeterminism in LLM")
    assert (undet.line_start, undet.line_end) == (167, 193)
    assert "# x: [batch_size, hidden_dim]" in undet.text
    assert undet.date == "2026-01-21"


def test_table_rows_whose_first_cell_is_a_link_are_entries() -> None:
    es = entries_of("000_f355a06a0aca4ace.txt")
    rows = [e for e in es if e.kind == "row"]
    assert [(e.line_start, e.line_end, e.title) for e in rows] == [
        (28, 28, "LongCat-Flash-Thinking-2601"), (29, 29, "DeepSeek-OCR 2: Visual Causal Flow")]
    assert rows[0].url == "https://arxiv.org/abs/2601.16725"
    header = next(e for e in es if e.line_start == 24)
    assert header.line_end == 27 and header.title == "基座模型追踪 (The Clay)"  # heading + table header
    assert all(e.line_start > 5 for e in es)  # front matter is not an entry


def test_synthetic_note_styles() -> None:
    note = "\n".join([
        "# Reading log 2025",
        "",
        "## 12.30",
        "- [Paper A](https://example.org/a)",
        "  - about attention",
        "```python",
        "# not a heading",
        "- not an item",
        "```",
        "## 1.2",
        "- https://example.org/b Paper B",
        "plain paragraph that belongs to B",
        "- a loose bullet without children",
    ])
    es = split_entries(note, "log.md")
    assert [(e.title, e.line_start, e.line_end, e.date) for e in es] == [
        ("Reading log 2025", 1, 1, None),
        ("12.30", 3, 3, "2025-12-30"),
        ("Paper A", 4, 9, "2025-12-30"),
        ("1.2", 10, 10, "2026-01-02"),  # the log runs into the next year
        ("Paper B", 11, 13, "2026-01-02"),
    ]


def test_unterminated_fence_swallows_rest_without_crashing() -> None:
    note = "## A\ntext\n## B\n```\n## C inside an open fence\n"
    es = split_entries(note, "x.md")
    assert [(e.title, e.line_start, e.line_end) for e in es] == [("A", 1, 2), ("B", 3, 5)]
