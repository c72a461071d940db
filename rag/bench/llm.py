"""`rag bench`'s answer-model part: load time, time to first token and tokens/s of the configured model.

Only when a model is configured (no request otherwise). A few real questions are retrieved and
sent as `rag ask` sends them (same prompt, same transport, a local model's smaller source budget);
prompt and generation speeds are the server's own timings when it reports them (llama.cpp
does), else streamed chunks per second after the first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rag.answer.llm.client import LLMFailure, stream_chat
from rag.answer.llm.model import AnswerModel
from rag.answer.prompts import build_messages
from rag.eval.qa import Question
from rag.eval.stats import mean
from rag.service import Notes
from rag.settings import Settings

from .harness import log

QUESTIONS = 3
MAX_TOKENS = 128


def _one(notes: Notes, answering: Settings, budget: int, q: Question, max_tokens: int) -> dict:
    hits = notes.searcher().search(q.question, k=answering.answer.k).hits
    messages, provided = build_messages(q.question, hits, q.lang, budget, answering.answer.max_source_tokens)
    timings: dict = {}
    sent = time.perf_counter()
    first, chunks = None, 0
    for _ in stream_chat(messages, answering.llm, max_tokens, timings):
        first = first or time.perf_counter()
        chunks += 1
    end = time.perf_counter()
    first = first or end
    return {"id": q.id, "sources": provided, "ttft_s": round(first - sent, 2), "total_s": round(end - sent, 2),
            "prompt_tokens": timings.get("prompt_n"), "prompt_tok_s": timings.get("prompt_per_second"),
            "gen_tokens": timings.get("predicted_n", chunks),
            "gen_tok_s": timings.get("predicted_per_second") or (chunks - 1) / max(end - first, 1e-9)}


def bench_llm(settings: Settings, questions: Sequence[Question], n: int = QUESTIONS,
              max_tokens: int = MAX_TOKENS) -> dict:
    """Load the model (a local one), then answer ``n`` covered questions; per-question and mean numbers."""
    with Notes(settings) as notes:
        model: AnswerModel = notes.model
        started = time.perf_counter()
        answering = model.answer_settings()
        result: dict = {"model": model.label or settings.llm.model, "load_s": round(time.perf_counter() - started, 1),
                        "source_budget": model.source_budget, "max_tokens": max_tokens, "runs": []}
        for q in [q for q in questions if q.covered][:n]:
            try:
                result["runs"].append(_one(notes, answering, model.source_budget, q, max_tokens))
            except LLMFailure as exc:
                result["runs"].append({"id": q.id, "error": str(exc)})
            log(f"answer model: {result['runs'][-1]}")
    ok = [r for r in result["runs"] if "error" not in r]
    for key in ("ttft_s", "total_s", "prompt_tokens", "prompt_tok_s", "gen_tok_s"):
        value = mean(r.get(key) for r in ok)
        result[key] = None if value is None else round(value, 2)
    return result
