"""`rag bench`: speed and scale, measured side by side in one run (written to eval/results/bench.*).

Parts, each in fresh processes (:mod:`rag.bench.harness`): the real notes per embedder set
(:mod:`rag.bench.notes`), LangChain's default recipe on the same notes (:mod:`rag.bench.baseline`),
synthetic corpora at scale (:mod:`rag.bench.scale`), the answer model when one is configured
(:mod:`rag.bench.llm`), and the PostgreSQL store against the folder store when a server is given
or ``pg="local"`` (:mod:`rag.bench.stores`). The JSON and the Markdown report are
rewritten after every part, so an interrupted run still leaves what it measured.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from rag.build.builder import cores
from rag.embed.models import EmbedderError, resolve
from rag.eval.qa import load_split
from rag.ingest.corpus import read_corpus
from rag.settings import Settings

from .baseline import bench_baseline
from .harness import finish_report, log, machine, write_report
from .llm import bench_llm
from .notes import bench_notes
from .report import baseline_ratios, check_targets, render_markdown
from .scale import EMBED_SAMPLE, bench_scale, extrapolate
from .stores import bench_stores

DEFAULT_SCALES = (10_000, 100_000)
#: MiniLM (English only) is a second, optional baseline: ``baselines=("e5-small-q4", "minilm")``.
DEFAULT_BASELINES = ("e5-small-q4",)
QUERIES = 200
DEFAULT_QA = Path("eval/qa.jsonl")


def parse_sets(compare: Sequence[str | Sequence[str]] | None) -> list[tuple[str, ...]]:
    """Embedder sets as given: ``"e5-small-q4,use-m3"`` (the CLI's form) or a sequence of names."""
    return [tuple(p.strip() for p in c.split(",") if p.strip()) if isinstance(c, str) else tuple(c)
            for c in compare or ()]


def registry_names(names: Sequence[str]) -> tuple[str, ...]:
    """Names as the registry spells them (``e5`` → ``e5-onnx``); EmbedderError for an unknown one."""
    return tuple(resolve(name).name for name in names)


def embedder_sets(default: Sequence[str],
                  compare: Sequence[tuple[str, ...]]) -> tuple[list[tuple[str, ...]], list[dict]]:
    """The embedder sets to measure, by registry name (the configured one first, duplicates
    dropped), and the ones skipped because an embedder is unknown here, each with its reason."""
    chosen: list[tuple[str, ...]] = []
    skipped: list[dict] = []
    for given in [tuple(default), *compare]:
        try:
            names = registry_names(given)
        except EmbedderError as exc:
            log(f"embedders {','.join(given)}: skipped, {exc}")
            skipped.append({"embedders": list(given), "reason": str(exc)})
            continue
        if names not in chosen:
            chosen.append(names)
    return chosen, skipped


def run_bench(settings: Settings, out: Path = Path("eval/results/bench.json"), scales: Sequence[int] | None = None,
              *, compare: Sequence[str | Sequence[str]] | None = None, baselines: Sequence[str] = DEFAULT_BASELINES,
              n_queries: int = QUERIES, qa_path: Path = DEFAULT_QA, split: str = "report", pg: str | None = None,
              stores_only: bool = False) -> dict:
    """The whole benchmark; writes ``out`` (JSON) and the same path with ``.md`` after every part.

    ``compare``: embedder sets (``"e5-small-q4,use-m3"`` or a list of names) measured side by side
    with ``settings.index.embedders`` on the real notes; the first is the reference the others'
    build times are compared with; a set naming an unknown embedder is skipped with one line.
    ``scales``: synthetic corpus sizes (default 10k, 100k).
    ``pg``: also compare the PostgreSQL store with the folder store (at the largest scale) on this
    DSN (an empty scratch database), or on a throw-away local server (``"local"``); a DSN in
    ``settings.index.store`` counts as given (the other parts then use the folder store).
    ``stores_only``: only that comparison.
    """
    scales = sorted(DEFAULT_SCALES if scales is None else scales)
    if settings.index.store:
        pg, settings = pg or settings.index.store, settings.updated({"index.store": None})
    qa = load_split(qa_path, split)
    questions = qa.questions
    compare_sets = parse_sets(compare)
    sets, skipped = embedder_sets(settings.index.embedders, compare_sets)
    reference = None
    if compare_sets:
        with suppress(EmbedderError):
            reference = registry_names(compare_sets[0])
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), "qa": str(qa_path),
                    "split": qa.label, "questions": len(questions), "queries_timed": max(n_queries, len(questions)),
                    "reference": list(reference) if reference else None, "notes": [],
                    "embedder_sets_skipped": skipped, "baseline": [], "scale": [], "llm": None, "stores": None}
    started = time.perf_counter()

    def save() -> None:
        report["comparison"] = baseline_ratios(report)
        report["targets"] = check_targets(report)
        report["total_seconds"] = round(time.perf_counter() - started, 1)
        write_report(out, report, render_markdown(report))

    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        runs = []
        for names in [] if stores_only else sets:
            runs.append(bench_notes(settings, names, work, questions, n_queries))
            report["notes"].append(runs[-1].result)
            save()
        main = runs[0] if runs else None
        if main and settings.llm.enabled:  # the answer model, on the index just built (no request without a model)
            report["llm"] = bench_llm(main.settings, questions)
            save()
        for name in baselines if main else ():
            report["baseline"].append(bench_baseline(name, settings.index.corpus, settings.index.max_note_bytes,
                                                     main.new_note, work, questions))
            save()
        texts, _ = read_corpus(settings.index.corpus, settings.index.max_note_bytes)
        sample: dict | None = None
        for i, n in enumerate(scales if main else ()):
            result = bench_scale(main.settings, work, texts, n, questions, n_queries, EMBED_SAMPLE if i == 0 else 0)
            sample = sample or result["search"].get("embedding_sample")
            if sample:
                result["extrapolated"] = extrapolate(result["build"], sample, cores())
            report["scale"].append(result)
            save()
        if pg:
            report["stores"] = bench_stores(settings, work, questions, n_queries, scales[-1] if scales else None,
                                            None if pg == "local" else pg)
            save()
        finish_report(report, save, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report
