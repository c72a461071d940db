"""The real notes through `rag index` as a user runs it: full build, nothing to do, one note
added, that note deleted; and warm search in a fresh process. Run once per embedder set, so two
sets (today's default and a candidate) are measured side by side in one run.

The notes are copied to a work folder and indexed there; the user's corpus and index are never
touched.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.eval.qa import Question
from rag.ingest.corpus import read_corpus
from rag.ingest.markup import parse_heading, split_lines
from rag.ingest.notes import split_entries
from rag.settings import Settings
from rag.store import open_store

from .harness import Run, dir_size_mb, in_worker, log, run_index
from .search import search_worker


def make_new_note(texts: Mapping[str, str]) -> tuple[str, str]:
    """A realistic "add one note": the leading entries of the largest note, about the size of the
    median note, with every heading marked so its chunks are new text (vectors are reused by
    chunk content, so an unmarked copy would cost no embedding at all)."""
    sizes = sorted(len(t) for t in texts.values())
    median = sizes[len(sizes) // 2]
    seed_file = max(texts, key=lambda f: len(texts[f]))
    lines = split_lines(texts[seed_file])
    cut = len(lines)
    for e in split_entries(texts[seed_file], seed_file):
        if len("\n".join(lines[:e.line_start - 1])) >= median:
            cut = e.line_start - 1
            break
    marked = [line + " (bench copy)" if parse_heading(line) else line for line in lines[:cut]]
    return f"zz_bench_new_{Path(seed_file).stem}.md", "\n".join(marked) + "\n"


@dataclass(frozen=True)
class NotesRun:
    """The measurements (JSON for the report) and what later parts reuse: the index's settings
    (its vectors seed the scale part's proxies) and the note that was added."""

    result: dict
    settings: Settings
    new_note: tuple[str, str]


def _step(run: Run, **extra: object) -> dict:
    return {"seconds": run.seconds, "peak_rss_mb": run.peak_rss_mb, "load_before": run.load_before, **extra}


def bench_notes(settings: Settings, embedders: Sequence[str], work: Path, questions: Sequence[Question],
                n_queries: int) -> NotesRun:
    """Every notes measurement for one embedder set; the index stays in ``work`` (scale reuses it)."""
    tag = "+".join(embedders).replace("/", "_") or "bm25"
    corpus, index_dir = work / f"corpus-{tag}", work / f"index-{tag}"
    shutil.copytree(settings.index.corpus, corpus)
    local = settings.updated({"index.corpus": corpus, "index.path": index_dir, "index.embedders": tuple(embedders)})
    store = open_store(local)
    log(f"notes [{tag}]: full build (rag index)")
    full = run_index(local.index)
    counts = store.manifest().counts
    log(f"notes [{tag}]: full build {full.seconds:.1f}s; nothing-to-do run")
    noop = run_index(local.index)
    size_mb = dir_size_mb(index_dir)
    log(f"notes [{tag}]: warm search, stages, quality, offline answers (worker)")
    search, _ = in_worker(search_worker, local, list(questions), n_queries)
    texts, _ = read_corpus(corpus, local.index.max_note_bytes)
    name, text = make_new_note(texts)
    (corpus / name).write_text(text, encoding="utf-8")
    log(f"notes [{tag}]: add one note ({name}, {len(text)} chars)")
    add = run_index(local.index)
    new_chunks = store.manifest().notes[name].chunks
    (corpus / name).unlink()
    log(f"notes [{tag}]: delete that note")
    delete = run_index(local.index)
    return NotesRun({
        "embedders": list(embedders),
        "corpus": {"notes": counts.notes, "entries": counts.entries, "chunks": counts.chunks,
                   "chars": sum(len(t) for t in texts.values())},
        "full_build": _step(full, chunks_per_s=round(counts.chunks / full.seconds, 1), summary=full.last_line),
        "nothing_to_do": _step(noop, summary=noop.last_line),
        "add_one_note": _step(add, note=name, chars=len(text), new_chunks=new_chunks,
                              share_of_full_build=round(add.seconds / full.seconds, 3), summary=add.last_line),
        "delete_one_note": _step(delete, share_of_full_build=round(delete.seconds / full.seconds, 3),
                                 summary=delete.last_line),
        "index_size_mb": size_mb,
        "search": search,
    }, local, (name, text))
