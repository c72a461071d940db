"""The canned question set: loading, validating and splitting it (format in ../shared/docs/cli.md).

A question's gold entries are line spans of notes; a retrieved entry counts when it is in the
same file and its span overlaps a gold span. That overlap rule lives here, once, for every
metric and report. ``split`` (``tune`` or ``report``) keeps the questions thresholds are tuned on
apart from the ones results are reported on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError
from rag.ingest.notes import Entry

SPLITS = ("tune", "report")
SPLIT_CHOICES = (*SPLITS, "all")


class EvalError(RagError):
    """Bad evaluation input (a malformed Q&A file, an unknown configuration): one line for the user."""


@dataclass(frozen=True)
class Span:
    """Lines ``line_start..line_end`` (1-based, inclusive) of one note."""

    file: str
    line_start: int
    line_end: int

    def overlaps(self, other: Span) -> bool:
        return (self.file == other.file and self.line_start <= other.line_end
                and other.line_start <= self.line_end)

    def to_json(self) -> dict:
        return {"file": self.file, "line_start": self.line_start, "line_end": self.line_end}

    @classmethod
    def of(cls, entry: Entry) -> Span:
        return cls(entry.file, entry.line_start, entry.line_end)


def overlaps_any(span: Span, others: Sequence[Span]) -> bool:
    return any(span.overlaps(o) for o in others)


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    gold: tuple[Span, ...]  # empty: the notes do not cover it
    answer_keywords: tuple[str, ...]
    lang: str
    type: str
    split: str | None = None  # "tune" | "report"; None in a set that is not split

    @property
    def covered(self) -> bool:
        return bool(self.gold)


@dataclass(frozen=True)
class QASet:
    """The questions chosen for a run, and which split they are (said in every report)."""

    path: Path
    questions: list[Question]
    split: str  # what was asked for: tune, report or all
    note: str = ""  # e.g. "the set has no split field: all questions"

    @property
    def label(self) -> str:
        return f"{self.split} ({self.note})" if self.note else self.split


def _question(row: object, n: int) -> Question:
    if not isinstance(row, dict):
        raise TypeError("not an object")
    gold = tuple(Span(str(g["file"]), int(g["line_start"]), int(g["line_end"])) for g in row.get("gold", []))
    split = row.get("split")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}")
    default_type = "cross-entry" if len(gold) > 1 else "uncovered" if not gold else "?"
    return Question(id=str(row.get("id", n)), question=str(row["question"]), gold=gold,
                    answer_keywords=tuple(str(k) for k in row.get("answer_keywords", [])),
                    lang=str(row.get("lang", "?")), type=str(row.get("type") or default_type), split=split)


def load_qa(path: Path) -> list[Question]:
    """Every question of a set; a bad line is an :class:`EvalError` naming it."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    questions: list[Question] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            q = _question(json.loads(line), n)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            why = f" ({exc})" if "split" in str(exc) else ""
            raise EvalError(f'{path}:{n}: expected a JSON object with "question" and "gold" '
                            f'[{{"file", "line_start", "line_end"}}]{why}') from None
        if q.id in seen:
            raise EvalError(f"{path}:{n}: duplicate id {q.id!r}")
        seen.add(q.id)
        questions.append(q)
    if not questions:
        raise EvalError(f"{path} has no questions")
    return questions


def select(questions: Sequence[Question], path: Path, split: str) -> QASet:
    """The questions of ``split``; a set without split fields is used whole (and says so).

    A set where only some questions carry a split is an error: silently reporting on tuning
    questions is exactly what the split is there to prevent.
    """
    if split not in SPLIT_CHOICES:
        raise EvalError(f"unknown split {split!r}; use one of {', '.join(SPLIT_CHOICES)}")
    marked = [q for q in questions if q.split]
    if not marked:
        note = "the set has no split field: all questions" if split != "all" else ""
        return QASet(path, list(questions), split, note)
    if len(marked) != len(questions):
        first = next(q for q in questions if not q.split)
        raise EvalError(f"{path}: question {first.id} has no \"split\" while others do; "
                        f"give every question one of {', '.join(SPLITS)}")
    chosen = [q for q in questions if split == "all" or q.split == split]
    if not chosen:
        raise EvalError(f"{path} has no questions in the {split} split")
    return QASet(path, chosen, split)


def load_split(path: Path, split: str = "report") -> QASet:
    """:func:`load_qa` then :func:`select`: what `rag eval --split` and `rag bench` run on."""
    return select(load_qa(path), path, split)
