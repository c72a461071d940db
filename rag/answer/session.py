"""One question's way through the pipeline, kept as typed data (paper-qa's ``PQASession`` is the model).

:func:`rag.answer.answer.iter_answer` fills a :class:`Session` as it goes: the question as searched,
the :class:`~rag.retrieve.searcher.RetrievalResult`, the evidence and the gate's decision with its
reason, the index generation, a digest of the settings that shaped the answer, and how long each
stage took. The :class:`~rag.answer.answer.Answer` carries it, so eval and the front ends read what
was decided instead of deciding it again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rag.retrieve.searcher import RetrievalResult
from rag.settings import Settings

from .evidence import Evidence
from .gate import Gate


def settings_digest(settings: Settings) -> str:
    """12 hex digits naming the retrieval and answer settings (no secret is among them): two runs
    with one digest answered under the same rules."""
    shaped = settings.retrieval.model_dump_json() + settings.answer.model_dump_json()
    return hashlib.sha256(shaped.encode()).hexdigest()[:12]


@dataclass
class Session:
    question: str
    lang: str
    settings_digest: str
    standalone: str | None = None  # the follow-up as rewritten for the search, when it was
    result: RetrievalResult | None = None
    evidence: Evidence | None = None
    gate: Gate | None = None
    generation: str | None = None  # the index generation searched
    timings: dict[str, float] = field(default_factory=dict)  # stage → milliseconds

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the time spent in the ``with`` block to ``stage``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + (time.perf_counter() - start) * 1000

    @property
    def refusal_reason(self) -> str | None:
        """Why the notes were judged not to cover the question; None when they were, or when the
        question never reached the gate (empty, too long, nothing retrieved: the answer says so)."""
        return self.gate.reason if self.gate is not None and not self.gate.covered else None
