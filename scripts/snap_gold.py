"""Merge each collection's canned-question parts into its qa file, snapping gold spans to entries.

Question writers mark the unit they read (a paper's paragraph, a whole one-paper note, a table
row); the segmenter may draw its edge a line later (a trailing `---`) or leave front matter out of
every entry. A gold span becomes the span of the entry it overlaps most (front matter, which
overlaps none, describes the note's first entry), so the check in tests/test_eval_canned_set.py
(every gold span is an entry span) holds by construction. A snap that more than doubles the
writer's span is printed: the segmenter then lumps what the writer saw as one unit with others.

Each part belongs to a split: `tune` questions may be looked at while tuning retrieval and refusal,
`report` questions are only for the numbers we publish, so that tuning cannot fit them.

Usage: python scripts/snap_gold.py   (rewrites each collection's qa.jsonl from its parts)
"""

from __future__ import annotations

import json
from pathlib import Path

from rag.ingest.corpus import read_corpus
from rag.ingest.notes import Entry, split_entries

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "eval"
#: collection → (its notes, its qa file, {part file in eval/ → split}); parts in qa-file order.
COLLECTIONS = {
    "bundled": (ROOT / "corpus", EVAL / "qa.jsonl", {
        "qa_part_a.jsonl": "tune",
        "qa_part_b.jsonl": "report",
        "qa_hard_a.jsonl": "tune",
        "qa_hard_b.jsonl": "report",
        "qa_hard_c.jsonl": "tune",
    }),
    "other": (EVAL / "other" / "notes", EVAL / "other" / "qa.jsonl", {
        "other/qa_tune.jsonl": "tune",
        "other/qa_report.jsonl": "report",
    }),
    #: a third hand's notes and questions, only for choosing (no report split: see eval/README.md)
    "third": (EVAL / "third" / "notes", EVAL / "third" / "qa.jsonl", {
        "third/qa_part_a.jsonl": "tune",
    }),
}


def snap(gold: dict, entries: dict[str, list[Entry]]) -> dict:
    def overlap(e: Entry) -> int:
        return min(e.line_end, gold["line_end"]) - max(e.line_start, gold["line_start"]) + 1

    candidates = entries.get(gold["file"])
    if not candidates:
        raise SystemExit(f"gold span {gold} names a file with no entries")
    best = max(candidates, key=overlap)
    if overlap(best) <= 0:
        best = candidates[0]  # front matter: it describes the note's first entry
    wide, size = best.line_end - best.line_start + 1, gold["line_end"] - gold["line_start"] + 1
    if wide > 2 * size + 4:
        print(f"  wide: {gold['file']}:{gold['line_start']}-{gold['line_end']} → entry {best.line_start}-"
              f"{best.line_end} ({best.title[:40]})")
    return {"file": gold["file"], "line_start": best.line_start, "line_end": best.line_end}


def main(corpus: Path, out: Path, parts: dict[str, str]) -> None:
    notes, _ = read_corpus(corpus, max_bytes=5 << 20)
    entries = {rel: split_entries(text, rel) for rel, text in notes.items()}
    rows = []
    for name, split in parts.items():
        for line in (EVAL / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                q = json.loads(line)
                q["gold"] = [snap(g, entries) for g in q["gold"]]
                q["split"] = split
                rows.append(q)
    ids = [q["id"] for q in rows]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"duplicate ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    out.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in rows), encoding="utf-8")
    print(f"{len(rows)} questions → {out.relative_to(ROOT)}")


if __name__ == "__main__":
    for corpus, out, parts in COLLECTIONS.values():
        main(corpus, out, parts)
