"""The evaluation suite: metrics against hand computations, the canned set, `rag eval` end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.config import Config, LLMSettings
from rag.corpus import decode_note
from rag.evaluation import (
    EvalError,
    Span,
    citation_precision,
    citation_recall,
    evaluate_retrieval,
    hit_at,
    judge_answers,
    keyword_coverage,
    load_qa,
    ndcg,
    parse_judgement,
    recall,
    reciprocal_rank,
    relevance,
    resolve_configs,
    retrieval_scores,
    summarize_retrieval,
)
from rag.notes import Entry, split_entries
from rag.retrieve import Retriever
from tests.conftest import CORPUS, QA, ROOT
from tests.fake_openai import FakeOpenAI, Reply

A = "a.md"


def span(start: int, end: int, file: str = A) -> Span:
    return Span(file, start, end)


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
    # one gold at rank 1 of three golds: the ideal has all three at the top
    assert ndcg([1], n_gold=3) == pytest.approx(1 / (1 + 1 / math.log2(3) + 1 / math.log2(4)))
    # more gold than k: the ideal DCG stops at k, so a perfect top 10 scores 1
    assert ndcg([1] * 10, n_gold=12) == pytest.approx(1.0)


def test_recall_on_multi_gold_and_the_cut_at_k() -> None:
    gold = [span(10, 20), span(30, 40), span(5, 9, "b.md")]
    retrieved = [span(12, 14), span(100, 120), span(35, 35), span(1, 50, "b.md")]
    assert recall(retrieved, gold) == 1.0
    assert recall(retrieved, gold, k=3) == pytest.approx(2 / 3)
    assert recall(retrieved, gold, k=1) == pytest.approx(1 / 3)
    scores = retrieval_scores(retrieved, gold)
    assert scores["first_rank"] == 1 and scores["rr"] == 1.0 and scores["recall"] == 1.0


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
    assert s["hit_curve"][:4] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3])


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


def test_configurations_follow_the_index() -> None:
    chosen, skipped = resolve_configs(None, ("bm25", "use-m3"))
    assert chosen == {"bm25": ("bm25",), "dense-use": ("use-m3",), "hybrid": ("bm25", "use-m3")}
    why = dict(skipped)
    assert "e5-small-q4" in why["dense-e5"] and "e5-small-q4" in why["bm25+e5"]
    assert why["bm25+use"] == "same retrievers as hybrid"
    chosen, _ = resolve_configs(None, ("bm25", "e5-small-q4", "use-m3", "BAAI/bge-m3"))
    assert list(chosen) == ["bm25", "dense-e5", "dense-use", "bm25+e5", "bm25+use", "BAAI/bge-m3", "hybrid"]
    chosen, skipped = resolve_configs(["bm25+e5", "e5+use"], ("bm25", "e5-small-q4", "use-m3"))
    assert chosen == {"bm25+e5": ("bm25", "e5-small-q4"), "e5+use": ("e5-small-q4", "use-m3")}
    assert not skipped
    with pytest.raises(EvalError):
        resolve_configs(["bm25+"], ("bm25",))


def test_bad_qa_lines_are_named(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "x", "question": "q", "gold": []}\n{"id": "y", "gold": []}\n', encoding="utf-8")
    with pytest.raises(EvalError, match=r"qa.jsonl:2: expected"):
        load_qa(qa)
    qa.write_text('{"id": "x", "question": "q", "gold": []}\n' * 2, encoding="utf-8")
    with pytest.raises(EvalError, match="duplicate id 'x'"):
        load_qa(qa)
    with pytest.raises(EvalError, match="cannot read"):
        load_qa(tmp_path / "missing.jsonl")


def test_parse_judgement_tolerates_prose_and_clips() -> None:
    assert parse_judgement('Sure.\n{"faithfulness": 0.5, "relevance": 1.4}\nDone') == \
        {"faithfulness": 0.5, "relevance": 1.0}
    assert parse_judgement("no json here") is None
    assert parse_judgement('{"faithfulness": "high"}') is None


def test_judge_prompts_in_the_questions_language() -> None:
    entry = Entry(file=A, title="Zephyrine", line_start=3, line_end=4, url=None, date=None,
                  text="Zephyrine keeps 5% of heads.")
    cited = {"n": 1, "title": "Zephyrine", "file": A, "line_start": 3, "line_end": 4}

    def row(question: str, refused: bool = False) -> dict:
        return {"question": question, "lang": "?", "gold": [cited],
                "answer": {"text": "Zephyrine [1]", "refused": refused, "citations": [cited]}}

    rows = [row("哪篇论文只保留 5% 的注意力头？"), row("Which paper keeps 5% of heads?"),
            row("refused one", refused=True), row("a reply without JSON")]
    replies = [Reply('Verdict: {"faithfulness": 0.75, "relevance": 1}'), Reply('{"faithfulness": 0.25, '
               '"relevance": 0.5}'), Reply("I cannot grade this.")]
    with FakeOpenAI(replies) as server:
        llm = LLMSettings(base_url=server.base_url, api_key="sk-test", model="judge-model", timeout=10)
        result = judge_answers(llm, {entry.id: entry}, rows)
    assert result == {"model": "judge-model", "n": 2, "failures": 1, "faithfulness": 0.5, "relevance": 0.75}
    assert len(server.requests) == 3  # the refusal is not judged
    zh, en = (r.content("user") for r in server.requests[:2])
    assert "笔记摘录" in zh and "哪篇论文" in zh and "Zephyrine keeps 5% of heads." in zh
    assert "Note excerpts" in en and "笔记" not in en
    assert rows[0]["judge"] == {"faithfulness": 0.75, "relevance": 1.0}
    assert "judge" not in rows[2] and rows[3]["judge"] is None


# ---------------------------------------------------------------------------- the canned set

def _qa_or_skip() -> list:
    if not QA.exists():
        pytest.skip("eval/qa.jsonl is not there yet")
    return load_qa(QA)


def test_gold_spans_are_entries_of_the_segmenter() -> None:
    questions = _qa_or_skip()
    spans: dict[str, set[tuple[int, int]]] = {}
    wrong = []
    for q in questions:
        for g in q.gold:
            if g.file not in spans:
                text = decode_note((CORPUS / g.file).read_bytes())
                spans[g.file] = {(e.line_start, e.line_end) for e in split_entries(text, g.file)}
            if (g.line_start, g.line_end) not in spans[g.file]:
                wrong.append(f"{q.id}: {g.file}:{g.line_start}-{g.line_end}")
    assert not wrong, f"{len(wrong)} gold spans are not entries: {wrong[:5]}"


def test_canned_set_shape() -> None:
    questions = _qa_or_skip()
    assert len(questions) >= 60
    assert {q.type for q in questions} <= {"which-paper", "factoid", "explain", "cross-entry", "uncovered"}
    assert {q.lang for q in questions} <= {"zh", "en", "mixed"}
    assert sum(not q.covered for q in questions) >= 5
    assert all(q.covered == (q.type != "uncovered") for q in questions)
    assert all(len(q.gold) >= 2 for q in questions if q.type == "cross-entry")


def test_hybrid_beats_single_retrievers(real_retriever: Retriever) -> None:
    """The spine's reason to exist: fusing BM25 and both dense retrievers beats each alone.

    By a clear margin on the first 110 questions; on the hard questions (eval/qa_hard_*.jsonl,
    issue 12) BM25 alone comes close, so over the whole set fusion must only not lose.
    """
    questions = _qa_or_skip()
    hard = {q.id for part in ("qa_hard_a.jsonl", "qa_hard_b.jsonl") for q in load_qa(QA.parent / part)}
    singles = {s: (s,) for s in real_retriever.sources}
    rows = evaluate_retrieval(real_retriever, questions, {"hybrid": real_retriever.sources, **singles})
    mrr_all = {name: summarize_retrieval(r)["mrr@10"] for name, r in rows.items()}
    mrr_first = {name: summarize_retrieval([x for x in r if x["id"] not in hard])["mrr@10"]
                 for name, r in rows.items()}
    for source in singles:
        assert mrr_first["hybrid"] >= mrr_first[source] + 0.02, mrr_first
        assert mrr_all["hybrid"] >= mrr_all[source], mrr_all


# ---------------------------------------------------------------------------- `rag eval` end to end

NOTES = {
    "papers.md": """# Reading list

## 📄 Zephyrine: sparse attention for long video
Zephyrine keeps only 5% of the attention heads when reading hour-long videos and cuts memory by 80%.

## 📄 Quokka-MoE: atomic experts
Quokka-MoE splits each expert into single-vector atomic experts and regroups tokens per expert.

## 📄 Marlowe: steering speech models
Marlowe trains sparse autoencoders on Whisper and steers features to reduce hallucinated transcripts.

## 📄 Tessellate: diffusion for floor plans
Tessellate generates floor plans with a graph diffusion model conditioned on room counts.

## 📄 Brindle: reward models for code
Brindle scores code patches with a reward model trained on unit-test outcomes.
""",
    "speech.md": """# Speech notes

Whisper-Lens probes every Whisper encoder layer with linear classifiers to find where phonemes live.
""",
}


def rag(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def test_rag_eval_end_to_end(make_corpus: Callable[..., Config], tmp_path: Path) -> None:
    config = make_corpus(NOTES)
    where = ["--corpus", str(config.corpus), "--index", str(config.index)]
    built = rag("index", *where, env={"RAG_EMBEDDERS": "use-m3"})
    assert built.returncode == 0, built.stderr

    def gold(file: str, title: str) -> dict:
        entry = next(e for e in split_entries(NOTES[file], file) if title in e.text)
        return {"file": file, "line_start": entry.line_start, "line_end": entry.line_end}

    qa = tmp_path / "tiny.jsonl"
    rows = [
        {"id": "t1", "question": "Zephyrine attention heads hour-long videos", "lang": "en", "type": "which-paper",
         "gold": [gold("papers.md", "Zephyrine")], "answer_keywords": ["Zephyrine"]},
        {"id": "t2", "question": "What did my notes say about looking inside Whisper?", "lang": "en",
         "type": "cross-entry", "gold": [gold("papers.md", "Marlowe"), gold("speech.md", "Whisper-Lens")],
         "answer_keywords": ["Marlowe", "Whisper-Lens"]},
        {"id": "t3", "question": "What is the boiling point of liquid nitrogen?", "lang": "en", "type": "uncovered",
         "gold": [], "answer_keywords": []},
    ]
    qa.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out_dir = tmp_path / "out"
    run = rag("eval", "--qa", str(qa), "--out", str(out_dir), *where)
    assert run.returncode == 0, run.stderr
    assert "| hybrid" in run.stdout and "judge: skipped" in run.stdout

    metrics = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert list(metrics["configs"]) == ["bm25", "dense-use", "hybrid"]
    assert {s["name"] for s in metrics["skipped_configs"]} >= {"dense-e5", "bm25+e5", "bm25+use"}
    assert (metrics["questions"], metrics["covered"]) == (3, 2)
    for m in metrics["configs"].values():
        # 7 entries in all, so the top 10 holds every gold: only the ranks differ between configs
        assert m["n"] == 2 and m["hit@10"] == 1.0 and m["by_type"]["cross-entry"]["recall@10"] == 1.0
    assert "uncovered" not in metrics["configs"]["hybrid"]["by_type"]

    results = [json.loads(line) for line in (out_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(results) == 9
    by_key = {(r["config"], r["id"]): r for r in results}
    for name in ("bm25", "hybrid"):  # the only entry naming Zephyrine comes first
        t1 = by_key[(name, "t1")]
        assert t1["first_rank"] == 1 and t1["rr"] == 1.0 and t1["hits"][0]["relevant"]
        assert "Zephyrine" in t1["hits"][0]["title"]
    assert by_key[("bm25", "t3")]["rr"] is None
    answers = metrics["answers"]
    assert answers["config"] == "hybrid" and (answers["n_covered"], answers["n_uncovered"]) == (2, 1)
    hybrid_t1 = by_key[("hybrid", "t1")]
    assert "answer" in hybrid_t1 and hybrid_t1["answer_ms"] > 0 and "answer" not in by_key[("bm25", "t1")]

    report = (out_dir / "report.md").read_text(encoding="utf-8")
    assert "## Retrieval" in report and "| hybrid" in report and "## Worst misses (hybrid)" in report
    assert "Skipped: not requested" in report
    for png in ("metrics_by_config.png", "hit_at_k.png", "latency.png"):
        assert (out_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rag_eval_bad_input_is_one_line(real_config: Config, tmp_path: Path) -> None:
    where = ["--corpus", str(CORPUS), "--index", str(real_config.index)]
    missing = rag("eval", "--qa", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "out"), *where)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [f"rag: cannot read {tmp_path / 'none.jsonl'}: "
                                                   "No such file or directory"]
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "x", "question": "q", "gold": [{"file": "elsewhere.md", "line_start": 1, '
                  '"line_end": 2}]}\n', encoding="utf-8")
    foreign = rag("eval", "--qa", str(qa), "--out", str(tmp_path / "out"), *where)
    assert foreign.returncode == 2 and "gold file elsewhere.md is not in the index" in foreign.stderr
    assert len(foreign.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
