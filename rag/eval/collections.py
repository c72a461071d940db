"""`rag eval --collection DIR`: the canned set of another collection of notes beside the main one.

A collection is a folder with ``notes/`` (anyone's notes, in any style) and ``qa.jsonl`` (their
canned questions). Its index is ``DIR/.index``, with the same settings (`rag eval` brings every
set's index up to date before measuring it), so the same code is measured on notes it was not
written for; each collection is reported on its own and all of them pooled, question-weighted, so
a gain on one cannot hide a loss on another.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from rag.settings import Settings

from .qa import EvalError, Question, load_qa, load_split
from .tables import fmt, markdown_table

#: Retrieval metrics pooled over the covered questions, answer counts summed.
POOLED = ("hit@1", "hit@5", "mrr@10", "ndcg@10")
COUNTS = ("uncovered_refused", "n_uncovered", "answerable_refused", "n_covered")
RATES = ("keyword_coverage", "citation_precision", "citation_recall")

RunEval = Callable[[Settings, Path, Path], dict]
#: The bundled notes' canned set, and the canned collections beside it in the order they were
#: written (eval/README.md): what the calibration grids in scripts/ read.
MAIN_QA = Path("eval/qa.jsonl")
CANNED = tuple(Path(f"eval/{name}") for name in ("other", "third", "fourth", "fifth", "sixth", "seventh"))


def collection_settings(settings: Settings, folder: Path) -> Settings:
    """The settings with the corpus and index of a collection (always the folder store)."""
    notes = folder / "notes"
    if not (notes.is_dir() and (folder / "qa.jsonl").is_file()):
        raise EvalError(f"{folder} is not a collection: it needs notes/ and qa.jsonl")
    index = settings.index.model_copy(update={"corpus": notes, "path": folder / ".index", "store": None})
    return settings.model_copy(update={"index": index})


def canned_sets(settings: Settings, split: str) -> list[tuple[str, Settings, list[Question]]]:
    """(label, settings, questions of ``split``) for the bundled notes and each canned collection
    that has questions there (fourth is all ``report``): one list for every calibration grid."""
    sets = [("bundled", settings, load_split(MAIN_QA, split).questions)]
    for folder in CANNED:
        questions = [q for q in load_qa(folder / "qa.jsonl") if split == "all" or q.split in (None, split)]
        if questions:
            sets.append((folder.name, collection_settings(settings, folder), questions))
    return sets


def run_collections(settings: Settings, qa_path: Path, out_dir: Path, folders: Sequence[Path], run: RunEval,
                    split: str) -> dict:
    """The main set, then each collection (its index in DIR/.index), then all pooled. A collection
    with no question in ``split`` (one kept for tuning only) is left out, and says so."""
    local = [(folder, collection_settings(settings, folder)) for folder in folders]  # all checked first
    results = {"main": run(settings, qa_path, out_dir)}
    for folder, folder_settings in local:
        if not any(split == "all" or q.split in (None, split) for q in load_qa(folder / "qa.jsonl")):
            print(f"{folder.name}: no questions in the {split} split, left out")
            continue
        results[folder.name] = run(folder_settings, folder / "qa.jsonl", out_dir / folder.name)
    pooled = pool(results)
    (out_dir / "collections.json").write_text(json.dumps(pooled, indent=1, ensure_ascii=False), encoding="utf-8")
    (out_dir / "collections.md").write_text(pooled_table(pooled) + "\n", encoding="utf-8")
    print(pooled_table(pooled))
    return pooled


def pool(results: dict[str, dict]) -> dict:
    """Per collection and pooled: the default configuration's retrieval and answer numbers."""
    rows = {}
    for name, m in results.items():
        config = m["answers"].get("config") or next(iter(m["configs"]))
        c, a = m["configs"][config], m["answers"]
        rows[name] = {"split": m["split"], "config": config, "n": c["n"], **{k: c[k] for k in POOLED},
                      **{k: a.get(k) for k in (*COUNTS, *RATES)}}
    n = sum(r["n"] for r in rows.values())
    together = {"split": "/".join(sorted({r["split"] for r in rows.values()})), "config": "", "n": n}
    together |= {k: sum(r[k] * r["n"] for r in rows.values()) / n if n else None for k in POOLED}
    together |= {k: sum(r[k] or 0 for r in rows.values()) for k in COUNTS}
    together |= {k: _weighted(rows, k) for k in RATES}
    return {**rows, "all": together}


def _weighted(rows: dict[str, dict], key: str) -> float | None:
    have = [(r[key], r["n_covered"]) for r in rows.values() if r.get(key) is not None]
    total = sum(w for _, w in have)
    return sum(v * w for v, w in have) / total if total else None


def pooled_table(pooled: dict) -> str:
    headers = ["collection", "split", "covered", "hit@1", "hit@5", "MRR@10", "nDCG@10", "keywords",
               "citation P", "uncovered refused", "answerable refused"]
    rows = [[name, r["split"], r["n"], *(fmt(r[k]) for k in POOLED), fmt(r["keyword_coverage"]),
             fmt(r["citation_precision"]), f"{r['uncovered_refused']}/{r['n_uncovered']}",
             f"{r['answerable_refused']}/{r['n_covered']}"] for name, r in pooled.items()]
    return markdown_table(headers, rows)
