"""`rag eval`'s written output from known rows: report.md, the stdout summary, results, metrics, plots."""

from __future__ import annotations

import json
from pathlib import Path

from rag.eval.metrics import summarize_answers, summarize_by, summarize_retrieval
from rag.eval.report import summary_table, worst_misses, write_outputs
from rag.eval.stats import percentiles
from rag.ingest.notes import Entry

ENTRIES = [Entry("n.md", title, start, start + 1, None, None, f"{title} text")
           for title, start in (("Zephyrine", 1), ("Quokka-MoE", 4), ("Marlowe", 7))]
GOLD = {e.title: {"file": e.file, "line_start": e.line_start, "line_end": e.line_end} for e in ENTRIES}


def hit(rank: int, entry: Entry, relevant: bool) -> dict:
    return {"rank": rank, "score": 0.1, "entry_id": entry.id, "file": entry.file, "line_start": entry.line_start,
            "line_end": entry.line_end, "title": entry.title, "relevant": relevant}


def row(config: str, qid: str, gold: str | None, ranking: list[int], first: int | None) -> dict:
    golds = [GOLD[gold]] if gold else []
    rr = 1 / first if first else (0.0 if gold else None)
    return {"id": qid, "config": config, "question": f"question {qid}", "lang": "en" if qid != "q2" else "zh",
            "type": "which-paper" if gold else "uncovered", "split": "report", "gold": golds,
            "first_rank": first if gold else None, "rr": rr, "ndcg": rr,
            "recall": 1.0 if first else (0.0 if gold else None),
            "hits": [hit(i + 1, ENTRIES[e], gold == ENTRIES[e].title) for i, e in enumerate(ranking)],
            "search_ms": 2.0 if config == "bm25" else 40.0}


def make_run() -> tuple[dict, dict[str, list[dict]]]:
    rows = {"bm25": [row("bm25", "q1", "Zephyrine", [0, 1], 1), row("bm25", "q2", "Marlowe", [1, 0, 2], 3),
                     row("bm25", "q3", None, [1], None)],
            "hybrid": [row("hybrid", "q1", "Zephyrine", [0], 1), row("hybrid", "q2", "Marlowe", [2], 1),
                       row("hybrid", "q3", None, [1], None)]}
    for r, refused in zip(rows["hybrid"], (False, False, True), strict=True):
        r["answer"] = {"text": "…", "mode": "extractive", "refused": refused, "uncited": False, "citations": []}
        covered = bool(r["gold"])
        r["answer_scores"] = {"citation_precision": 1.0 if covered else None,
                              "citation_recall": 1.0 if covered else None, "keyword_coverage": 0.5 if covered else None}
        r["answer_ms"] = 50.0
    metrics = {
        "qa": "tiny.jsonl", "split": "report", "created": "2026-12-01T00:00:00+00:00", "questions": 3, "covered": 2,
        "counts": {"lang": {"en": 2, "zh": 1}, "type": {"which-paper": 2, "uncovered": 1}},
        "index": {"generation": "gen-1", "sources": ["bm25", "hash"], "entries": 3, "chunks": 3},
        "k": 10, "answer_k": 6, "load_average": {"start": 0.5, "end": 0.7},
        "configs": {name: {"sources": ["bm25"] if name == "bm25" else ["bm25", "hash"], **summarize_retrieval(rs),
                           "by_lang": summarize_by(rs, "lang"), "by_type": summarize_by(rs, "type"),
                           "search_ms": percentiles([r["search_ms"] for r in rs])} for name, rs in rows.items()},
        "skipped_configs": [{"name": "dense-e5", "reason": "the index has no e5-small-q4 retriever"}],
        "answers": {"config": "hybrid", **summarize_answers(rows["hybrid"])},
        "judge": {"skipped": "not requested (rag eval --judge)"},
    }
    return metrics, rows


def test_worst_misses_name_the_gold_and_what_came_instead() -> None:
    _, rows = make_run()
    misses = worst_misses(rows["bm25"], ENTRIES)
    assert misses == [{"id": "q2", "question": "question q2", "lang": "zh", "type": "which-paper", "rank": 3,
                       "gold": ["Marlowe (n.md:7-8)"],
                       "instead": ["Quokka-MoE (n.md:4-5)", "Zephyrine (n.md:1-2)", "Marlowe (n.md:7-8)"]}]
    assert worst_misses(rows["hybrid"], ENTRIES) == []


def test_summary_names_the_split_and_the_refusal_counts() -> None:
    metrics, _ = make_run()
    lines = summary_table(metrics).splitlines()
    assert lines[0] == "3 questions (2 covered; split report), index gen-1"
    bm25 = next(line for line in lines if line.startswith("| bm25"))
    assert [c.strip() for c in bm25.strip("|").split("|")][:6] == ["bm25", "0.500", "1.000", "1.000", "0.667", "0.667"]
    assert "skipped dense-e5: the index has no e5-small-q4 retriever" in lines
    answers = next(line for line in lines if line.startswith("answers"))
    assert "uncovered refused 1/1, answerable refused 0/2" in answers
    assert lines[-1] == "judge: skipped, not requested (rag eval --judge)"


def test_outputs_are_written(tmp_path: Path) -> None:
    metrics, rows = make_run()
    write_outputs(tmp_path / "out", metrics, rows, ENTRIES)
    out = tmp_path / "out"
    results = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["config"], r["id"]) for r in results] == [(c, q) for c in ("bm25", "hybrid") for q in ("q1", "q2", "q3")]
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == metrics
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "split **report**" in report and "## Worst misses (hybrid)" in report
    assert "None: every covered question has a gold entry at rank 1." in report
    assert "| hybrid | 1.000 | 1.000 | 1.000  | 1.000  | 1.000   | –" in report
    assert "refusal accuracy (1 of 1 uncovered refused)" in report and "Skipped: not requested" in report
    for png in ("metrics_by_config.png", "hit_at_k.png", "latency.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
