"""Merge the canned-question parts into eval/qa.jsonl, snapping each gold span to the segmenter's entry.

Question writers mark the entry as they read it; the segmenter may draw its edge a line later (a
trailing `---`). A gold span becomes the span of the entry it overlaps most, so the check in
tests/test_eval_canned_set.py (every gold span is an entry span) holds by construction.

Each part belongs to a split: `tune` questions may be looked at while tuning retrieval and refusal,
`report` questions are only for the numbers we publish, so that tuning cannot fit them.

Usage: python scripts/snap_gold.py   (rewrites eval/qa.jsonl from the parts below)
"""

from __future__ import annotations

import json
from pathlib import Path

from rag.ingest.notes import split_entries

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "eval"
PARTS = {  # file in eval/ → split; the order is the order of qa.jsonl
    "qa_part_a.jsonl": "tune",
    "qa_part_b.jsonl": "report",
    "qa_hard_a.jsonl": "tune",
    "qa_hard_b.jsonl": "report",
    "qa_hard_c.jsonl": "tune",
}


def snap(gold: dict, entries: dict[str, list]) -> dict:
    def overlap(e) -> int:
        return min(e.line_end, gold["line_end"]) - max(e.line_start, gold["line_start"]) + 1

    best = max(entries[gold["file"]], key=overlap)
    if overlap(best) <= 0:
        raise SystemExit(f"gold span {gold} overlaps no entry")
    return {"file": gold["file"], "line_start": best.line_start, "line_end": best.line_end}


def main(out: Path, parts: dict[str, str]) -> None:
    corpus = ROOT / "corpus"
    entries = {p.name: split_entries(p.read_text(encoding="utf-8"), p.name) for p in corpus.iterdir()}
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
    print(f"{len(rows)} questions → {out}")


if __name__ == "__main__":
    main(EVAL / "qa.jsonl", PARTS)
