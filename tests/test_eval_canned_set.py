"""The committed canned set: every gold span is an entry of the segmenter, and the set has the
shape and split the README describes (no model, no index)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.eval.collections import canned_sets
from rag.eval.qa import SPLITS, load_qa
from rag.ingest.corpus import read_corpus
from rag.ingest.notes import split_entries
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
QA = ROOT / "eval" / "qa.jsonl"
#: Written after issue 12's ranking work without running any search: a check that it transfers.
BLIND = ROOT / "eval" / "qa_blind.jsonl"


@pytest.fixture(scope="module")
def questions() -> list:
    return load_qa(QA)


@pytest.mark.parametrize("path", [QA, BLIND], ids=lambda p: p.name)
def test_gold_spans_are_entries_of_the_segmenter(path: Path) -> None:
    questions = load_qa(path)
    texts, skipped = read_corpus(ROOT / "corpus", 1 << 30)
    assert not skipped
    spans = {rel: {(e.line_start, e.line_end) for e in split_entries(text, rel)} for rel, text in texts.items()}
    wrong = [f"{q.id}: {g.file}:{g.line_start}-{g.line_end}" for q in questions for g in q.gold
             if (g.line_start, g.line_end) not in spans.get(g.file, set())]
    assert not wrong, f"{len(wrong)} gold spans are not entries: {wrong[:5]}"


@pytest.mark.parametrize("path", [QA, BLIND], ids=lambda p: p.name)
def test_canned_set_shape(path: Path) -> None:
    questions = load_qa(path)
    assert len(questions) >= 40
    assert {q.type for q in questions} <= {"which-paper", "factoid", "explain", "cross-entry", "uncovered"}
    assert {q.lang for q in questions} <= {"zh", "en", "mixed"}
    assert sum(not q.covered for q in questions) >= 5
    assert all(q.covered == (q.type != "uncovered") for q in questions)
    assert all(len(q.gold) >= 2 for q in questions if q.type == "cross-entry")


def test_both_splits_can_tune_and_report_refusals(questions: list) -> None:
    if not any(q.split for q in questions):
        pytest.skip("eval/qa.jsonl has no tune/report split yet")
    for split in SPLITS:
        part = [q for q in questions if q.split == split]
        assert sum(q.covered for q in part) >= 20, split
        assert sum(not q.covered for q in part) >= 3, split
        assert {q.lang for q in part} == {"zh", "en", "mixed"}, split


def test_the_blind_set_is_one_unsplit_set_beside_the_canned_one(questions: list) -> None:
    blind = load_qa(BLIND)
    assert not any(q.split for q in blind)
    assert not {q.id for q in blind} & {q.id for q in questions}
    assert {q.lang for q in blind} == {"zh", "en", "mixed"}


def test_the_calibration_grids_read_every_canned_collection_of_a_split() -> None:
    """scripts/gate_grid.py and answer_grid.py choose on `tune` of all of them, the new ones too."""
    tune = canned_sets(Settings(), "tune")
    assert [label for label, _, _ in tune] == ["bundled", "other", "third", "fifth", "sixth", "seventh"]
    assert all(q.split == "tune" for _, _, questions in tune for q in questions)
    assert tune[-1][1].index.corpus.as_posix() == "eval/seventh/notes"
    assert [label for label, _, _ in canned_sets(Settings(), "report")] == ["bundled", "other", "fourth"]
