"""`rag eval`: the canned questions through each retrieval configuration and the answer layer.

Every configuration runs on the same loaded index through :meth:`Searcher.search` with its
``sources``; each search builds its own :class:`Query`, so each configuration pays for its own
query embedding. Answers are scored for the default configuration through
:func:`rag.answer.answer.answer_question`, as `rag ask` gives them. The runner gathers rows and timings
and returns the metrics; :mod:`rag.eval.report` writes them out.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from rag.answer.llm.model import AnswerModel
from rag.embed.models import Models
from rag.retrieve.searcher import Hit, Searcher
from rag.service import Notes
from rag.settings import Settings
from rag.store import LoadedIndex

from .configs import CONFIGS, DEFAULT_CONFIG, resolve_configs
from .judge import judge_answers, llm_ask
from .metrics import (
    K,
    citation_precision,
    citation_recall,
    keyword_coverage,
    retrieval_scores,
    summarize_answers,
    summarize_by,
    summarize_retrieval,
    support_rate,
)
from .qa import EvalError, QASet, Question, Span, load_split, overlaps_any
from .report import summary_table, write_outputs
from .stats import percentiles

#: (stage, done, total), as the index builder reports progress.
Progress = Callable[[str, int, int], None]


def hit_json(hit: Hit, gold: Sequence[Span]) -> dict:
    """A hit as a results row keeps it: where it is, and whether it is relevant."""
    e = hit.entry
    return {"rank": hit.rank, "score": round(hit.score, 4), "entry_id": e.id, "file": e.file,
            "line_start": e.line_start, "line_end": e.line_end, "title": e.title,
            "relevant": overlaps_any(Span.of(e), gold)}


def _base_row(q: Question, config: str) -> dict:
    return {"id": q.id, "config": config, "question": q.question, "lang": q.lang, "type": q.type,
            "split": q.split, "gold": [g.to_json() for g in q.gold]}


def evaluate_retrieval(searcher: Searcher, questions: Sequence[Question], configs: dict[str, Sequence[str]],
                       tick: Callable[[], None] = lambda: None) -> dict[str, list[dict]]:
    """Per configuration, one row per question: the top-K entries, their relevance, scores, time.

    Configurations take turns on each question, so a busy spell of a shared machine slows them
    alike instead of skewing one configuration's latencies.
    """
    rows: dict[str, list[dict]] = {name: [] for name in configs}
    for q in questions:
        for name, sources in configs.items():
            start = time.perf_counter()
            hits = searcher.search(q.question, k=K, sources=sources).hits
            elapsed = (time.perf_counter() - start) * 1000
            row = _base_row(q, name)
            row.update(retrieval_scores([Span.of(h.entry) for h in hits], q.gold))
            row["hits"] = [hit_json(h, q.gold) for h in hits]
            row["search_ms"] = round(elapsed, 2)
            rows[name].append(row)
            tick()
    return rows


def evaluate_answers(searcher: Searcher, settings: Settings, questions: Sequence[Question], rows: Sequence[dict],
                     tick: Callable[[], None] = lambda: None, source_budget: int | None = None,
                     small_model: bool = False) -> None:
    """Answer each question as `rag ask` would and add the answer, its scores and timings to its row.

    ``settings`` are the ones to answer with (:meth:`AnswerModel.answer_settings`: a local model's
    endpoint already swapped in). ``ttft_ms`` is the time to the first streamed text, retrieval
    included; ``out_tokens`` counts the answer in cl100k tokens, for a rough generation rate.
    """
    from rag.answer.answer import answer_question
    from rag.text.tokens import count_tokens

    for q, row in zip(questions, rows, strict=True):
        first: list[float] = []
        start = time.perf_counter()  # a fresh question: retrieval and its query embedding included
        answer = answer_question(q.question, searcher, settings, k=settings.answer.k,
                                 use_llm=None if settings.llm.enabled else False, source_budget=source_budget,
                                 small_model=small_model,
                                 on_token=lambda _, seen=first: seen or seen.append(time.perf_counter()))
        end = time.perf_counter()
        row["answer_ms"] = round((end - start) * 1000, 2)
        row["ttft_ms"] = round(((first[0] if first else end) - start) * 1000, 2)
        row["out_tokens"] = count_tokens(answer.text)
        cited = [Span.of(c.hit.entry) for c in answer.citations]
        session = answer.session
        row["answer"] = {"text": answer.text, "mode": answer.mode, "refused": bool(answer.refused),
                         "uncited": answer.uncited, "format": answer.format, "unsupported": answer.unsupported,
                         "citations": [{"n": c.n, **hit_json(c.hit, q.gold)} for c in answer.citations],
                         "gate": session.gate.reason if session is not None and session.gate is not None else None,
                         "stage_ms": {k: round(v, 2) for k, v in session.timings.items()} if session else {}}
        row["answer_scores"] = {
            "citation_precision": citation_precision(cited, q.gold) if q.covered else None,
            "citation_recall": citation_recall(cited, q.gold),
            "keyword_coverage": keyword_coverage(answer.text, q.answer_keywords) if q.covered else None,
            "support_rate": support_rate(answer),
        }
        tick()


def spread(questions: Sequence[Question], limit: int | None) -> list[Question]:
    """``limit`` questions (or all): an even spread over the covered ones and one over the uncovered,
    in their share of the set but at least one, so a subset still measures refusals."""
    if limit is None or limit >= len(questions):
        return list(questions)
    uncovered = [q for q in questions if not q.covered]
    n_uncovered = min(len(uncovered), max(int(limit > 1), round(limit * len(uncovered) / len(questions))))
    keep = {q.id for q in _even([q for q in questions if q.covered], limit - n_uncovered)}
    keep |= {q.id for q in _even(uncovered, n_uncovered)}
    return [q for q in questions if q.id in keep]


def _even(items: Sequence[Question], n: int) -> list[Question]:
    return [items[i * len(items) // n] for i in range(n)] if n < len(items) else list(items)


def check_gold_files(qa: QASet, index: LoadedIndex, corpus: Path) -> None:
    """Gold spans must name notes of this index: a wrong --corpus or --index is one clear line."""
    files = {e.file for e in index.entries}
    unknown = sorted({g.file for q in qa.questions for g in q.gold} - files)
    if unknown:
        raise EvalError(f"{qa.path}: gold file {unknown[0]} is not in the index of {corpus} "
                        f"({len(unknown)} unknown file(s)): wrong --corpus or --index?")


def _judge_skipped(judge: bool, settings: Settings, answer_config: str | None) -> dict:
    if not judge:
        return {"skipped": "not requested (rag eval --judge)"}
    if not settings.llm.enabled:
        return {"skipped": "no LLM configured (set RAG_LLM_MODEL and OPENAI_BASE_URL)"}
    return {"skipped": f"needs the {answer_config or DEFAULT_CONFIG} configuration"}


def _config_metrics(sources: Sequence[str], rows: Sequence[dict]) -> dict:
    return {"sources": list(sources), **summarize_retrieval(rows), "by_lang": summarize_by(rows, "lang"),
            "by_type": summarize_by(rows, "type"), "search_ms": percentiles([r["search_ms"] for r in rows])}


def run_eval(settings: Settings, qa_path: Path, out_dir: Path, configs: Sequence[str] | None = None,
             judge: bool = False, split: str = "report", models: Models | None = None,
             progress: Progress | None = None, limit: int | None = None) -> dict:
    """Run the configurations on the ``split`` of the canned set; write results, metrics, report
    and plots to ``out_dir``, print the summary table; return the metrics (as in ``metrics.json``).

    ``limit`` keeps that many questions, evenly spread over the split (a slow model's subset).
    Progress goes to ``progress`` when given, else to a bar on stderr when it is a terminal. Bad
    input (unreadable or malformed set, unknown split or configuration, gold files not in the
    index) raises :class:`EvalError` before anything is written.
    """
    from tqdm import tqdm

    qa = load_split(qa_path, split)
    searcher = Notes(settings, models or Models()).searcher()  # the one place a searcher is assembled
    index = searcher.index
    check_gold_files(qa, index, settings.index.corpus)
    chosen, skipped = resolve_configs(configs, searcher.sources, tuple(index.dense))
    if not chosen:
        raise EvalError("no configuration can run on this index: "
                        + "; ".join(f"{n}: {why}" for n, why in skipped)
                        + f"; named configurations: {', '.join(CONFIGS)}")
    answer_config = DEFAULT_CONFIG if DEFAULT_CONFIG in chosen else None
    judging = judge and settings.llm.enabled and answer_config is not None
    searcher.warm_up()
    load_before = round(os.getloadavg()[0], 2)

    questions = spread(qa.questions, limit)
    total = len(questions) * (len(chosen) + (answer_config is not None) + judging)
    quiet = progress is not None or not sys.stderr.isatty()
    with tqdm(total=total, desc="eval", unit="q", file=sys.stderr, disable=quiet) as bar:

        def tick() -> None:
            bar.update()
            if progress:
                progress("eval", bar.n, total)

        rows_by_config = evaluate_retrieval(searcher, questions, chosen, tick)
        with AnswerModel(settings) as model:  # a local model is served for the answers, then stopped
            answering = model.answer_settings() if answer_config and settings.llm.enabled else settings
            if answer_config:
                evaluate_answers(searcher, answering, questions, rows_by_config[answer_config], tick,
                                 model.source_budget, model.local)
            judge_result = (judge_answers(llm_ask(answering.llm), str(settings.llm.model), index.entry_by_id,
                                          rows_by_config[DEFAULT_CONFIG], tick)
                            if judging else _judge_skipped(judge, settings, answer_config))
            answer_model = model.label or settings.llm.model or "extractive"

    metrics = {
        "qa": str(qa_path), "split": qa.label, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "questions": len(questions), "covered": sum(q.covered for q in questions),
        "counts": {"lang": dict(Counter(q.lang for q in questions)), "type": dict(Counter(q.type for q in questions))},
        "index": {"generation": index.generation, "sources": list(searcher.sources),
                  "entries": len(index.entries), "chunks": len(index.chunks)},
        "k": K, "answer_k": settings.answer.k,
        # latencies are only as good as the machine was quiet: its 1-minute load, before and after
        "load_average": {"start": load_before, "end": round(os.getloadavg()[0], 2)},
        "configs": {name: _config_metrics(chosen[name], rows) for name, rows in rows_by_config.items()},
        "skipped_configs": [{"name": n, "reason": why} for n, why in skipped],
        "limit": limit,
        "answers": ({"config": answer_config, "model": answer_model, **summarize_answers(rows_by_config[answer_config])}
                    if answer_config else {"skipped": f"answers are scored for the {DEFAULT_CONFIG} configuration"}),
        "judge": judge_result,
    }
    write_outputs(out_dir, metrics, rows_by_config, index.entries)
    print(summary_table(metrics))
    return metrics
