"""Retrieval and answer metrics as pure functions over line spans (each checkable by hand).

Everything is at *entry* level, the unit a user sees: a retrieved entry is relevant when it
overlaps a gold span not already credited to a higher rank (:meth:`Span.overlaps`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

from rag.answer.answer import Answer
from rag.answer.generate import answer_sentences

from .qa import Question, Span, overlaps_any
from .stats import mean, percentiles

K = 10  # depth of every retrieval metric
LANGS = ("zh", "en", "mixed")
TYPES = ("which-paper", "factoid", "explain", "cross-entry", "uncovered")


def relevance(retrieved: Sequence[Span], gold: Sequence[Span]) -> list[int]:
    """1 where a retrieved entry overlaps a gold span not already credited to a higher rank."""
    credited: set[int] = set()
    rels = []
    for span in retrieved:
        new = {i for i, g in enumerate(gold) if i not in credited and span.overlaps(g)}
        credited |= new
        rels.append(1 if new else 0)
    return rels


def first_relevant(rels: Sequence[int]) -> int | None:
    """1-based rank of the first relevant entry, or None."""
    return next((i for i, r in enumerate(rels, start=1) if r), None)


def hit_at(rels: Sequence[int], k: int) -> float:
    return 1.0 if any(rels[:k]) else 0.0


def reciprocal_rank(rels: Sequence[int], k: int = K) -> float:
    rank = first_relevant(rels[:k])
    return 1.0 / rank if rank else 0.0


def ndcg(rels: Sequence[int], n_gold: int, k: int = K) -> float:
    """Binary-relevance nDCG@k; the ideal ranking puts min(n_gold, k) relevant entries first."""
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(n_gold, k) + 1))
    if not ideal:
        return 0.0
    return sum(r / math.log2(i + 1) for i, r in enumerate(rels[:k], start=1)) / ideal


def recall(retrieved: Sequence[Span], gold: Sequence[Span], k: int = K) -> float:
    """Share of gold spans overlapped by some entry of the top ``k``."""
    if not gold:
        return 0.0
    return sum(1 for g in gold if overlaps_any(g, retrieved[:k])) / len(gold)


def retrieval_scores(retrieved: Sequence[Span], gold: Sequence[Span], k: int = K) -> dict:
    """Every per-question retrieval number the summaries need (None for an uncovered question)."""
    if not gold:
        return {"first_rank": None, "rr": None, "ndcg": None, "recall": None}
    rels = relevance(retrieved[:k], gold)
    return {"first_rank": first_relevant(rels), "rr": reciprocal_rank(rels, k),
            "ndcg": ndcg(rels, len(gold), k), "recall": recall(retrieved, gold, k)}


def citation_precision(cited: Sequence[Span], gold: Sequence[Span]) -> float | None:
    """Share of citations that point at a gold entry; None when nothing was cited."""
    if not cited:
        return None
    return sum(1 for c in cited if overlaps_any(c, gold)) / len(cited)


def citation_recall(cited: Sequence[Span], gold: Sequence[Span]) -> float | None:
    """Share of gold entries some citation points at; None for an uncovered question."""
    if not gold:
        return None
    return recall(cited, gold, k=len(cited))


def keyword_coverage(text: str, keywords: Sequence[str]) -> float | None:
    """Share of answer keywords found in the answer (case-insensitive substring)."""
    if not keywords:
        return None
    lowered = text.lower()
    return sum(1 for kw in keywords if kw.lower() in lowered) / len(keywords)


def support_rate(answer: Answer) -> float | None:
    """Share of an LLM answer's sentences that their cited sources back (rag.answer.support); None
    for a refusal or an extractive answer (quotes, not checked)."""
    if answer.mode != "llm" or answer.refused:
        return None
    said = answer_sentences(answer.text)
    return 1 - min(len(answer.unsupported), len(said)) / len(said) if said else None


def ranking_quality(rankings: Sequence[Sequence[Span]], questions: Sequence[Question]) -> dict:
    """Entry-level hit@1, hit@5 and MRR@10 over the covered questions (the bench's comparisons)."""
    rows = [relevance(list(r)[:K], q.gold) for r, q in zip(rankings, questions, strict=True) if q.covered]
    if not rows:
        return {"n": 0}
    return {"hit@1": round(mean(hit_at(r, 1) for r in rows), 4), "hit@5": round(mean(hit_at(r, 5) for r in rows), 4),
            f"mrr@{K}": round(mean(reciprocal_rank(r, K) for r in rows), 4), "n": len(rows)}


def summarize_retrieval(rows: Sequence[dict], k: int = K) -> dict:
    """Means over covered questions of rows holding ``first_rank``, ``rr``, ``ndcg``, ``recall``."""
    rows = [r for r in rows if r["gold"]]
    if not rows:
        return {"n": 0}
    ranks = [r["first_rank"] for r in rows]
    hit = [sum(1 for x in ranks if x is not None and x <= i) / len(rows) for i in range(1, k + 1)]
    return {"n": len(rows), "hit@1": hit[0], "hit@5": hit[min(5, k) - 1], f"hit@{k}": hit[-1],
            f"mrr@{k}": mean(r["rr"] for r in rows), f"ndcg@{k}": mean(r["ndcg"] for r in rows),
            f"recall@{k}": mean(r["recall"] for r in rows), "hit_curve": hit}


def summarize_by(rows: Sequence[dict], field: str, k: int = K) -> dict:
    """:func:`summarize_retrieval` per value of ``field`` (lang or type), known values first."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r[field]].append(r)
    order = {v: i for i, v in enumerate((*LANGS, *TYPES))}
    return {key: summarize_retrieval(groups[key], k)
            for key in sorted(groups, key=lambda g: (order.get(g, len(order)), g))
            if any(r["gold"] for r in groups[key])}


def summarize_answers(rows: Sequence[dict]) -> dict:
    """Answer-layer numbers over rows holding the answer and its per-question scores."""
    covered = [r for r in rows if r["gold"]]
    uncovered = [r for r in rows if not r["gold"]]
    answered = [r for r in rows if not r["answer"]["refused"]]
    return {
        "n": len(rows), "modes": dict(Counter(r["answer"]["mode"] for r in rows)),
        "citation_precision": mean(r["answer_scores"]["citation_precision"] for r in covered),
        "citation_recall": mean(r["answer_scores"]["citation_recall"] for r in covered),
        "keyword_coverage": mean(r["answer_scores"]["keyword_coverage"] for r in covered),
        "support_rate": mean(r["answer_scores"].get("support_rate") for r in rows),
        "refusal_accuracy": mean(float(r["answer"]["refused"]) for r in uncovered),
        "false_refusal_rate": mean(float(r["answer"]["refused"]) for r in covered),
        "uncovered_refused": sum(r["answer"]["refused"] for r in uncovered),
        "answerable_refused": sum(r["answer"]["refused"] for r in covered),
        "uncited_rate": mean(float(bool(r["answer"]["uncited"])) for r in answered),
        "n_covered": len(covered), "n_uncovered": len(uncovered),
        "latency_ms": percentiles([r["answer_ms"] for r in rows]),
        "ttft_ms": percentiles([r["ttft_ms"] for r in rows if "ttft_ms" in r]),
        "tokens_per_s": generation_rate(rows),
    }


def generation_rate(rows: Sequence[dict]) -> float | None:
    """cl100k tokens per second after the first token, over the model's own (streamed) answers."""
    streamed = [r for r in rows if r["answer"]["mode"] == "llm" and "ttft_ms" in r]
    seconds = sum(r["answer_ms"] - r["ttft_ms"] for r in streamed) / 1000
    return sum(r["out_tokens"] for r in streamed) / seconds if streamed and seconds > 0 else None
