"""Query-side measurements on one index: warm search latency, where a query's time goes,
retrieval quality per retriever, and offline-answer latency.

Every timed search goes through :meth:`Searcher.search` with the question's text, so each one
builds a fresh :class:`Query` and pays for its own query embedding, as a new question would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag.embed.models import Models
from rag.eval.metrics import K, ranking_quality
from rag.eval.qa import Question, Span
from rag.retrieve.query import Query, make_query
from rag.retrieve.searcher import Searcher
from rag.service import Notes
from rag.settings import Settings
from rag.store import LoadedIndex

from .harness import latency, peak_rss_mb, timed


def cycled(questions: Sequence[Question], n: int) -> list[str]:
    """``n`` question texts (at least every question once), cycling through the set."""
    return [questions[i % len(questions)].question for i in range(max(n, len(questions)))]


def stage_breakdown(searcher: Searcher, questions: Sequence[str]) -> tuple[dict, dict[str, np.ndarray]]:
    """Per-query cost of each stage of a hybrid search, each timed on its own; and the query vectors.

    Stages: ``tokenize``, ``bm25``, and per dense embedder ``embed <name>`` and
    ``dense <name> (<index kind>)``.
    """
    index, models = searcher.index, searcher.models or Models()
    n = max(searcher.settings.candidates, K * 5)
    times: dict[str, list[float]] = {}
    vectors: dict[str, list[np.ndarray]] = {}
    for text in questions:
        query, s = timed(lambda text=text: make_query(text))
        times.setdefault("tokenize", []).append(s)
        for name, retriever in searcher.retrievers.items():
            stage, ask = name, query
            if name in index.dense:
                vec, s = timed(lambda name=name, text=text: models.embedder(name).embed_query(text))
                times.setdefault(f"embed {name}", []).append(s)
                vectors.setdefault(name, []).append(vec)
                stage = f"dense {name} ({type(index.dense[name]).__name__})"
                ask = Query(query.text, query.lang, query.tokens, {name: vec})
            times.setdefault(stage, []).append(timed(lambda r=retriever, q=ask: r.rank(q, n))[1])
    return ({stage: latency(samples) for stage, samples in times.items()},
            {name: np.stack(v).astype(np.float32) for name, v in vectors.items()})


def source_quality(searcher: Searcher, questions: Sequence[Question]) -> dict:
    """hit@1, hit@5, MRR@10 of the hybrid search and of each retriever alone."""
    out = {}
    for name, sources in (("hybrid", None), *((s, (s,)) for s in searcher.sources)):
        rankings = [[Span.of(h.entry) for h in searcher.search(q.question, k=K, sources=sources).hits]
                    for q in questions]
        out[name] = ranking_quality(rankings, questions)
    return out


def answer_latency(searcher: Searcher, settings: Settings, questions: Sequence[str]) -> dict:
    """Offline (extractive) answers, retrieval included, after one untimed warm-up answer."""
    from rag.answer.answer import answer_question

    answer_question(questions[0], searcher, settings, use_llm=False)
    return latency([timed(lambda q=q: answer_question(q, searcher, settings, use_llm=False))[1]
                    for q in questions])


def measure_search(settings: Settings, questions: Sequence[Question], n_queries: int,
                   models: Models) -> tuple[dict, Searcher, dict[str, np.ndarray]]:
    """Load the index of ``settings``, warm up, time ``n_queries`` hybrid searches (questions
    cycled) and the stage breakdown; also the searcher and the questions' query vectors."""
    notes = Notes(settings, models)
    index, load_s = timed(notes.index)
    searcher = notes.searcher()
    _, warm_s = timed(searcher.warm_up)
    times = [timed(lambda q=q: searcher.search(q, k=K))[1] for q in cycled(questions, n_queries)]
    stages, vectors = stage_breakdown(searcher, [q.question for q in questions])
    return ({"chunks": len(index.chunks), "entries": len(index.entries), "load_seconds": round(load_s, 2),
             "warm_up_seconds": round(warm_s, 2), "search_ms": latency(times), "stages_ms": stages},
            searcher, vectors)


def search_worker(settings: Settings, questions: Sequence[Question], n_queries: int) -> dict:
    """The real notes' index in a fresh process: latency, stages, quality, offline answers, peak RSS."""
    result, searcher, _ = measure_search(settings, questions, n_queries, Models())
    result["quality"] = source_quality(searcher, questions)
    result["answer_ms"] = answer_latency(searcher, settings, [q.question for q in questions])
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def index_loaded(index: LoadedIndex) -> dict:
    """What a loaded index holds, for the report."""
    return {"entries": len(index.entries), "chunks": len(index.chunks),
            "dense": {name: type(d).__name__ for name, d in index.dense.items()}}
