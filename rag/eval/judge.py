"""LLM-as-judge: the configured chat model grades answers for faithfulness and relevance (RAGAS-style).

The judge sees the question, the cited entries' text and the answer, prompted in the question's
language (prompts in :mod:`rag.answer.prompts`), and replies with two scores in [0, 1]. The model call
is injected as a plain ``prompt → reply`` function, so the grading logic is testable without an
endpoint and the transport (client, error mapping) stays in the answer layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence

from rag.answer.prompts import JUDGE_PROMPTS
from rag.ingest.notes import Entry
from rag.settings import LLMSettings
from rag.text import language

from .stats import mean

JUDGE_MAX_TOKENS = 200
CONTEXT_CHARS = 1500  # of each cited entry
SCORES = ("faithfulness", "relevance")

#: A prompt → the model's reply, or None when the model could not answer.
Ask = Callable[[str], str | None]


def parse_judgement(reply: str) -> dict[str, float] | None:
    """The two scores from a judge's reply (tolerating prose around the JSON), clipped to [0, 1]."""
    m = re.search(r"\{.*\}", reply, re.S)
    try:
        data = json.loads(m.group(0)) if m else None
        return {key: min(1.0, max(0.0, float(data[key]))) for key in SCORES}  # type: ignore[index]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def judge_prompt(row: dict, entries: Mapping[str, Entry]) -> str:
    """The grading prompt for one answered row, in its question's language."""
    context = "\n\n".join(f"[{c['n']}] {c['title']}\n{entries[c['entry_id']].text[:CONTEXT_CHARS]}"
                          for c in row["answer"]["citations"])
    return JUDGE_PROMPTS[language(row["question"])].format(
        question=row["question"], context=context or "(none)", answer=row["answer"]["text"])


def judge_answers(ask: Ask, model: str, entries: Mapping[str, Entry], rows: Sequence[dict],
                  tick: Callable[[], None] = lambda: None) -> dict:
    """Grade every answered, covered row; each gets ``judge`` (the scores, or None when unusable)."""
    scores: list[dict[str, float]] = []
    failures = 0
    for row in rows:
        if not row["answer"]["refused"] and row["gold"]:
            reply = ask(judge_prompt(row, entries))
            verdict = parse_judgement(reply) if reply is not None else None
            row["judge"] = verdict
            if verdict is None:
                failures += 1
            else:
                scores.append(verdict)
        tick()
    return {"model": model, "n": len(scores), "failures": failures,
            **{key: mean(s[key] for s in scores) for key in SCORES}}


def llm_ask(llm: LLMSettings) -> Ask:
    """An :data:`Ask` over the configured endpoint, through the answer layer's chat transport."""
    from rag.answer.llm.client import LLMFailure, stream_chat

    def ask(prompt: str) -> str | None:
        try:
            return "".join(stream_chat([{"role": "user", "content": prompt}], llm, max_tokens=JUDGE_MAX_TOKENS))
        except LLMFailure:
            return None

    return ask
