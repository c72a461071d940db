"""Why a hit was found: the retrievers that ranked it (and where), and the question's exact terms it holds.

Users ask "why was my note not found" and "why is this one first"; fused scores cannot say, but
the per-retriever ranks that fusion keeps (:class:`~rag.retrieve.fusion.SourceScore`) and the
question's numbers, names and ids that the entry writes can. Terms are shown as the question
wrote them ("KV-cache", "80%"), not as index tokens.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from rag.ingest.notes import Entry
from rag.text import lexical

from .fusion import SourceScore
from .query import Query

#: How the source card names a retriever; others by their own name.
LABELS = {"bm25": "BM25", "e5-onnx": "e5", "e5": "e5", "use-m3": "USE", "translated": "dict"}


@dataclass(frozen=True)
class Why:
    ranks: Mapping[str, int] = field(default_factory=dict)  # retriever → the entry's rank there (1 = best)
    matched: tuple[str, ...] = ()  # the question's exact terms and names the entry holds, as written
    #: The entry's fields whose value the question writes whole ("which are NeurIPS 2023" → venue):
    #: found by what the note says of the paper, not by its text.
    fields: Mapping[str, str] = field(default_factory=dict)

    def line(self) -> str:
        """One line for a source card: "BM25 #1 · e5 #3 · exact: 80%, KV cache"."""
        parts = [f"{LABELS.get(name, name)} #{rank}" for name, rank in self.ranks.items() if name != "exact"]
        said = " ".join(self.fields.values()).lower()  # "NeurIPS" is in "venue: NeurIPS 2023"
        held = [*(m for m in self.matched if m.lower() not in said), *(f"{k}: {v}" for k, v in self.fields.items())]
        if "exact" in self.ranks or held:
            parts.append("exact: " + (", ".join(held) or f"#{self.ranks['exact']}"))
        return " · ".join(parts)


@dataclass(frozen=True)
class Term:
    written: str  # as the question writes it
    tokens: frozenset[str]  # all must occur in an entry for it to match
    at: int  # where the question has it (terms are listed in question order)


def question_terms(query: Query) -> list[Term]:
    """The question's exact terms and names, longest first, so that a compound ("GRPO-style") is
    shown rather than its parts."""
    text = lexical.normalize(query.text)
    lowered = text.lower()
    terms: dict[str, Term] = {}
    for term in query.exact:
        at = lowered.find(term)
        written = text[at:at + len(term)] if at >= 0 else term
        # a compound matches by its parts: a note writing "KV cache" holds "KV-cache"
        parts = frozenset(lexical.tokenize(written)) - {term}
        terms.setdefault(written.lower(), Term(written, parts or frozenset({term}), at))
    for name in query.names:
        if tokens := frozenset(lexical.tokenize(name)):
            terms.setdefault(name.lower(), Term(name, tokens, lowered.find(name.lower())))
    return sorted(terms.values(), key=lambda t: -len(t.written))


def holds(text: str, token: str) -> bool:
    """Whether normalised, lower-cased ``text`` has ``token``: a Latin one as a whole word ("80%"
    is not in "180%", "kv" not in "kvm"), a Chinese one anywhere. A search for it, not a
    tokenization of the entry (jieba takes ~25 ms per entry: too slow for every hit)."""
    if not token.isascii():
        return token in text
    return re.search(rf"(?<![a-z0-9]){re.escape(token)}(?![a-z0-9])", text) is not None


def explain(sources: Mapping[str, SourceScore], entry: Entry, terms: list[Term],
            held: Collection[str] = ()) -> Why:
    """The retrievers' ranks of an entry (best first), which of ``terms`` its title or text holds,
    and the fields whose value the question writes (``held``: their keys, :mod:`.fields`)."""
    ranks = dict(sorted(((name, s.rank) for name, s in sources.items()), key=lambda r: r[1]))
    text = lexical.normalize(f"{entry.title}\n{entry.text}").lower() if terms else ""
    matched: list[Term] = []
    for term in terms:
        if all(holds(text, t) for t in term.tokens) and not any(term.written.lower() in m.written.lower()
                                                                for m in matched):
            matched.append(term)
    fields = {k: v for k, v in entry.properties if k in held}
    return Why(ranks, tuple(t.written for t in sorted(matched, key=lambda t: t.at)), fields)
