"""The evaluation suite: canned questions → retrieval and answer metrics per configuration.

Metrics are pure functions over line spans, so each can be checked against a hand computation;
the runner only gathers spans and timings, then writes them out (JSONL, JSON, a Markdown report
and plots). Everything is measured at *entry* level, the unit a user sees: a retrieved entry
counts when it is in the same file as a gold entry and their spans overlap, each gold once.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .config import Config, LLMSettings
from .index import Index
from .notes import Entry
from .retrieve import BM25, Hit, Retriever, query_vector

K = 10  # depth of every retrieval metric
ANSWER_K = 6  # entries the answer layer reads, as in `rag ask`
WORST_MISSES = 10
DEFAULT_CONFIG = "hybrid"
LANGS = ("zh", "en", "mixed")
TYPES = ("which-paper", "factoid", "explain", "cross-entry", "uncovered")

#: Named configurations → the retrievers they fuse; ``None`` is every source of the index (what
#: `rag search` does). Any other ``--config`` is read as sources joined by ``+`` (aliases allowed).
CONFIGS: dict[str, tuple[str, ...] | None] = {
    "bm25": (BM25,),
    "dense-e5": ("e5-small-q4",),
    "dense-use": ("use-m3",),
    "minilm": ("minilm",),
    "bm25+e5": (BM25, "e5-small-q4"),
    "bm25+use": (BM25, "use-m3"),
    "bm25+minilm": (BM25, "minilm"),
    DEFAULT_CONFIG: None,
}
ALIASES = {"e5": "e5-small-q4", "use": "use-m3"}


class EvalError(Exception):
    """Bad evaluation input (a malformed Q&A file, an unknown configuration): one line for the user."""


# ---------------------------------------------------------------------------- the canned set

@dataclass(frozen=True)
class Span:
    """Lines ``line_start..line_end`` (1-based, inclusive) of one note."""

    file: str
    line_start: int
    line_end: int

    def overlaps(self, other: Span) -> bool:
        return (self.file == other.file and self.line_start <= other.line_end
                and other.line_start <= self.line_end)

    def to_json(self) -> dict:
        return {"file": self.file, "line_start": self.line_start, "line_end": self.line_end}


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    gold: tuple[Span, ...]  # empty: the notes do not cover it
    answer_keywords: tuple[str, ...]
    lang: str
    type: str

    @property
    def covered(self) -> bool:
        return bool(self.gold)


def load_qa(path: Path) -> list[Question]:
    """The canned set (format in docs/cli.md); a bad line is an :class:`EvalError` naming it."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    questions: list[Question] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            gold = tuple(Span(str(g["file"]), int(g["line_start"]), int(g["line_end"]))
                         for g in row.get("gold", []))
            q = Question(id=str(row.get("id", n)), question=str(row["question"]), gold=gold,
                         answer_keywords=tuple(str(k) for k in row.get("answer_keywords", [])),
                         lang=str(row.get("lang", "?")),
                         type=str(row.get("type") or ("cross-entry" if len(gold) > 1 else
                                                      "uncovered" if not gold else "?")))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise EvalError(f'{path}:{n}: expected a JSON object with "question" and "gold" '
                            '[{"file", "line_start", "line_end"}]') from None
        if q.id in seen:
            raise EvalError(f"{path}:{n}: duplicate id {q.id!r}")
        seen.add(q.id)
        questions.append(q)
    if not questions:
        raise EvalError(f"{path} has no questions")
    return questions


# ---------------------------------------------------------------------------- retrieval metrics

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
    found = sum(1 for g in gold if any(s.overlaps(g) for s in retrieved[:k]))
    return found / len(gold)


def retrieval_scores(retrieved: Sequence[Span], gold: Sequence[Span], k: int = K) -> dict:
    """Every per-question retrieval number the summaries need."""
    rels = relevance(retrieved[:k], gold)
    return {"first_rank": first_relevant(rels), "rr": reciprocal_rank(rels, k),
            "ndcg": ndcg(rels, len(gold), k), "recall": recall(retrieved, gold, k)}


# ---------------------------------------------------------------------------- answer metrics

def citation_precision(cited: Sequence[Span], gold: Sequence[Span]) -> float | None:
    """Share of citations that point at a gold entry; None when nothing was cited."""
    if not cited:
        return None
    return sum(1 for c in cited if any(c.overlaps(g) for g in gold)) / len(cited)


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


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values (None: not applicable), or None when there are none."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def percentiles(values_ms: Sequence[float]) -> dict:
    if not values_ms:
        return {"p50": None, "p95": None}
    return {"p50": float(np.percentile(values_ms, 50)), "p95": float(np.percentile(values_ms, 95))}


# ---------------------------------------------------------------------------- summaries

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
        "refusal_accuracy": mean(float(r["answer"]["refused"]) for r in uncovered),
        "false_refusal_rate": mean(float(r["answer"]["refused"]) for r in covered),
        "uncited_rate": mean(float(bool(r["answer"]["uncited"])) for r in answered),
        "n_covered": len(covered), "n_uncovered": len(uncovered),
        "latency_ms": percentiles([r["answer_ms"] for r in rows]),
    }


# ---------------------------------------------------------------------------- configurations

def parse_config(name: str) -> tuple[str, ...] | None:
    """A configuration name → its sources (None: all); ``bm25+e5`` style names are read as lists."""
    if name in CONFIGS:
        return CONFIGS[name]
    parts = tuple(ALIASES.get(p.strip(), p.strip()) for p in name.split("+"))
    if not all(parts):
        raise EvalError(f"unknown configuration {name!r}; use one of {', '.join(CONFIGS)} "
                        "or retrievers joined by '+' (bm25+e5-small-q4)")
    return parts


def resolve_configs(requested: Sequence[str] | None,
                    available: Sequence[str]) -> tuple[dict[str, tuple[str, ...]], list[tuple[str, str]]]:
    """(name → sources to run, [(name, why skipped)]) for the requested configurations or all.

    A configuration whose retrievers are not all in the index is skipped, and so is one fusing
    the same retrievers as another (on a BM25 + USE index, ``bm25+use`` is ``hybrid``).
    """
    names = list(dict.fromkeys(requested)) if requested else list(CONFIGS)
    if not requested:  # dense embedders of the index that no named configuration covers
        named = {s for sources in CONFIGS.values() if sources for s in sources}
        names[-1:-1] = [s for s in available if s not in named]
    everything = tuple(available)
    chosen: dict[str, tuple[str, ...]] = {}
    skipped: list[tuple[str, str]] = []
    resolved = {name: parse_config(name) or everything for name in names}
    for name, sources in sorted(resolved.items(), key=lambda kv: kv[0] != DEFAULT_CONFIG):
        missing = [s for s in sources if s not in available]
        twin = next((other for other, have in chosen.items() if set(have) == set(sources)), None)
        if missing:
            skipped.append((name, f"the index has no {', '.join(missing)} retriever "
                                  f"(it has {', '.join(available)})"))
        elif twin:
            skipped.append((name, f"same retrievers as {twin}"))
        else:
            chosen[name] = sources
    return {n: chosen[n] for n in names if n in chosen}, skipped


# ---------------------------------------------------------------------------- running

def entry_span(entry: Entry) -> Span:
    return Span(entry.file, entry.line_start, entry.line_end)


def hit_span(hit: Hit) -> Span:
    return entry_span(hit.entry)


def _hit_json(hit: Hit, gold: Sequence[Span]) -> dict:
    e = hit.entry
    return {"rank": hit.rank, "score": round(hit.score, 4), "file": e.file,
            "line_start": e.line_start, "line_end": e.line_end, "title": e.title,
            "relevant": any(hit_span(hit).overlaps(g) for g in gold)}


def _entry_id(span: dict) -> str:
    """The :attr:`Entry.id` of a span as stored in the rows."""
    return f"{span['file']}:{span['line_start']}-{span['line_end']}"


def _base_row(q: Question, config: str) -> dict:
    return {"id": q.id, "config": config, "question": q.question, "lang": q.lang, "type": q.type,
            "gold": [g.to_json() for g in q.gold]}


def evaluate_retrieval(retriever: Retriever, questions: Sequence[Question],
                       configs: dict[str, Sequence[str]],
                       tick: Callable[[], None] = lambda: None) -> dict[str, list[dict]]:
    """Per configuration, one row per question: the top-K entries, their relevance, scores, time.

    Configurations take turns on each question, so a busy spell of a shared machine slows them
    alike instead of skewing one configuration's latencies.
    """
    rows: dict[str, list[dict]] = {name: [] for name in configs}
    for q in questions:
        for name, sources in configs.items():
            query_vector.cache_clear()  # each configuration pays for its own query embedding
            start = time.perf_counter()
            hits = retriever.search(q.question, k=K, sources=sources)
            elapsed = (time.perf_counter() - start) * 1000
            row = _base_row(q, name)
            row.update(retrieval_scores([hit_span(h) for h in hits], q.gold) if q.covered else
                       {"first_rank": None, "rr": None, "ndcg": None, "recall": None})
            row["hits"] = [_hit_json(h, q.gold) for h in hits]
            row["search_ms"] = round(elapsed, 2)
            rows[name].append(row)
            tick()
    return rows


def evaluate_answers(retriever: Retriever, config: Config, questions: Sequence[Question],
                     rows: Sequence[dict], tick: Callable[[], None] = lambda: None) -> None:
    """Answer each question as `rag ask` would and add the answer and its scores to its row."""
    from .answer import answer_question

    for q, row in zip(questions, rows, strict=True):
        query_vector.cache_clear()  # timed as a fresh question: retrieval included
        start = time.perf_counter()
        answer = answer_question(q.question, retriever, config, k=ANSWER_K,
                                 use_llm=None if config.llm.enabled else False)
        row["answer_ms"] = round((time.perf_counter() - start) * 1000, 2)
        cited = [hit_span(c.hit) for c in answer.citations]
        row["answer"] = {"text": answer.text, "mode": answer.mode, "refused": bool(answer.refused),
                         "uncited": answer.uncited,
                         "citations": [{"n": c.n, **_hit_json(c.hit, q.gold)} for c in answer.citations]}
        row["answer_scores"] = {
            "citation_precision": citation_precision(cited, q.gold) if q.covered else None,
            "citation_recall": citation_recall(cited, q.gold),
            "keyword_coverage": keyword_coverage(answer.text, q.answer_keywords) if q.covered else None,
        }
        tick()


JUDGE_MAX_TOKENS = 200
JUDGE_PROMPTS = {
    "zh": ("你是严格的评审。根据给定的笔记摘录，评估回答。\n问题：{question}\n\n笔记摘录：\n{context}\n\n"
           "回答：\n{answer}\n\n请只输出一个 JSON 对象："
           '{{"faithfulness": 0到1之间的数（回答中的每个论断是否都有摘录支持）, '
           '"relevance": 0到1之间的数（回答是否切题地回答了问题）}}'),
    "en": ("You are a strict grader. Judge the answer against the note excerpts.\nQuestion: {question}\n\n"
           "Note excerpts:\n{context}\n\nAnswer:\n{answer}\n\nReply with one JSON object only: "
           '{{"faithfulness": a number from 0 to 1 (is every claim supported by the excerpts), '
           '"relevance": a number from 0 to 1 (does it answer the question)}}'),
}


def parse_judgement(reply: str) -> dict | None:
    """The two scores from a judge's reply (tolerating prose around the JSON), clipped to [0, 1]."""
    m = re.search(r"\{.*\}", reply, re.S)
    try:
        data = json.loads(m.group(0)) if m else None
        return {key: min(1.0, max(0.0, float(data[key]))) for key in ("faithfulness", "relevance")}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def judge_answers(llm: LLMSettings, entries: Mapping[str, Entry], rows: Sequence[dict],
                  tick: Callable[[], None] = lambda: None) -> dict:
    """RAGAS-style faithfulness and relevance by the configured chat model, in the question's language.

    Each answered, covered row gets ``judge`` (the two scores, or None when the reply was unusable).
    """
    from .answer import LLMFailure, question_language, stream_chat

    scores: list[dict] = []
    failures = 0
    for row in rows:
        answer = row["answer"]
        if answer["refused"] or not row["gold"]:
            tick()
            continue
        context = "\n\n".join(f"[{c['n']}] {c['title']}\n{entries[_entry_id(c)].text[:1500]}"
                                for c in answer["citations"])
        prompt = JUDGE_PROMPTS[question_language(row["question"])].format(
            question=row["question"], context=context or "(none)", answer=answer["text"])
        try:
            verdict = parse_judgement("".join(stream_chat([{"role": "user", "content": prompt}], llm,
                                                          max_tokens=JUDGE_MAX_TOKENS)))
        except LLMFailure:
            verdict = None
        row["judge"] = verdict
        if verdict is None:
            failures += 1
        else:
            scores.append(verdict)
        tick()
    return {"model": llm.model, "n": len(scores), "failures": failures,
            "faithfulness": mean(s["faithfulness"] for s in scores),
            "relevance": mean(s["relevance"] for s in scores)}


def run_eval(config: Config, qa_path: Path, out_dir: Path, configs: Sequence[str] | None = None,
             judge: bool = False) -> dict:
    """Run every configuration on the canned set; write results, metrics, report and plots to ``out_dir``.

    Returns the metrics (as written to ``metrics.json``).
    """
    from tqdm import tqdm

    questions = load_qa(qa_path)
    index = Index.load(config.index)
    retriever = Retriever(index, config)
    files = {e.file for e in index.entries}
    unknown = sorted({g.file for q in questions for g in q.gold} - files)
    if unknown:
        raise EvalError(f"{qa_path}: gold file {unknown[0]} is not in the index of {config.corpus} "
                        f"({len(unknown)} unknown file(s)): wrong --corpus or --index?")
    chosen, skipped = resolve_configs(configs, retriever.sources)
    if not chosen:
        raise EvalError("no configuration can run on this index: "
                        + "; ".join(f"{n}: {why}" for n, why in skipped)
                        + f"; named configurations: {', '.join(CONFIGS)}")
    answer_config = DEFAULT_CONFIG if DEFAULT_CONFIG in chosen else None
    judging = judge and config.llm.enabled and answer_config is not None
    retriever.warm_up()
    load_before = round(os.getloadavg()[0], 2)

    steps = len(questions) * (len(chosen) + (answer_config is not None) + judging)
    with tqdm(total=steps, desc="eval", unit="q", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        rows_by_config = evaluate_retrieval(retriever, questions, chosen, bar.update)
        if answer_config:
            evaluate_answers(retriever, config, questions, rows_by_config[answer_config], bar.update)
        judged = (judge_answers(config.llm, index.entry_by_id, rows_by_config[answer_config], bar.update)
                  if judging else None)

    if judged is not None:
        judge_result = judged
    elif not judge:
        judge_result = {"skipped": "not requested (rag eval --judge)"}
    elif not config.llm.enabled:
        judge_result = {"skipped": "no LLM configured (set RAG_LLM_MODEL and OPENAI_BASE_URL)"}
    else:
        judge_result = {"skipped": f"needs the {DEFAULT_CONFIG} configuration"}

    metrics = {
        "qa": str(qa_path), "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "questions": len(questions), "covered": sum(q.covered for q in questions),
        "counts": {"lang": dict(Counter(q.lang for q in questions)), "type": dict(Counter(q.type for q in questions))},
        "index": {"generation": index.generation, "sources": list(retriever.sources),
                  "entries": len(index.entries), "chunks": len(index.chunks)},
        "k": K,
        # latencies are only as good as the machine was quiet: its 1-minute load, before and after
        "load_average": {"start": load_before, "end": round(os.getloadavg()[0], 2)},
        "configs": {name: {"sources": list(chosen[name]), **summarize_retrieval(rows),
                           "by_lang": summarize_by(rows, "lang"), "by_type": summarize_by(rows, "type"),
                           "search_ms": percentiles([r["search_ms"] for r in rows])}
                    for name, rows in rows_by_config.items()},
        "skipped_configs": [{"name": n, "reason": why} for n, why in skipped],
        "answers": ({"config": answer_config, **summarize_answers(rows_by_config[answer_config])}
                    if answer_config else {"skipped": f"answers are scored for the {DEFAULT_CONFIG} configuration"}),
        "judge": judge_result,
    }
    write_outputs(out_dir, metrics, rows_by_config, index)
    print(summary_table(metrics))
    return metrics


# ---------------------------------------------------------------------------- output

def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def retrieval_table(metrics: dict) -> str:
    """The main table: one row per configuration (also printed by `rag eval` and quoted in the README)."""
    cross = "cross-entry"
    rows = []
    for name, m in metrics["configs"].items():
        rows.append([name, _fmt(m.get("hit@1")), _fmt(m.get("hit@5")), _fmt(m.get(f"hit@{K}")),
                     _fmt(m.get(f"mrr@{K}")), _fmt(m.get(f"ndcg@{K}")),
                     _fmt(m["by_type"].get(cross, {}).get(f"recall@{K}")),
                     _fmt(m["search_ms"]["p50"], 1), _fmt(m["search_ms"]["p95"], 1)])
    return markdown_table(["config", "hit@1", "hit@5", f"hit@{K}", f"MRR@{K}", f"nDCG@{K}",
                           f"recall@{K} (cross)", "p50 ms", "p95 ms"], rows)


def answer_table(answers: dict) -> str:
    labels = [("citation_precision", "citation precision"), ("citation_recall", "citation recall"),
              ("keyword_coverage", "answer-keyword coverage"),
              ("refusal_accuracy", f"refusal accuracy ({answers['n_uncovered']} uncovered)"),
              ("false_refusal_rate", f"false refusals ({answers['n_covered']} answerable)"),
              ("uncited_rate", "uncited answers")]
    rows = [[label, _fmt(answers[key])] for key, label in labels]
    rows += [["answer latency p50 / p95 ms",
              f"{_fmt(answers['latency_ms']['p50'], 0)} / {_fmt(answers['latency_ms']['p95'], 0)}"]]
    return markdown_table(["metric", "value"], rows)


def summary_table(metrics: dict) -> str:
    """The compact stdout summary."""
    parts = [f"{metrics['questions']} questions ({metrics['covered']} covered), index "
             f"{metrics['index']['generation']}", retrieval_table(metrics)]
    parts += [f"skipped {s['name']}: {s['reason']}" for s in metrics["skipped_configs"]]
    a = metrics["answers"]
    if "skipped" not in a:
        parts.append(f"answers ({a['config']}, {', '.join(f'{m} {n}' for m, n in a['modes'].items())}): "
                     f"citation P {_fmt(a['citation_precision'])} R {_fmt(a['citation_recall'])}, "
                     f"keywords {_fmt(a['keyword_coverage'])}, refusal acc {_fmt(a['refusal_accuracy'])}, "
                     f"false refusals {_fmt(a['false_refusal_rate'])}, uncited {_fmt(a['uncited_rate'])}")
    j = metrics["judge"]
    parts.append(f"judge: skipped, {j['skipped']}" if "skipped" in j else
                 f"judge ({j['model']}, n={j['n']}): faithfulness {_fmt(j['faithfulness'])}, "
                 f"relevance {_fmt(j['relevance'])}")
    return "\n".join(parts)


def _group_table(metrics: dict, group: str, metric: str) -> str:
    keys: list[str] = []
    for m in metrics["configs"].values():
        keys += [k for k in m[group] if k not in keys]
    first = next(iter(metrics["configs"].values()))
    headers = ["config", *(f"{k} (n={first[group].get(k, {}).get('n', 0)})" for k in keys)]
    rows = [[name, *(_fmt(m[group].get(k, {}).get(metric)) for k in keys)]
            for name, m in metrics["configs"].items()]
    return markdown_table(headers, rows)


def _titles_at(index: Index, span: Span) -> str:
    return " / ".join(e.title for e in index.entries if span.overlaps(entry_span(e))) or "?"


def worst_misses(rows: Sequence[dict], index: Index, n: int = WORST_MISSES) -> list[dict]:
    """Covered questions whose first gold entry ranks lowest (missing from the top K first)."""
    missed = [r for r in rows if r["gold"] and r["first_rank"] != 1]
    missed.sort(key=lambda r: (-(r["first_rank"] or K + 1), r["rr"], r["id"]))
    out = []
    for r in missed[:n]:
        gold = [f"{_titles_at(index, Span(**g))} ({_entry_id(g)})" for g in r["gold"]]
        out.append({"id": r["id"], "question": r["question"], "lang": r["lang"], "type": r["type"],
                    "rank": r["first_rank"], "gold": gold,
                    "instead": [f"{h['title']} ({_entry_id(h)})" for h in r["hits"][:3]]})
    return out


PLOTS = {"metrics": "metrics_by_config.png", "curves": "hit_at_k.png", "latency": "latency.png"}


def _axis_floor(values: Iterable[float | None]) -> float:
    """Where a 0–1 axis should start so that close scores stay tellable apart (a tenth below the lowest)."""
    low = min((v for v in values if v is not None), default=0.0)
    return max(0.0, math.floor(low * 10) / 10 - 0.1)


def write_plots(out_dir: Path, metrics: dict, rows_by_config: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(metrics["configs"])
    labels = ["hit@1", "hit@5", f"hit@{K}", f"mrr@{K}", f"ndcg@{K}"]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(names) + 2), 4))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        values = [metrics["configs"][n].get(label) or 0 for n in names]
        ax.bar(np.arange(len(names)) + (i - (len(labels) - 1) / 2) * width, values, width, label=label)
    floor = _axis_floor(metrics["configs"][n].get(label) for n in names for label in labels)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylim(floor, 1)
    ax.set_ylabel(f"score (axis from {floor:.1f})" if floor else "score")
    ax.set_title(f"Retrieval quality per configuration ({metrics['covered']} covered questions)")
    ax.legend(ncol=len(labels), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS["metrics"], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for n in names:
        ax.plot(range(1, K + 1), metrics["configs"][n].get("hit_curve", [0] * K), marker="o", label=n)
    floor = _axis_floor(v for n in names for v in metrics["configs"][n].get("hit_curve", []))
    ax.set_xlabel("k")
    ax.set_ylabel(f"hit@k (axis from {floor:.1f})" if floor else "hit@k")
    ax.set_ylim(floor, 1.01)
    ax.set_xticks(range(1, K + 1))
    ax.grid(alpha=0.3)
    ax.set_title("hit@k: a gold entry among the top k")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS["curves"], dpi=120)
    plt.close(fig)

    series = {f"search: {n}": [r["search_ms"] for r in rows] for n, rows in rows_by_config.items()}
    for n, rows in rows_by_config.items():
        if rows and "answer_ms" in rows[0]:
            series[f"answer: {n}"] = [r["answer_ms"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(series) + 2), 4))
    ax.boxplot(list(series.values()), showfliers=True)
    ax.set_xticks(range(1, len(series) + 1), list(series), rotation=25, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("milliseconds (log)")
    ax.set_title("Latency per question")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS["latency"], dpi=120)
    plt.close(fig)


def report_markdown(metrics: dict, rows_by_config: dict[str, list[dict]], index: Index) -> str:
    counts = metrics["counts"]
    out = [
        "# Evaluation report", "",
        f"{metrics['questions']} questions from `{metrics['qa']}` ({metrics['covered']} covered by the notes); "
        f"by language: {', '.join(f'{k} {v}' for k, v in counts['lang'].items())}; "
        f"by type: {', '.join(f'{k} {v}' for k, v in counts['type'].items())}.",
        f"Index generation `{metrics['index']['generation']}` ({metrics['index']['entries']} entries, "
        f"{metrics['index']['chunks']} chunks; retrievers {', '.join(metrics['index']['sources'])}). "
        f"Run {metrics['created']}; machine load {metrics['load_average']['start']} at the start, "
        f"{metrics['load_average']['end']} at the end (on {os.cpu_count()} cores; latencies grow with it).", "",
        f"## Retrieval (entry level, top {K}, covered questions only)", "",
        retrieval_table(metrics), "",
        "Sources per configuration: "
        + "; ".join(f"{n} = {' + '.join(m['sources'])}" for n, m in metrics["configs"].items()) + ".",
    ]
    if metrics["skipped_configs"]:
        out += ["", "Skipped: " + "; ".join(f"{s['name']} ({s['reason']})" for s in metrics["skipped_configs"])
                + "."]
    out += ["", f"### MRR@{K} by language", "", _group_table(metrics, "by_lang", f"mrr@{K}"),
            "", f"### MRR@{K} by question type", "", _group_table(metrics, "by_type", f"mrr@{K}"),
            "", "### hit@5 by question type", "", _group_table(metrics, "by_type", "hit@5"), ""]
    a = metrics["answers"]
    if "skipped" in a:
        out += ["## Answers", "", f"Skipped: {a['skipped']}.", ""]
    else:
        modes = ", ".join(f"{m}: {n}" for m, n in a["modes"].items())
        out += [f"## Answers ({a['config']}, k={ANSWER_K}; modes {modes})", "", answer_table(a), ""]
    j = metrics["judge"]
    out += ["## LLM judge", "", f"Skipped: {j['skipped']}." if "skipped" in j else
            markdown_table(["model", "judged", "failures", "faithfulness", "relevance"],
                           [[j["model"], str(j["n"]), str(j["failures"]), _fmt(j["faithfulness"]),
                             _fmt(j["relevance"])]]), ""]
    focus = DEFAULT_CONFIG if DEFAULT_CONFIG in rows_by_config else next(iter(rows_by_config))
    misses = worst_misses(rows_by_config[focus], index)
    out += [f"## Worst misses ({focus})", ""]
    if not misses:
        out.append("None: every covered question has a gold entry at rank 1.")
    for m in misses:
        rank = f"gold at rank {m['rank']}" if m["rank"] else f"gold not in the top {K}"
        out += [f"- **{m['id']}** ({m['lang']}, {m['type']}, {rank}): {m['question']}",
                f"  - gold: {'; '.join(m['gold'])}",
                f"  - retrieved instead: {'; '.join(m['instead']) or '(nothing)'}"]
    out += ["", "## Plots", ""] + [f"![{key}]({name})" for key, name in PLOTS.items()]
    return "\n".join(out) + "\n"


def write_outputs(out_dir: Path, metrics: dict, rows_by_config: dict[str, list[dict]], index: Index) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "results.jsonl", "w", encoding="utf-8") as f:
        for rows in rows_by_config.values():
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n",
                                          encoding="utf-8")
    (out_dir / "report.md").write_text(report_markdown(metrics, rows_by_config, index), encoding="utf-8")
    write_plots(out_dir, metrics, rows_by_config)
