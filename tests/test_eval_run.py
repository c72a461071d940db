"""`rag eval`'s runner on real indexes: a tiny hash-embedder corpus end to end, bad input, and the
real canned set (fusion must beat each retriever alone)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.build.builder import build_index
from rag.embed.models import Models
from rag.eval.configs import DEFAULT_CONFIG
from rag.eval.metrics import summarize_retrieval
from rag.eval.qa import EvalError, load_split
from rag.eval.runner import evaluate_retrieval, run_eval
from rag.ingest.notes import split_entries
from rag.retrieve.searcher import Searcher
from rag.settings import Settings
from rag.store import open_store

pytestmark = pytest.mark.slow
QA = Path(__file__).resolve().parent.parent / "eval" / "qa.jsonl"

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


def gold(file: str, title: str) -> dict:
    entry = next(e for e in split_entries(NOTES[file], file) if title in e.text)
    return {"file": file, "line_start": entry.line_start, "line_end": entry.line_end}


@pytest.fixture
def tiny(make_corpus: Callable[..., Settings], models: Models) -> Settings:
    settings = make_corpus(NOTES)
    build_index(settings.index, open_store(settings), models)
    return settings


def write_qa(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_run_eval_end_to_end_on_the_report_split(tiny: Settings, models: Models, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        {"id": "t0", "question": "Brindle reward model unit tests", "split": "tune", "lang": "en",
         "type": "which-paper", "gold": [gold("papers.md", "Brindle")], "answer_keywords": ["Brindle"]},
        {"id": "t1", "question": "Zephyrine attention heads hour-long videos", "split": "report", "lang": "en",
         "type": "which-paper", "gold": [gold("papers.md", "Zephyrine")], "answer_keywords": ["Zephyrine"]},
        {"id": "t2", "question": "What did my notes say about Whisper?", "split": "report", "lang": "en",
         "type": "cross-entry", "gold": [gold("papers.md", "Marlowe"), gold("speech.md", "Whisper-Lens")],
         "answer_keywords": ["Marlowe", "Whisper-Lens"]},
        {"id": "t3", "question": "What is the boiling point of liquid nitrogen?", "split": "report", "lang": "en",
         "type": "uncovered", "gold": [], "answer_keywords": []},
    ]
    qa = write_qa(tmp_path / "tiny.jsonl", rows)
    out = tmp_path / "out"
    metrics = run_eval(tiny, qa, out, models=models)  # split defaults to report

    assert (metrics["questions"], metrics["covered"], metrics["split"]) == (3, 2, "report")
    assert list(metrics["configs"]) == ["bm25", "hash", DEFAULT_CONFIG]
    assert metrics["configs"]["hash"]["sources"] == ["hash"]
    assert {s["name"] for s in metrics["skipped_configs"]} >= {"dense-e5", "bm25+e5", "bm25+use"}
    for m in metrics["configs"].values():  # 7 entries, top 10: every gold is found, only ranks differ
        assert m["n"] == 2 and m["hit@10"] == 1.0 and m["by_type"]["cross-entry"]["recall@10"] == 1.0
    results = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(results) == 9 and "t0" not in {r["id"] for r in results}  # the tune question stays out
    by_key = {(r["config"], r["id"]): r for r in results}
    for name in ("bm25", DEFAULT_CONFIG):
        t1 = by_key[(name, "t1")]
        assert t1["first_rank"] == 1 and t1["hits"][0]["relevant"] and "Zephyrine" in t1["hits"][0]["title"]
    assert by_key[("bm25", "t3")]["rr"] is None
    answers = metrics["answers"]
    assert answers["config"] == DEFAULT_CONFIG and (answers["n_covered"], answers["n_uncovered"]) == (2, 1)
    assert by_key[(DEFAULT_CONFIG, "t1")]["answer_ms"] > 0 and "answer" not in by_key[("bm25", "t1")]
    printed = capsys.readouterr().out
    assert printed.startswith("3 questions (2 covered; split report)") and "| hybrid" in printed
    assert "judge: skipped, not requested" in printed
    report = (out / "report.md").read_text(encoding="utf-8")
    assert report.count("split **report**") == 1
    t3 = by_key[(DEFAULT_CONFIG, "t3")]["answer"]  # each answer says what the gate decided, and why
    assert t3["gate"] and {"retrieve", "gate"} <= set(t3["stage_ms"])
    wrong = [r for r in results if "answer" in r and r["answer"]["refused"] == bool(r["gold"])]
    section = report.split("## Refusals the gate got wrong")[1]
    assert all(f"**{r['id']}**" in section and r["answer"]["gate"] in section for r in wrong)
    assert bool(wrong) != section.strip().split("\n")[2].startswith("None")


def test_bad_input_is_one_error_and_writes_nothing(tiny: Settings, models: Models, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(EvalError, match=r"cannot read .*none\.jsonl: No such file or directory"):
        run_eval(tiny, tmp_path / "none.jsonl", out, models=models)
    foreign = write_qa(tmp_path / "qa.jsonl", [{"id": "x", "question": "q", "split": "report",
                                               "gold": [{"file": "elsewhere.md", "line_start": 1, "line_end": 2}]}])
    with pytest.raises(EvalError, match=r"gold file elsewhere\.md is not in the index"):
        run_eval(tiny, foreign, out, models=models)
    with pytest.raises(EvalError, match="no questions in the tune split"):
        run_eval(tiny, foreign, out, split="tune", models=models)
    with pytest.raises(EvalError, match="no configuration can run"):
        run_eval(tiny, write_qa(tmp_path / "ok.jsonl", [{"id": "y", "question": "q", "gold": []}]), out,
                 configs=["dense-e5"], models=models)
    assert not out.exists()


def test_hybrid_beats_single_retrievers(real_searcher: Searcher) -> None:
    """The spine's reason to exist: fusing BM25, the dense and the exact-match retrievers beats each
    alone by a clear margin on the whole canned set (0.95 against 0.86 for BM25 when written)."""
    questions = load_split(QA, "all").questions
    singles = {s: (s,) for s in real_searcher.sources}
    rows = evaluate_retrieval(real_searcher, questions, {"hybrid": real_searcher.sources, **singles})
    mrr = {name: summarize_retrieval(r)["mrr@10"] for name, r in rows.items()}
    for source in singles:
        assert mrr["hybrid"] >= mrr[source] + 0.05, mrr
