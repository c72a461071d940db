"""Evaluation metrics, configurations, the canned set's loading and splits, the judge and the report,
each against a hand computation on tiny inputs (no model, no index)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rag.answer.answer import Answer
from rag.eval.configs import parse_config, resolve_configs
from rag.eval.judge import judge_answers, parse_judgement
from rag.eval.metrics import (
    citation_precision,
    citation_recall,
    generation_rate,
    hit_at,
    keyword_coverage,
    ndcg,
    ranking_quality,
    recall,
    reciprocal_rank,
    relevance,
    retrieval_scores,
    summarize_answers,
    summarize_by,
    summarize_retrieval,
    support_rate,
)
from rag.eval.qa import EvalError, Question, Span, load_qa, load_split
from rag.eval.runner import spread
from rag.eval.stats import mean, percentiles
from rag.eval.tables import fmt, markdown_table
from rag.ingest.notes import Entry

A = "a.md"


def span(start: int, end: int, file: str = A) -> Span:
    return Span(file, start, end)


def question(gold: tuple[Span, ...], qid: str = "q") -> Question:
    return Question(qid, "?", gold, (), "en", "factoid")


# ---------------------------------------------------------------------------- metric functions

def test_overlap_rule_same_file_and_shared_lines() -> None:
    gold = span(10, 20)
    assert span(20, 30).overlaps(gold) and span(1, 10).overlaps(gold) and span(12, 13).overlaps(gold)
    assert span(5, 40).overlaps(gold)
    assert not span(21, 30).overlaps(gold) and not span(1, 9).overlaps(gold)
    assert not span(10, 20, file="b.md").overlaps(gold)


def test_relevance_credits_each_gold_once() -> None:
    gold = [span(10, 20), span(50, 60, "b.md")]
    # two entries overlapping the same gold: only the first counts; the second gold found at rank 4
    retrieved = [span(1, 5), span(8, 12), span(15, 25), span(50, 50, "b.md"), span(50, 60)]
    assert relevance(retrieved, gold) == [0, 1, 0, 1, 0]


def test_hit_at_and_reciprocal_rank() -> None:
    rels = [0, 0, 1, 0, 1]
    assert [hit_at(rels, k) for k in (1, 2, 3, 5)] == [0.0, 0.0, 1.0, 1.0]
    assert reciprocal_rank(rels) == pytest.approx(1 / 3)
    assert reciprocal_rank([1]) == 1.0
    assert reciprocal_rank([0] * 10) == 0.0
    assert reciprocal_rank([0] * 10 + [1], k=10) == 0.0  # rank 11 is outside MRR@10


def test_ndcg_by_hand() -> None:
    # two gold, found at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5), ideal = 1 + 1/log2(3)
    assert ndcg([0, 1, 0, 1], n_gold=2) == pytest.approx(0.650921, abs=1e-6)
    assert ndcg([1, 1], n_gold=2) == 1.0
    assert ndcg([0, 0, 0], n_gold=1) == 0.0
    assert ndcg([1], n_gold=3) == pytest.approx(1 / (1 + 1 / math.log2(3) + 1 / math.log2(4)))
    assert ndcg([1] * 10, n_gold=12) == pytest.approx(1.0)  # the ideal DCG stops at k


def test_recall_on_multi_gold_and_the_cut_at_k() -> None:
    gold = [span(10, 20), span(30, 40), span(5, 9, "b.md")]
    retrieved = [span(12, 14), span(100, 120), span(35, 35), span(1, 50, "b.md")]
    assert recall(retrieved, gold) == 1.0
    assert recall(retrieved, gold, k=3) == pytest.approx(2 / 3)
    assert recall(retrieved, gold, k=1) == pytest.approx(1 / 3)
    assert retrieval_scores(retrieved, gold) == {"first_rank": 1, "rr": 1.0, "ndcg": pytest.approx(
        (1 + 1 / math.log2(4) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))), "recall": 1.0}
    assert retrieval_scores(retrieved, []) == {"first_rank": None, "rr": None, "ndcg": None, "recall": None}


def test_summary_excludes_uncovered_questions() -> None:
    rows = [
        {"gold": [{"file": A}], "first_rank": 1, "rr": 1.0, "ndcg": 1.0, "recall": 1.0},
        {"gold": [{"file": A}], "first_rank": 4, "rr": 0.25, "ndcg": 0.4307, "recall": 1.0},
        {"gold": [{"file": A}], "first_rank": None, "rr": 0.0, "ndcg": 0.0, "recall": 0.0},
        {"gold": [], "first_rank": None, "rr": None, "ndcg": None, "recall": None},
    ]
    s = summarize_retrieval(rows)
    assert s["n"] == 3
    assert (s["hit@1"], s["hit@5"], s["hit@10"]) == pytest.approx((1 / 3, 2 / 3, 2 / 3))
    assert s["mrr@10"] == pytest.approx(1.25 / 3)
    assert s["recall@10"] == pytest.approx(2 / 3)
    assert s["hit_curve"][:4] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3])
    assert summarize_retrieval(rows[3:]) == {"n": 0}


def test_summaries_by_language_keep_known_order_and_drop_groups_without_gold() -> None:
    def row(lang: str, rank: int | None, gold: bool = True) -> dict:
        return {"lang": lang, "gold": [{"file": A}] if gold else [], "first_rank": rank,
                "rr": 1 / rank if rank else 0.0, "ndcg": 0.0, "recall": 0.0}

    rows = [row("mixed", 1), row("en", 2), row("zh", None), row("zh", 1), row("xx", None, gold=False)]
    by = summarize_by(rows, "lang")
    assert list(by) == ["zh", "en", "mixed"]
    assert by["zh"]["hit@1"] == 0.5 and by["en"]["mrr@10"] == 0.5 and by["mixed"]["n"] == 1


def test_answer_metrics() -> None:
    gold = [span(10, 20), span(30, 40)]
    cited = [span(10, 20), span(100, 110)]
    assert citation_precision(cited, gold) == 0.5
    assert citation_recall(cited, gold) == 0.5
    assert citation_precision([], gold) is None and citation_recall([], gold) == 0.0
    assert citation_recall(cited, []) is None
    assert keyword_coverage("OmniMoE splits experts; 80% less KV", ["omnimoe", "80%", "HySparse"]) \
        == pytest.approx(2 / 3)
    assert keyword_coverage("anything", []) is None


def test_support_rate_is_the_share_of_an_llm_answers_sentences_not_flagged() -> None:
    text = "OmniMoE uses atomic experts [1]. It is 12x faster [1]. 它快了 10.9 倍 [1]。 It is open [2]."
    flagged = Answer("q", text, [], "llm", refused=False, unsupported=["It is 12x faster [1]."])
    assert support_rate(flagged) == 0.75
    assert support_rate(Answer("q", text, [], "extractive", refused=False)) is None  # quotes: nothing checked
    assert support_rate(Answer("q", "Not covered.", [], "llm", refused=True)) is None
    rows = [{"gold": [], "answer_scores": {"support_rate": r}, "answer": {"mode": "llm", "refused": False,
                                                                         "uncited": False}, "answer_ms": 1.0}
            for r in (0.5, None, 1.0)]
    assert summarize_answers(rows)["support_rate"] == 0.75


def test_answer_summary_counts_refusals_on_each_side() -> None:
    def row(gold: bool, refused: bool, uncited: bool = False, ms: float = 10.0) -> dict:
        scores = {"citation_precision": 1.0 if gold and not refused else None,
                  "citation_recall": (0.0 if refused else 1.0) if gold else None,
                  "keyword_coverage": 0.5 if gold else None}
        return {"gold": [{"file": A}] if gold else [], "answer_ms": ms, "answer_scores": scores,
                "answer": {"mode": "extractive", "refused": refused, "uncited": uncited}}

    rows = [row(True, False), row(True, True, ms=30.0), row(True, False, uncited=True),
            row(False, True), row(False, False)]
    s = summarize_answers(rows)
    assert (s["answerable_refused"], s["n_covered"], s["uncovered_refused"], s["n_uncovered"]) == (1, 3, 1, 2)
    assert s["false_refusal_rate"] == pytest.approx(1 / 3) and s["refusal_accuracy"] == 0.5
    assert s["citation_recall"] == pytest.approx(2 / 3) and s["citation_precision"] == 1.0
    assert s["uncited_rate"] == pytest.approx(1 / 3)  # over the three answers that were not refused
    assert s["latency_ms"]["p50"] == 10.0 and s["modes"] == {"extractive": 5}


def test_ranking_quality_over_covered_questions() -> None:
    qs = [question((span(1, 5),), "a"), question((span(10, 12),), "b"), question((), "c")]
    rankings = [[span(1, 2)], [span(30, 40), span(11, 11)], [span(1, 2)]]
    assert ranking_quality(rankings, qs) == {"hit@1": 0.5, "hit@5": 1.0, "mrr@10": 0.75, "n": 2}


def test_mean_and_percentiles() -> None:
    assert mean([1.0, None, 3.0]) == 2.0 and mean([None]) is None
    assert percentiles([]) == {"p50": None, "p95": None}
    assert percentiles([1.0, 2.0, 3.0, 4.0, 100.0]) == {"p50": 3.0, "p95": pytest.approx(80.8)}
    assert percentiles([1.0, 2.0], digits=0) == {"p50": 2.0, "p95": 2.0}


def test_markdown_table_pads_columns_and_marks_missing_values() -> None:
    table = markdown_table(["config", "MRR"], [["hybrid", fmt(0.96)], ["bm25", None], ["x", 0.25]])
    assert table.splitlines() == ["| config | MRR   |", "|--------|-------|", "| hybrid | 0.960 |",
                                  "| bm25   | –     |", "| x      | 0.25  |"]
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [["only one"]])


# ---------------------------------------------------------------------------- configurations

def test_configurations_follow_the_index() -> None:
    chosen, skipped = resolve_configs(None, ("bm25", "use-m3"))
    assert chosen == {"bm25": ("bm25",), "dense-use": ("use-m3",), "hybrid": ("bm25", "use-m3")}
    why = dict(skipped)
    assert "e5-onnx" in why["dense-e5"] and "e5-onnx" in why["bm25+e5"]
    assert why["bm25+use"] == "same retrievers as hybrid"
    dense = ("e5-onnx", "use-m3", "BAAI/bge-m3")
    chosen, _ = resolve_configs(None, ("bm25", *dense, "exact"), dense)
    assert list(chosen) == ["bm25", "dense-e5", "dense-use", "bm25+e5", "bm25+use", "BAAI/bge-m3", "hybrid"]
    assert chosen["hybrid"] == ("bm25", *dense, "exact") and chosen["BAAI/bge-m3"] == ("BAAI/bge-m3",)
    chosen, skipped = resolve_configs(["bm25+e5", "e5+use"], ("bm25", "e5-onnx", "use-m3"))
    assert chosen == {"bm25+e5": ("bm25", "e5-onnx"), "e5+use": ("e5-onnx", "use-m3")}
    assert not skipped
    assert parse_config("bm25+hash") == ("bm25", "hash") and parse_config("hybrid") is None
    with pytest.raises(EvalError, match="unknown configuration 'bm25\\+'"):
        resolve_configs(["bm25+"], ("bm25",))


# ---------------------------------------------------------------------------- the canned-set format

def write_qa(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def test_bad_qa_lines_are_named(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "x", "question": "q", "gold": []}\n{"id": "y", "gold": []}\n', encoding="utf-8")
    with pytest.raises(EvalError, match=r"qa.jsonl:2: expected"):
        load_qa(qa)
    qa.write_text('{"id": "x", "question": "q", "gold": []}\n' * 2, encoding="utf-8")
    with pytest.raises(EvalError, match="duplicate id 'x'"):
        load_qa(qa)
    qa.write_text('{"id": "x", "question": "q", "gold": [], "split": "train"}\n', encoding="utf-8")
    with pytest.raises(EvalError, match="split must be one of tune, report"):
        load_qa(qa)
    with pytest.raises(EvalError, match="cannot read"):
        load_qa(tmp_path / "missing.jsonl")


def test_splits_select_their_questions(tmp_path: Path) -> None:
    gold = [{"file": A, "line_start": 1, "line_end": 2}]
    rows = [{"id": f"q{i}", "question": f"question {i}", "gold": gold if i % 3 else [],
             "split": "tune" if i < 4 else "report"} for i in range(6)]
    qa = write_qa(tmp_path / "split.jsonl", rows)
    assert [q.id for q in load_split(qa, "tune").questions] == ["q0", "q1", "q2", "q3"]
    report = load_split(qa, "report")
    assert [q.id for q in report.questions] == ["q4", "q5"] and report.label == "report"
    assert len(load_split(qa, "all").questions) == 6
    tune = load_split(qa, "tune").questions
    assert [q.type for q in tune] == ["uncovered", "?", "?", "uncovered"]  # the type a row leaves out
    assert [q.split for q in tune] == ["tune"] * 4
    with pytest.raises(EvalError, match="unknown split 'dev'"):
        load_split(qa, "dev")

    plain = write_qa(tmp_path / "plain.jsonl", [{k: v for k, v in r.items() if k != "split"} for r in rows])
    whole = load_split(plain, "report")
    assert len(whole.questions) == 6 and "no split field" in whole.label

    rows[2].pop("split")
    half = write_qa(tmp_path / "half.jsonl", rows)
    with pytest.raises(EvalError, match="question q2 has no \"split\""):
        load_split(half, "report")


# ---------------------------------------------------------------------------- the judge

def test_parse_judgement_tolerates_prose_and_clips() -> None:
    assert parse_judgement('Sure.\n{"faithfulness": 0.5, "relevance": 1.4}\nDone') == \
        {"faithfulness": 0.5, "relevance": 1.0}
    assert parse_judgement("no json here") is None
    assert parse_judgement('{"faithfulness": "high"}') is None


def test_judge_grades_answered_covered_rows_in_the_questions_language() -> None:
    entry = Entry(file=A, title="Zephyrine", line_start=3, line_end=4, url=None, date=None,
                  text="Zephyrine keeps 5% of heads.")
    cited = {"n": 1, "title": "Zephyrine", "entry_id": entry.id}

    def row(text: str, refused: bool = False, gold: bool = True) -> dict:
        return {"question": text, "gold": [{"file": A}] if gold else [],
                "answer": {"text": "Zephyrine [1]", "refused": refused, "citations": [cited]}}

    rows = [row("哪篇论文只保留 5% 的注意力头？"), row("Which paper keeps 5% of heads?"),
            row("refused one", refused=True), row("an endpoint failure"), row("uncovered", gold=False),
            row("a reply without JSON")]
    replies = iter(['Verdict: {"faithfulness": 0.75, "relevance": 1}', '{"faithfulness": 0.25, "relevance": 0.5}',
                    None, "I cannot grade this."])
    prompts: list[str] = []

    def ask(prompt: str) -> str | None:
        prompts.append(prompt)
        return next(replies)

    ticks: list[int] = []
    result = judge_answers(ask, "judge-model", {entry.id: entry}, rows, lambda: ticks.append(1))
    assert result == {"model": "judge-model", "n": 2, "failures": 2, "faithfulness": 0.5, "relevance": 0.75}
    assert len(prompts) == 4 and len(ticks) == len(rows)  # refused and uncovered rows are not judged
    zh, en = prompts[:2]
    assert "哪篇论文" in zh and "Zephyrine keeps 5% of heads." in zh and "[1] Zephyrine" in zh
    assert "Which paper keeps 5% of heads?" in en and "哪篇论文" not in en and zh != en
    assert rows[0]["judge"] == {"faithfulness": 0.75, "relevance": 1.0}
    assert "judge" not in rows[2] and "judge" not in rows[4]
    assert rows[3]["judge"] is None and rows[5]["judge"] is None


def test_generation_rate_counts_only_streamed_model_answers() -> None:
    def row(mode: str, ms: float, ttft: float, tokens: int) -> dict:
        return {"answer": {"mode": mode}, "answer_ms": ms, "ttft_ms": ttft, "out_tokens": tokens}

    assert generation_rate([row("llm", 3000, 1000, 10), row("llm", 2000, 1000, 5),
                            row("extractive", 50, 50, 300)]) == pytest.approx(5.0)
    assert generation_rate([row("extractive", 50, 50, 300)]) is None


def test_a_limited_run_spreads_over_covered_and_keeps_an_uncovered_question() -> None:
    qs = [question((span(i, i),), f"c{i}") for i in range(18)] + [question((), "u1"), question((), "u2")]
    picked = spread(qs, 5)
    assert [q.id for q in picked] == ["c0", "c4", "c9", "c13", "u1"]
    assert spread(qs, None) == qs and spread(qs, 50) == qs and [q.id for q in spread(qs, 1)] == ["c0"]
