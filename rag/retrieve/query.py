"""A question, prepared once: its text, language, BM25 tokens, names and one vector per dense embedder.

Every later stage (retrievers, the coverage gate, extractive scoring, highlighting) reads the
same :class:`Query`, so a question is tokenized once and embedded once per embedder, with no
process-wide cache to clear between timed runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from rag.embed.models import Models
from rag.text import language, lexical

from .names import capitalised_names, negated


@dataclass(frozen=True)
class Query:
    text: str
    lang: str
    tokens: tuple[str, ...]
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: What the question names exactly (numbers with units, names, ids), as index tokens; not what
    #: it names only to rule out ("完全不用 RL": rag.retrieve.names.negated).
    exact: tuple[str, ...] = ()
    #: Its capitalised names as written (Sora, Constitutional AI), the same way: rag.retrieve.names.
    names: tuple[str, ...] = ()

    @property
    def terms(self) -> tuple[str, ...]:
        """Distinct tokens in question order."""
        return tuple(dict.fromkeys(self.tokens))


def make_query(text: str, models: Models | None = None, embedders: Iterable[str] = ()) -> Query:
    """Tokens always; a vector for each named embedder (loaded through ``models``)."""
    vectors = {name: models.embedder(name).embed_query(text) for name in embedders} if models else {}
    exact = tuple(t for t in lexical.exact_terms(text) if not negated(text, t))
    return Query(text=text, lang=language(text), tokens=tuple(lexical.tokenize(text)), vectors=vectors,
                 exact=exact, names=tuple(capitalised_names(text)))
