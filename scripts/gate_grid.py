"""The coverage gate's calibration, reproducible: how e5's stand-out and term coverage separate
answerable from uncovered questions, and what each (coverage bar, e5 stand-out) pair refuses.

Each question is searched once; the grid then only re-runs :func:`rag.answer.gate.is_covered` with
other settings, so it is as fast as one ``rag eval`` pass. The defaults (0.4, 2.25) were chosen on
``tune`` with this grid (eval/README.md, "Refusal: e5 vouches by standing out"); the coverage bar
later moved to 0.36, mid-gap on ``tune`` of both collections.

Usage: python scripts/gate_grid.py [--index DIR] [--split tune|report|all] [--qa FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rag.answer.evidence import Evidence, gather_evidence
from rag.answer.gate import is_covered, standout_thresholds
from rag.embed.models import Models
from rag.eval.qa import load_split
from rag.service import Notes
from rag.settings import Settings

BARS = (0.2, 0.3, 0.35, 0.36, 0.4, 0.5, 0.6)
STANDOUTS = (2.0, 2.15, 2.25, 2.3, 2.5, 2.75, 3.0)
E5 = "e5-onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="index")
    parser.add_argument("--split", default="tune")
    parser.add_argument("--qa", default="eval/qa.jsonl")
    args = parser.parse_args()
    settings = Settings().updated({"index.path": Path(args.index)})
    searcher = Notes(settings, Models()).searcher()
    questions = load_split(Path(args.qa), args.split).questions
    seen: list[tuple[str, bool, Evidence]] = []
    raw_zh = []
    for q in questions:
        result = searcher.search(q.question, k=settings.answer.k)
        seen.append((q.id, q.covered, gather_evidence(result, settings.answer.evidence_entries)))
        if q.covered and q.lang == "zh":
            raw_zh.append(seen[-1][2].similarity.get(E5, np.nan))

    z = np.array([e.standout.get(E5, np.nan) for _, covered, e in seen if covered])
    print(f"{args.split}: {sum(c for _, c, _ in seen)} answerable, {sum(not c for _, c, _ in seen)} uncovered")
    print(f"e5 stand-out of answerable questions: 5th percentile {np.nanpercentile(z, 5):.2f}, "
          f"median {np.nanmedian(z):.2f}; e5 raw similarity of answerable Chinese ones: median "
          f"{np.nanmedian(raw_zh):.2f}")
    lowest = sorted((e.standout.get(E5, np.inf), qid, e.coverage) for qid, covered, e in seen if covered)[:4]
    print("  lowest answerable: " + ", ".join(f"{qid} {z:.2f} (coverage {c:.2f})" for z, qid, c in lowest))
    for qid, covered, e in seen:
        if not covered:
            print(f"  uncovered {qid}: e5 stand-out {e.standout.get(E5, float('nan')):.2f}, raw "
                  f"{e.similarity.get(E5, float('nan')):.3f}, coverage {e.coverage:.2f}")

    print("\ncoverage bar × e5 stand-out → uncovered refused, answerable refused")
    for bar in BARS:
        cells = []
        for limit in STANDOUTS:
            answer = settings.answer.model_copy(update={"min_coverage": bar})
            standouts = {**standout_thresholds([E5]), E5: limit}
            refused = [(covered, not is_covered(e, answer, standouts=standouts)) for _, covered, e in seen]
            cells.append(f"{limit}: {sum(r for c, r in refused if not c)}/{sum(r for c, r in refused if c)}")
        print(f"  {bar:<4}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
