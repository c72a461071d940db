"""Merge canned-question drafts into eval/qa.jsonl, snapping each gold span to the segmenter's entry.

Question writers mark the entry as they read it; the segmenter may draw its edge a line later (a
trailing `---`). A gold span becomes the span of the entry it overlaps most, so the check in
tests/test_evaluation.py (every gold span is an entry span) holds by construction.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rag.notes import split_entries

ROOT = Path(__file__).resolve().parent.parent


def snap(gold: dict, entries: dict[str, list]) -> dict:
    def overlap(e) -> int:
        return min(e.line_end, gold["line_end"]) - max(e.line_start, gold["line_start"]) + 1

    best = max(entries[gold["file"]], key=overlap)
    if overlap(best) <= 0:
        raise SystemExit(f"gold span {gold} overlaps no entry")
    return {"file": gold["file"], "line_start": best.line_start, "line_end": best.line_end}


def main(out: Path, drafts: list[Path]) -> None:
    corpus = ROOT / "corpus"
    entries = {p.name: split_entries(p.read_text(encoding="utf-8"), p.name) for p in corpus.iterdir()}
    rows = []
    for draft in drafts:
        for line in draft.read_text(encoding="utf-8").splitlines():
            if line.strip():
                q = json.loads(line)
                q["gold"] = [snap(g, entries) for g in q["gold"]]
                rows.append(q)
    out.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in rows), encoding="utf-8")
    print(f"{len(rows)} questions → {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
