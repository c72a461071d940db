"""`rag bench --vault N`: a vault of N notes and the bundled notes, side by side in one run, each
measured as a user meets it, with the default embedders and no proxy vectors.

Per corpus, on a copy in a work folder: `rag index` as a subprocess while another subprocess polls
`rag search --json` until it answers with hits (time to first search), the build's wall time, peak
RSS (``wait4``) and the time its progress lines appeared (pace per embedder); one note edited and
`rag index` again; `rag status --json`; then a fresh serving process that loads the index, warms up
and times searches over the canned questions (p50 / p95, peak RSS). The JSON and Markdown are
rewritten after every step, and a step that fails is recorded with its error and the run goes on,
so a long run that dies midway keeps what it measured.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rag.embed.models import Models
from rag.eval.qa import Question, load_split
from rag.ingest.corpus import find_notes, read_corpus
from rag.settings import IndexSettings, Settings
from rag.store import open_store

from .harness import (
    dir_size_mb,
    finish_report,
    in_worker,
    index_env,
    load_average,
    log,
    machine,
    peak_rss_mb,
    run_index,
    settle,
    write_report,
)
from .scale import embedding_sample
from .search import measure_search
from .vault import STYLES, generate_vault
from .vault_report import check_targets, render_markdown

#: How often the second process asks `rag search` during a build: every POLL_S for the first
#: POLL_FAST_S seconds, then every POLL_SLOW_S (each ask starts a process that shares the CPU with
#: the build, so a long build is polled less).
POLL_S, POLL_FAST_S, POLL_SLOW_S = 2.0, 120.0, 10.0
#: A progress line of `rag index` on a pipe: ``stage: done/total`` (then its pace).
_PROGRESS = re.compile(r"^(?P<stage>[\w() .-]+): (?P<done>\d+)/(?P<total>\d+)")
EDIT = ("\n\nBench edit: revisited this paper, the ablation on chunk size matters more than the model. "
        "重读：分块大小的消融比模型更重要。\n")
QUERIES = 200
#: Short steps timed only once the machine is quiet again (:func:`settle`): each corpus's one-note
#: update and serving, compared side by side.
SETTLED = ("update", "serve")
#: Chunks each embedder embeds alone to measure what the models allow on this CPU (an even sample).
MODEL_SAMPLE = 512


def _rag(*args: str) -> list[str]:
    return [sys.executable, "-m", "rag.app.cli", *args]


def _where(index: IndexSettings) -> list[str]:
    return ["--corpus", str(index.corpus), "--index", str(index.path)]


class _Build:
    """A `rag index` subprocess, its stderr read line by line with the second each line came, and
    its end (exit status and resource usage) collected by ``wait4`` on a thread."""

    def __init__(self, index: IndexSettings, env: dict[str, str]) -> None:
        self.start = time.perf_counter()
        self.proc = subprocess.Popen(_rag("index", *_where(index)), env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.stages: dict[str, dict] = {}
        self.tail: list[str] = []
        self.done = threading.Event()
        self.end: tuple[float, int, float] = (0.0, 0, 0.0)  # seconds, exit code, peak RSS MB
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        threading.Thread(target=self._wait, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stderr:  # type: ignore[union-attr]
            at = round(time.perf_counter() - self.start, 2)
            line = raw.decode("utf-8", "replace").rstrip()
            self.tail = [*self.tail[-20:], line]
            if m := _PROGRESS.match(line):
                stage = self.stages.setdefault(m["stage"], {"first_s": at})
                stage.update(last_s=at, done=int(m["done"]), total=int(m["total"]))

    def _wait(self) -> None:
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.end = (time.perf_counter() - self.start, os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024)
        self.done.set()

    def finish(self) -> tuple[float, float]:
        """(seconds, peak RSS MB) once it ends; RuntimeError with the end of its stderr if it failed."""
        self.done.wait()
        self._reader.join(timeout=10)
        seconds, code, rss = self.end
        if code:
            raise RuntimeError(f"rag index failed ({code}): {' | '.join(self.tail[-3:])}")
        return round(seconds, 2), round(rss, 1)


def _answers(index: IndexSettings, env: dict[str, str], question: str) -> bool:
    """Whether `rag search --json` answers ``question`` with hits now."""
    try:
        run = subprocess.run(_rag("search", "--json", "-k", "3", *_where(index), question), env=env,
                             capture_output=True, timeout=300)
        return run.returncode == 0 and bool(json.loads(run.stdout)["hits"])
    except (subprocess.TimeoutExpired, ValueError, KeyError):
        return False


def first_search(index: IndexSettings, question: str) -> dict:
    """A full build from nothing with a search polled beside it: when the first search answered
    (seconds since the build started), the build's seconds and peak RSS, and each stage's pace."""
    env = {**os.environ, **index_env(index)}
    build = _Build(index, env)
    answered, polls = None, 0
    try:
        while answered is None:
            finished = build.done.is_set()
            polls += 1
            if _answers(index, env, question):
                answered = round(time.perf_counter() - build.start, 2)
            elif finished:
                raise RuntimeError("the build ended and search still does not answer")
            else:
                build.done.wait(POLL_S if time.perf_counter() - build.start < POLL_FAST_S else POLL_SLOW_S)
    except BaseException:  # Ctrl-C or a failure: the build is not left running
        build.proc.kill()
        raise
    seconds, rss = build.finish()
    return {"first_search_s": answered, "polls": polls, "seconds": seconds, "peak_rss_mb": rss,
            "stages": build.stages, "summary": build.tail[-1] if build.tail else ""}


def embedder_pace(stages: dict[str, dict]) -> dict[str, dict]:
    """Per embedder: chunks embedded and chunks/s from when the notes were read to its last progress
    line (segmenting, tokenizing and model loading included; the embedders run side by side)."""
    read = stages.get("reading notes", {}).get("last_s", 0.0)
    out = {}
    for stage, s in stages.items():
        if m := re.fullmatch(r"embedding \((.+)\)", stage):
            span = s["last_s"] - read
            out[m[1]] = {"chunks": s["total"], "finished_s": s["last_s"],
                         "chunks_per_s": round(s["total"] / span, 1) if span > 0 else None}
    return out


def edit_one_note(corpus: Path) -> str:
    """Append a paragraph to the middle note (in path order); its name."""
    notes, _ = find_notes(corpus)
    note = notes[len(notes) // 2]
    with open(note.path, "a", encoding="utf-8") as f:
        f.write(EDIT)
    return note.rel


def serve_worker(settings: Settings, questions: Sequence[Question], n_queries: int) -> dict:
    """A serving process: the index loaded, warmed up, ``n_queries`` searches timed; its peak RSS."""
    result, _, _ = measure_search(settings, questions, n_queries, Models())
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def model_pace_worker(settings: Settings, sample: int) -> dict:
    """Each embedder alone on an even sample of the built index's chunks (the scale bench's
    :func:`embedding_sample`): one core's pace, since the default engines run one thread per call
    and a build runs one call per core. Run in turn on one core they embed ``1 / Σ 1/pace`` chunks
    a second; a build on C cores can at best reach C times that."""
    measured = embedding_sample(open_store(settings).load(), Models(), sample)
    pace = {name: m["chunks_per_s"] for name, m in measured.items()}
    ceiling = round(1 / sum(1 / p for p in pace.values()), 1) if pace else None
    return {"sample": min(sample, *(m["sample"] for m in measured.values())) if measured else 0,
            "chunks_per_s": pace, "all_in_turn_chunks_per_s": ceiling}


def _status(index: IndexSettings) -> dict:
    env = {**os.environ, **index_env(index)}
    start = time.perf_counter()
    run = subprocess.run(_rag("status", "--json", *_where(index)), env=env, capture_output=True, timeout=600)
    seconds = round(time.perf_counter() - start, 2)
    if run.returncode:
        raise RuntimeError(f"rag status failed: {run.stderr.decode('utf-8', 'replace').strip()[-300:]}")
    return {"seconds": seconds, "counts": json.loads(run.stdout)["counts"]}


def measure_corpus(settings: Settings, question: str, questions: Sequence[Question], n_queries: int,
                   out: dict, save: Callable[[], None]) -> None:
    """Every measurement of one corpus (already in place at ``settings.index.corpus``) into ``out``,
    saved after each step; a failed step is recorded as ``{"error": ...}`` and ends this corpus."""
    index = settings.index
    steps: list[tuple[str, Callable[[], dict]]] = [
        ("build", lambda: first_search(index, question)),
        ("update", lambda: _update(index)),
        ("status", lambda: _status(index)),
        ("serve", lambda: in_worker(serve_worker, settings, list(questions), n_queries)[0]),
        ("models", lambda: in_worker(model_pace_worker, settings, MODEL_SAMPLE)[0]),
    ]
    for name, step in steps:
        waited = settle() if name in SETTLED else 0.0
        log(f"{out['label']}: {name}")
        load = load_average()
        try:
            out[name] = {**step(), "load_before": load, **({"settled_s": waited} if name in SETTLED else {})}
        except Exception as exc:  # recorded in the report; the run goes on
            out[name] = {"error": f"{exc.__class__.__name__}: {exc}"}
            log(f"{out['label']}: {name} failed: {out[name]['error']}")
            save()
            return
        if name == "build":
            counts = open_store(settings).manifest().counts
            out["corpus"] = {"notes": counts.notes, "entries": counts.entries, "chunks": counts.chunks}
            out[name]["chunks_per_s"] = round(counts.chunks / out[name]["seconds"], 1)
            out[name]["embedders"] = embedder_pace(out[name]["stages"])
            out["index_size_mb"] = dir_size_mb(index.path)
        save()


def _update(index: IndexSettings) -> dict:
    name = edit_one_note(index.corpus)
    run = run_index(index)
    return {"note": name, "seconds": run.seconds, "peak_rss_mb": run.peak_rss_mb, "summary": run.last_line}


def _place(work: Path, label: str, settings: Settings, fill: Callable[[Path], None]) -> Settings:
    corpus = work / f"corpus-{label}"
    fill(corpus)
    return settings.updated({"index.corpus": corpus, "index.path": work / f"index-{label}"})


def run_vault_bench(settings: Settings, n: int | None, out: Path, vault_dir: Path | None = None,
                    qa_path: Path = Path("eval/qa.jsonl"), n_queries: int = QUERIES, seed: int = 0) -> dict:
    """The vault (``n`` generated notes, or a copy of ``vault_dir``) and the bundled notes of
    ``settings.index.corpus``; writes ``out`` (JSON) and the same path with ``.md`` after each step."""
    questions = load_split(qa_path, "report").questions
    texts, _ = read_corpus(settings.index.corpus, settings.index.max_note_bytes)
    if settings.index.store:
        settings = settings.updated({"index.store": None})
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
                    "embedders": list(settings.index.embedders), "qa": str(qa_path), "questions": len(questions),
                    "queries_timed": max(n_queries, len(questions)),
                    "poll_s": [POLL_S, POLL_FAST_S, POLL_SLOW_S], "seed": seed,
                    "vault": {"label": "vault", "source": str(vault_dir) if vault_dir else "generated"},
                    "notes": {"label": "bundled notes", "source": str(settings.index.corpus)}}
    started = time.perf_counter()

    def save() -> None:
        report["targets"] = check_targets(report)
        report["total_seconds"] = round(time.perf_counter() - started, 1)
        write_report(out, report, render_markdown(report))

    work = Path(tempfile.mkdtemp(prefix="rag-vault-bench-"))
    try:
        notes = _place(work, "notes", settings, lambda c: shutil.copytree(settings.index.corpus, c))
        measure_corpus(notes, questions[0].question, questions, n_queries, report["notes"], save)
        if vault_dir is not None:
            vault = _place(work, "vault", settings, lambda c: shutil.copytree(vault_dir, c))
        else:
            generated = generate_vault(texts, n or 0, seed)
            vault = _place(work, "vault", settings, generated.write)
            report["vault"]["styles"] = {s: sum(v.style == s for v in generated.notes) for s in STYLES}
        measure_corpus(vault, questions[0].question, questions, n_queries, report["vault"], save)
        finish_report(report, save, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report
