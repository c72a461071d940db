"""The coverage gate: answer from the top entries, or refuse and list the closest ones, and why.

The decision reads only the :class:`~rag.answer.evidence.Evidence` of one question. It returns
its reason with it, in words a user can act on ("the notes never mention TabPFN"), so `rag ask
--json` and `rag eval` can say why a question was refused, not only that it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rag.embed.models import resolve
from rag.settings import AnswerSettings

from .evidence import Evidence


@dataclass(frozen=True)
class Gate:
    covered: bool
    reason: str  # the signal that decided, with its value and bar


def similarity_thresholds(embedders: Iterable[str]) -> dict[str, float | None]:
    """Each embedder's calibrated "this chunk alone covers it" similarity (None: it never vouches so)."""
    return {name: resolve(name).min_similarity for name in embedders}


def standout_thresholds(embedders: Iterable[str]) -> dict[str, float | None]:
    """Each embedder's calibrated "the best chunk stands out" z-score (None: it never vouches so)."""
    return {name: resolve(name).min_standout for name in embedders}


def unrelated_thresholds(embedders: Iterable[str]) -> dict[str, float | None]:
    """Each embedder's calibrated "nothing here is about it" similarity (None: it never overrules)."""
    return {name: resolve(name).unrelated_below for name in embedders}


def judge(evidence: Evidence, settings: AnswerSettings, thresholds: Mapping[str, float | None] | None = None,
          standouts: Mapping[str, float | None] | None = None,
          unrelated: Mapping[str, float | None] | None = None) -> Gate:
    """Do the top entries plausibly answer the question?

    The sharpest signals first: a question about named things (TabPFN, MEMIT) most of which the
    notes never mention anywhere is not covered, however close some chunk looks; one asking for a
    field (its authors, its status) of the entry it names is covered, and so is one that calls the
    top entry by its own rare name (QLoRA), whatever else it shares. Nor is one covered that
    an embedder finds unrelated to every chunk (``unrelated``: "how long should I boil eggs"
    shares "long" with the notes), unless it names something they mention or a rare code the top
    entries hold ("read on 2025-05-02"). Otherwise a question
    is refused only when its distinctive terms are mostly absent from the top entries (coverage
    below ``settings.min_coverage``) *and* no embedder vouches for a chunk, by its raw similarity
    (``thresholds``) or by how far the best chunk stands out from the rest of the notes
    (``standouts``); all three calibrations default to the registry's. BM25 and every embedder
    agreeing on the top entry (:attr:`Evidence.consensus`) covers it too, when the top entries
    hold at least ``settings.min_consensus_coverage`` of its terms: rankings also agree on the
    least bad entry for a sourdough question. When no embedder has a calibration, coverage alone
    decides, at the lower ``settings.min_coverage_lexical``.
    """
    missing = evidence.missing_names
    if evidence.names and 2 * len(missing) >= len(evidence.names):
        return Gate(False, f"the notes never mention {', '.join(missing)}")
    if evidence.field_held and not missing:
        return Gate(True, f"the question asks for the {evidence.field_held} of the entry it names")
    if evidence.names_top and not missing:
        return Gate(True, f"the question names the top entry: {evidence.names_top}")
    if thresholds is None:
        thresholds = similarity_thresholds(evidence.similarity)
    if standouts is None:
        standouts = standout_thresholds(evidence.standout)
    if unrelated is None:
        unrelated = unrelated_thresholds(evidence.similarity)
    if far := _unrelated(evidence, unrelated):
        return Gate(False, f"nothing in the notes is near the question: {far}")
    votes = _votes(evidence, settings, thresholds, standouts)
    coverage = f"term coverage {evidence.coverage:.2f}"
    if not votes:
        bar = settings.min_coverage_lexical
        return Gate(evidence.coverage >= bar, f"{coverage} (bar {bar:.2f}; no embedder can vouch)")
    if evidence.coverage >= settings.min_coverage:
        return Gate(True, f"{coverage} (bar {settings.min_coverage:.2f})")
    if vouched := [why for ok, why in votes if ok]:
        return Gate(True, vouched[0])
    if evidence.consensus and evidence.coverage >= settings.min_consensus_coverage:
        return Gate(True, "BM25 and every embedder rank the same entry near the top")
    return Gate(False, f"{coverage} under its bar {settings.min_coverage:.2f}, and no embedder vouches: "
                + "; ".join(why for _, why in votes))


def _unrelated(evidence: Evidence, unrelated: Mapping[str, float | None]) -> str | None:
    """An embedder that finds no chunk near the question at all, unless the question names
    something the notes mention, or a rare exact term the top entries hold ("read on 2025-05-02"):
    then its words, its terms and any chunk standing out are chance ("how long should I boil eggs"
    shares "long" with the notes, and something always stands out)."""
    if len(evidence.names) > len(evidence.missing_names) or evidence.exact_held:
        return None
    return next((f"{name} similarity {sim:.2f} is under {limit:.2f}" for name, sim in evidence.similarity.items()
                 if (limit := unrelated.get(name)) is not None and sim < limit), None)


def _votes(evidence: Evidence, settings: AnswerSettings, similarity: Mapping[str, float | None],
           standout: Mapping[str, float | None]) -> list[tuple[bool, str]]:
    """Each calibrated embedder's verdict, with its value and its bar; a chunk standing out while
    the top entries hold almost none of the question's terms stands out by chance."""
    votes = [(sim >= limit, f"{name} similarity {sim:.2f} (bar {limit:.2f})")
             for name, sim in evidence.similarity.items() if (limit := similarity.get(name)) is not None]
    bar = settings.min_standout_coverage
    chance = f"term coverage {evidence.coverage:.2f} is under {bar:.2f}" if evidence.coverage < bar else None
    for name, z in evidence.standout.items():
        if (limit := standout.get(name)) is not None:
            why = f"{name} stand-out z {z:.2f} (bar {limit:.2f})"
            if z >= limit and chance:
                why += f", by chance: {chance}"
            votes.append((z >= limit and chance is None, why))
    return votes


def is_covered(evidence: Evidence, settings: AnswerSettings, thresholds: Mapping[str, float | None] | None = None,
               standouts: Mapping[str, float | None] | None = None,
               unrelated: Mapping[str, float | None] | None = None) -> bool:
    return judge(evidence, settings, thresholds, standouts, unrelated).covered
