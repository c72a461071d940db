"""`rag eval`'s output: the stdout summary, report.md, plots, results.jsonl and metrics.json."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from rag.ingest.notes import Entry

from .configs import DEFAULT_CONFIG
from .metrics import K
from .qa import Span
from .tables import fmt, markdown_table

WORST_MISSES = 10
PLOTS = {"metrics": "metrics_by_config.png", "curves": "hit_at_k.png", "latency": "latency.png"}


def retrieval_table(metrics: dict) -> str:
    """The main table: one row per configuration (also printed by `rag eval` and quoted in the README)."""
    rows = [[name, fmt(m.get("hit@1")), fmt(m.get("hit@5")), fmt(m.get(f"hit@{K}")), fmt(m.get(f"mrr@{K}")),
             fmt(m.get(f"ndcg@{K}")), fmt(m["by_type"].get("cross-entry", {}).get(f"recall@{K}")),
             fmt(m["search_ms"]["p50"], 1), fmt(m["search_ms"]["p95"], 1)]
            for name, m in metrics["configs"].items()]
    return markdown_table(["config", "hit@1", "hit@5", f"hit@{K}", f"MRR@{K}", f"nDCG@{K}",
                           f"recall@{K} (cross)", "p50 ms", "p95 ms"], rows)


def answer_table(answers: dict) -> str:
    labels = [("citation_precision", "citation precision"), ("citation_recall", "citation recall"),
              ("keyword_coverage", "answer-keyword coverage"),
              ("refusal_accuracy", f"refusal accuracy ({answers['uncovered_refused']} of "
                                   f"{answers['n_uncovered']} uncovered refused)"),
              ("false_refusal_rate", f"false refusals ({answers['answerable_refused']} of "
                                     f"{answers['n_covered']} answerable refused)"),
              ("uncited_rate", "uncited answers"),
              ("support_rate", "claims their cited source backs (LLM answers)")]
    rows = [[label, fmt(answers.get(key))] for key, label in labels]
    for key, label in (("ttft_ms", "time to first token p50 / p95 ms"), ("latency_ms", "answer latency p50 / p95 ms")):
        if answers.get(key, {}).get("p50") is not None:
            rows.append([label, f"{fmt(answers[key]['p50'], 0)} / {fmt(answers[key]['p95'], 0)}"])
    if answers.get("tokens_per_s"):
        rows.append(["generation, cl100k tokens/s after the first", fmt(answers["tokens_per_s"], 1)])
    return markdown_table(["metric", "value"], rows)


def summary_table(metrics: dict) -> str:
    """What `rag eval` prints: the split, the main table, skips, answer and judge lines."""
    parts = [f"{metrics['questions']} questions ({metrics['covered']} covered; split {metrics['split']}), "
             f"index {metrics['index']['generation']}", retrieval_table(metrics)]
    parts += [f"skipped {s['name']}: {s['reason']}" for s in metrics["skipped_configs"]]
    a = metrics["answers"]
    if "skipped" not in a:
        parts.append(f"answers ({a['config']}, {a.get('model', 'extractive')}, "
                     f"{', '.join(f'{m} {n}' for m, n in a['modes'].items())}): "
                     f"citation P {fmt(a['citation_precision'])} R {fmt(a['citation_recall'])}, "
                     f"keywords {fmt(a['keyword_coverage'])}, uncovered refused {a['uncovered_refused']}"
                     f"/{a['n_uncovered']}, answerable refused {a['answerable_refused']}/{a['n_covered']}, "
                     f"uncited {fmt(a['uncited_rate'])}, supported {fmt(a.get('support_rate'))}")
    j = metrics["judge"]
    parts.append(f"judge: skipped, {j['skipped']}" if "skipped" in j else
                 f"judge ({j['model']}, n={j['n']}): faithfulness {fmt(j['faithfulness'])}, "
                 f"relevance {fmt(j['relevance'])}")
    return "\n".join(parts)


def group_table(metrics: dict, group: str, metric: str) -> str:
    """One metric per configuration (rows) and language or type (columns)."""
    keys: list[str] = []
    for m in metrics["configs"].values():
        keys += [k for k in m[group] if k not in keys]
    first = next(iter(metrics["configs"].values()))
    headers = ["config", *(f"{k} (n={first[group].get(k, {}).get('n', 0)})" for k in keys)]
    rows = [[name, *(fmt(m[group].get(k, {}).get(metric)) for k in keys)] for name, m in metrics["configs"].items()]
    return markdown_table(headers, rows)


def _label(span: Span, entries: Sequence[Entry]) -> str:
    titles = " / ".join(e.title for e in entries if span.overlaps(Span.of(e))) or "?"
    return f"{titles} ({span.file}:{span.line_start}-{span.line_end})"


def worst_misses(rows: Sequence[dict], entries: Sequence[Entry], n: int = WORST_MISSES) -> list[dict]:
    """Covered questions whose first gold entry ranks lowest (missing from the top K first)."""
    missed = [r for r in rows if r["gold"] and r["first_rank"] != 1]
    missed.sort(key=lambda r: (-(r["first_rank"] or K + 1), r["rr"], r["id"]))
    return [{"id": r["id"], "question": r["question"], "lang": r["lang"], "type": r["type"],
             "rank": r["first_rank"], "gold": [_label(Span(**g), entries) for g in r["gold"]],
             "instead": [f"{h['title']} ({h['entry_id']})" for h in r["hits"][:3]]}
            for r in missed[:n]]


def _axis_floor(values: Iterable[float | None]) -> float:
    """Where a 0–1 axis should start so that close scores stay tellable apart (a tenth below the lowest)."""
    low = min((v for v in values if v is not None), default=0.0)
    return max(0.0, math.floor(low * 10) / 10 - 0.1)


def write_plots(out_dir: Path, metrics: dict, rows_by_config: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    configs = metrics["configs"]
    names = list(configs)
    labels = ["hit@1", "hit@5", f"hit@{K}", f"mrr@{K}", f"ndcg@{K}"]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(names) + 2), 4))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        values = [configs[n].get(label) or 0 for n in names]
        ax.bar(np.arange(len(names)) + (i - (len(labels) - 1) / 2) * width, values, width, label=label)
    floor = _axis_floor(configs[n].get(label) for n in names for label in labels)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylim(floor, 1)
    ax.set_ylabel(f"score (axis from {floor:.1f})" if floor else "score")
    ax.set_title(f"Retrieval quality per configuration ({metrics['covered']} covered, split {metrics['split']})")
    ax.legend(ncol=len(labels), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS["metrics"], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for n in names:
        ax.plot(range(1, K + 1), configs[n].get("hit_curve", [0] * K), marker="o", label=n)
    floor = _axis_floor(v for n in names for v in configs[n].get("hit_curve", []))
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
    series |= {f"answer: {n}": [r["answer_ms"] for r in rows] for n, rows in rows_by_config.items()
               if rows and "answer_ms" in rows[0]}
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


def _misses_markdown(misses: Sequence[dict]) -> list[str]:
    if not misses:
        return ["None: every covered question has a gold entry at rank 1."]
    out = []
    for m in misses:
        rank = f"gold at rank {m['rank']}" if m["rank"] else f"gold not in the top {K}"
        out += [f"- **{m['id']}** ({m['lang']}, {m['type']}, {rank}): {m['question']}",
                f"  - gold: {'; '.join(m['gold'])}",
                f"  - retrieved instead: {'; '.join(m['instead']) or '(nothing)'}"]
    return out


def _gate_markdown(rows: Sequence[dict]) -> list[str]:
    """The questions the coverage gate got wrong, each with the signal that decided it."""
    wrong = [r for r in rows if "answer" in r and r["answer"]["refused"] == bool(r["gold"]) and r["answer"]["gate"]]
    if not wrong:
        return ["None: every uncovered question was refused and every answerable one answered."]
    return [f"- **{r['id']}** ({'answerable, refused' if r['gold'] else 'uncovered, answered'}): "
            f"{r['question']}\n  - gate: {r['answer']['gate']}" for r in wrong]


def report_markdown(metrics: dict, rows_by_config: dict[str, list[dict]], entries: Sequence[Entry]) -> str:
    counts, idx = metrics["counts"], metrics["index"]
    out = [
        "# Evaluation report", "",
        f"{metrics['questions']} questions from `{metrics['qa']}`, split **{metrics['split']}** "
        f"({metrics['covered']} covered by the notes); "
        f"by language: {', '.join(f'{k} {v}' for k, v in counts['lang'].items())}; "
        f"by type: {', '.join(f'{k} {v}' for k, v in counts['type'].items())}.",
        f"Index generation `{idx['generation']}` ({idx['entries']} entries, {idx['chunks']} chunks; "
        f"retrievers {', '.join(idx['sources'])}). Run {metrics['created']}; machine load "
        f"{metrics['load_average']['start']} at the start, {metrics['load_average']['end']} at the end "
        f"(on {os.cpu_count()} cores; latencies grow with it).", "",
        f"## Retrieval (entry level, top {K}, covered questions only)", "",
        retrieval_table(metrics), "",
        "Sources per configuration: "
        + "; ".join(f"{n} = {' + '.join(m['sources'])}" for n, m in metrics["configs"].items()) + ".",
    ]
    if metrics["skipped_configs"]:
        out += ["", "Skipped: " + "; ".join(f"{s['name']} ({s['reason']})" for s in metrics["skipped_configs"]) + "."]
    out += ["", f"### MRR@{K} by language", "", group_table(metrics, "by_lang", f"mrr@{K}"),
            "", "### hit@1 by language", "", group_table(metrics, "by_lang", "hit@1"),
            "", f"### MRR@{K} by question type", "", group_table(metrics, "by_type", f"mrr@{K}"),
            "", "### hit@5 by question type", "", group_table(metrics, "by_type", "hit@5"), ""]
    a = metrics["answers"]
    if "skipped" in a:
        out += ["## Answers", "", f"Skipped: {a['skipped']}.", ""]
    else:
        modes = ", ".join(f"{m}: {n}" for m, n in a["modes"].items())
        subset = f"; {metrics['questions']} questions, --limit {metrics['limit']}" if metrics.get("limit") else ""
        out += [f"## Answers ({a['config']}, {a.get('model', 'extractive')}, k={metrics['answer_k']}; modes {modes}"
                f"{subset})", "", answer_table(a), ""]
    j = metrics["judge"]
    out += ["## LLM judge", "", f"Skipped: {j['skipped']}." if "skipped" in j else
            markdown_table(["model", "judged", "failures", "faithfulness", "relevance"],
                           [[j["model"], j["n"], j["failures"], fmt(j["faithfulness"]), fmt(j["relevance"])]]), ""]
    focus = DEFAULT_CONFIG if DEFAULT_CONFIG in rows_by_config else next(iter(rows_by_config))
    out += [f"## Worst misses ({focus})", "", *_misses_markdown(worst_misses(rows_by_config[focus], entries))]
    if "skipped" not in a:
        out += ["", f"## Refusals the gate got wrong ({a['config']})", "", *_gate_markdown(rows_by_config[a["config"]])]
    out += ["", "## Plots", "", *(f"![{key}]({name})" for key, name in PLOTS.items())]
    return "\n".join(out) + "\n"


def write_outputs(out_dir: Path, metrics: dict, rows_by_config: dict[str, list[dict]],
                  entries: Sequence[Entry]) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "results.jsonl", "w", encoding="utf-8") as f:
        for rows in rows_by_config.values():
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(report_markdown(metrics, rows_by_config, entries), encoding="utf-8")
    write_plots(out_dir, metrics, rows_by_config)
