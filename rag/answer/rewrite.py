"""Follow-up questions made standalone for search ("its memory cost?" → "OmniMoE memory cost?").

Retrieval sees one question at a time, so a follow-up that leans on the conversation ("it",
"这个", "and the latency?") would search for nothing. With a model, the model rewrites it; without
one (or when it fails), a short question or one with a pronoun gets the previous question's key
terms and the names in the previous answer appended. Retrieval is hybrid, so extra terms help.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.answer.llm.client import LLMFailure, stream_chat
from rag.settings import LLMSettings
from rag.text import lexical

from . import prompts

#: A follow-up this short (in tokens) or with a pronoun is rewritten with the previous turn.
SHORT_FOLLOW_UP = 4
#: The model's rewrite is one line of a search query.
REWRITE_MAX_TOKENS = 100
_PRONOUNS = re.compile(r"\b(it|its|this|that|these|those|they|their|them|the paper|the method)\b"
                       r"|它|它们|这个|那个|该|此|这篇|那篇|这种|上述|前者|后者", re.I)
_NAMES = re.compile(r"(?<![\w.+-])[A-Za-z][\w.+-]*[A-Z0-9][\w.+-]*")  # tried at word starts only


def _turns(history: Sequence[dict] | None) -> list[dict]:
    return [m for m in history or [] if m.get("role") in ("user", "assistant") and m.get("content")]


def _history_text(history: Sequence[dict]) -> str:
    return "\n".join(f"{m['role']}: {str(m.get('content', ''))[:500]}" for m in history[-6:])


def _key_terms(text: str, limit: int) -> list[str]:
    """Distinctive terms of a text: named things (Latin words with capitals or digits) first."""
    tokens = list(dict.fromkeys(lexical.tokenize(text)))
    names = [w for w in dict.fromkeys(_NAMES.findall(text)) if w.lower() not in lexical.STOPWORDS]
    rest = [t for t in tokens if len(t) > 1 and t not in {n.lower() for n in names}]
    return (names + rest)[:limit]


def _by_model(question: str, history: Sequence[dict], llm: LLMSettings) -> str | None:
    messages = [{"role": "system", "content": prompts.REWRITE_SYSTEM},
                {"role": "user", "content": prompts.REWRITE_USER.format(
                    history=_history_text(history), question=question)}]
    try:
        rewritten = "".join(stream_chat(messages, llm, max_tokens=REWRITE_MAX_TOKENS)).strip().strip('"“”')
    except LLMFailure:
        return None
    return rewritten.splitlines()[0] if rewritten else None


def _by_heuristic(question: str, history: Sequence[dict]) -> str:
    if len(lexical.tokenize(question)) > SHORT_FOLLOW_UP and not _PRONOUNS.search(question):
        return question
    previous_q = next((str(m["content"]) for m in reversed(history) if m["role"] == "user"), "")
    previous_a = next((str(m["content"]) for m in reversed(history) if m["role"] == "assistant"), "")
    first_line = next((ln for ln in previous_a.splitlines()[1:] if ln.strip()), previous_a)
    terms = list(dict.fromkeys(_key_terms(first_line, 3) + _key_terms(previous_q, 8)))
    return f"{question} ({' '.join(terms)})" if terms else question


def rewrite_question(question: str, history: Sequence[dict] | None, llm: LLMSettings, use_llm: bool) -> str:
    """A standalone search query for ``question`` given the conversation so far (``role``/``content``).

    The model is asked only when ``use_llm`` (:meth:`~rag.answer.mode.AnswerMode.uses_model` said so).
    """
    turns = _turns(history)
    if not turns:
        return question
    if use_llm and (rewritten := _by_model(question, turns, llm)):
        return rewritten
    return _by_heuristic(question, turns)
