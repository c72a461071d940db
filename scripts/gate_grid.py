"""The coverage gate's calibration, reproducible: uncovered and answerable questions refused per
canned collection, for the committed gate and for each level of one of its knobs moved alone.

Each question is searched once; the grid then only re-runs :func:`rag.answer.gate.judge` with other
levels, so it is as fast as one ``rag eval`` pass per collection. The committed levels (USE vouches
at 0.42, e5 at a stand-out of 2.25, term coverage 0.36, consensus with term coverage 0.25, term
coverage under 0.15 voiding a stand-out, a USE cosine under 0.23 refusing outright) were chosen with
it on ``tune`` (eval/README.md, "The ninth session" and "The tenth session").
Run ``rag eval --split tune --collection eval/other --collection eval/third --collection eval/fifth
--collection eval/sixth --collection eval/seventh`` first: it builds the collections' indexes.

Usage: python scripts/gate_grid.py [--split tune|report|all]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from rag.answer.evidence import Evidence, gather_evidence
from rag.answer.gate import judge, similarity_thresholds, standout_thresholds, unrelated_thresholds
from rag.embed.models import Models
from rag.eval.collections import canned_sets
from rag.service import Notes
from rag.settings import AnswerSettings, Settings

E5, USE = "e5-onnx", "use-m3"
#: Each knob and the levels it is tried at, the others staying committed.
KNOBS = {
    "use vouches": (0.36, 0.38, 0.40, 0.42, 0.45, 0.48),
    "e5 vouches": (2.1, 2.25, 2.4, 2.5),
    "term coverage": (0.30, 0.33, 0.36, 0.40, 0.45),
    "consensus coverage": (0.0, 0.15, 0.20, 0.23, 0.25, 0.28),
    "use unrelated": (0.0, 0.10, 0.15, 0.20, 0.22, 0.23, 0.24, 0.26, 0.28),
    "stand-out coverage": (0.0, 0.05, 0.10, 0.15, 0.20, 0.22),
}


@dataclass
class Levels:
    answer: AnswerSettings
    vouch: dict[str, float | None] = field(default_factory=dict)
    standout: dict[str, float | None] = field(default_factory=dict)
    unrelated: dict[str, float | None] = field(default_factory=dict)

    def moved(self, knob: str, level: float) -> Levels:
        out = Levels(self.answer, dict(self.vouch), dict(self.standout), dict(self.unrelated))
        if knob == "use vouches":
            out.vouch[USE] = level
        elif knob == "e5 vouches":
            out.standout[E5] = level
        elif knob == "use unrelated":
            out.unrelated[USE] = level
        else:
            setting = {"term coverage": "min_coverage", "consensus coverage": "min_consensus_coverage",
                       "stand-out coverage": "min_standout_coverage"}[knob]
            out.answer = self.answer.model_copy(update={setting: level})
        return out


def refused(seen: list[tuple[bool, Evidence]], levels: Levels) -> tuple[int, int]:
    """(uncovered refused, answerable refused)."""
    verdicts = [(covered, not judge(e, levels.answer, levels.vouch, levels.standout, levels.unrelated).covered)
                for covered, e in seen]
    return sum(r for c, r in verdicts if not c), sum(r for c, r in verdicts if c)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="tune", choices=("tune", "report", "all"))
    args = parser.parse_args()
    models = Models()
    seen: dict[str, list[tuple[bool, Evidence]]] = {}
    for label, settings, questions in canned_sets(Settings(), args.split):
        searcher = Notes(settings, models).searcher()
        seen[label] = [(q.covered, gather_evidence(searcher.search(q.question, k=settings.answer.k),
                                                   settings.answer.evidence_entries)) for q in questions]
    committed = Levels(Settings().answer, similarity_thresholds([E5, USE]), standout_thresholds([E5, USE]),
                       unrelated_thresholds([E5, USE]))
    sizes = "  ".join(f"{label} {sum(not c for c, _ in s)}/{sum(c for c, _ in s)}" for label, s in seen.items())
    print(f"{args.split}: uncovered/answerable per collection: {sizes}")
    print("levels → uncovered refused / answerable refused, per collection and in all")

    def row(levels: Levels) -> str:
        counts = [refused(s, levels) for s in seen.values()]
        cells = "  ".join(f"{label} {u}/{a}" for label, (u, a) in zip(seen, counts, strict=True))
        return f"{cells}  all {sum(u for u, _ in counts)}/{sum(a for _, a in counts)}"

    print(f"  committed: {row(committed)}")
    for knob, levels in KNOBS.items():
        for level in levels:
            print(f"  {knob} {level}: {row(committed.moved(knob, level))}")


if __name__ == "__main__":
    main()
