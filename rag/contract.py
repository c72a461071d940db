"""One request/response contract for every front end: the CLI's ``--json``, the app's API and MCP.

Requests are typed here and checked once, by :class:`rag.service.Notes`, against the settings'
bounds (:func:`check_question`, :func:`check_k`), so every front end refuses the same input with
the same line. Responses are pydantic models made from the pipeline's results: the CLI prints
them, the app returns them and MCP declares its tools' output schemas from them, so a field
added here appears everywhere. The CLI's shapes are a contract (../shared/docs/cli.md): fields
are added, never renamed; a hit's keys keep the contract's order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.answer.answer import Answer, Citation
from rag.answer.mode import AnswerMode
from rag.errors import RagError
from rag.ingest.notes import Entry
from rag.retrieve.related import Related
from rag.retrieve.searcher import Filters, Hit

# ---------------------------------------------------------------------------- requests


class QuestionError(RagError, ValueError):
    """A request that cannot be served (the question, k); the message is one line for the user."""


def check_question(text: object, max_chars: int) -> str:
    """The question as clean text: a string, not blank, not too long, valid Unicode.

    Bytes that were not UTF-8 (a shell passes them through as lone surrogates) become U+FFFD
    rather than failing deep inside a tokenizer.
    """
    if not isinstance(text, str):
        raise QuestionError("the question must be text")
    clean = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "").strip()
    if not clean:
        raise QuestionError("the question is empty")
    if len(clean) > max_chars:
        raise QuestionError(f"the question is {len(clean)} characters long; the limit is {max_chars} "
                            "(answer.max_question_chars)")
    return clean


def check_k(k: object, limit: int) -> int:
    """The one check of how many entries a request asks for (limits: rag.settings.MAX_*_K)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limit:
        raise QuestionError(f"k must be a whole number from 1 to {limit}")
    return k


class SearchRequest(BaseModel):
    """A search. ``question`` and ``k`` are checked by the service (their bounds are settings);
    ``k`` None is the settings' default. ``filters`` come parsed (:meth:`Filters.parse`)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    question: object
    k: object = None
    filters: Filters = Field(default_factory=Filters)


class AskRequest(SearchRequest):
    """A question for a cited answer: its mode, and optionally the chat so far, another model of the
    endpoint, and ``strict`` (None: the setting ``answer.strict``)."""

    mode: AnswerMode = AnswerMode.AUTO
    strict: bool | None = None
    history: list[dict] | None = None
    model: str | None = None


# ---------------------------------------------------------------------------- responses


class WhyOut(BaseModel):
    """Why an entry was found: its rank in each retriever, the question's exact terms it holds, and
    its fields whose value the question writes."""

    ranks: dict[str, int] = Field(default_factory=dict)
    matched: list[str] = Field(default_factory=list)
    fields: dict[str, str] = Field(default_factory=dict)  # its fields holding a value the question writes


class _Ranked(BaseModel):
    rank: int
    score: float


class _Where(BaseModel):
    file: str
    path: str
    title: str
    line_start: int
    line_end: int
    url: str | None
    date: str | None


class _Snippet(BaseModel):
    snippet: str


class _FrontMatter(BaseModel):
    tags: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    authors: list[str] = Field(default_factory=list)
    context: str = ""  # where the entry sits: "Note title › Section", a table row's header
    properties: dict[str, str] = Field(default_factory=dict)  # its fields as written: status, venue, created…


def entry_fields(entry: Entry, path: str) -> dict:
    """The :class:`_Where` and :class:`_FrontMatter` fields of ``entry`` (``path``: its note as the
    user named the corpus), for any model made of them."""
    return {"file": entry.file, "path": path, "title": entry.title, "line_start": entry.line_start,
            "line_end": entry.line_end, "url": entry.url, "date": entry.date, "tags": list(entry.tags),
            "aliases": list(entry.aliases), "authors": list(entry.authors), "context": entry.context,
            "properties": dict(entry.properties)}


# A model's fields come in the reverse order of its bases, then its own: each group above is
# declared once, and a hit keeps the contract's key order (rank … date, snippet, tags … why).


class HitOut(_FrontMatter, _Snippet, _Where, _Ranked):
    """One note entry found for a question; the span is the entry's."""

    why: WhyOut = Field(default_factory=WhyOut)

    @classmethod
    def of(cls, hit: Hit) -> HitOut:
        return cls(rank=hit.rank, score=round(hit.score, 4), snippet=hit.snippet, **entry_fields(hit.entry, hit.path),
                   why=WhyOut(ranks=dict(hit.why.ranks), matched=list(hit.why.matched), fields=dict(hit.why.fields)))


class SearchOut(BaseModel):
    """`rag search --json`: the question as searched and its hits, best first."""

    question: str
    hits: list[HitOut]
    #: Embedders the index does not have yet (a build is still embedding): hits ranked without them.
    partial: list[str] = Field(default_factory=list)


class _Numbered(BaseModel):
    n: int  # the source number used in the answer text


class CitationOut(HitOut, _Numbered):
    """A cited entry: ``n`` first, then the fields of its hit (declared once, in HitOut)."""

    @classmethod
    def of(cls, citation: Citation) -> CitationOut:
        return cls(n=citation.n, **HitOut.of(citation.hit).model_dump())


class AnswerOut(BaseModel):
    """`rag ask --json`: a cited answer; every [n] in ``answer`` is in ``citations``."""

    question: str
    answer: str
    citations: list[CitationOut]
    mode: Literal["llm", "extractive"]
    refused: bool
    uncited: bool = False
    notice: str | None = None
    removed_citations: list[int] = Field(default_factory=list)
    format: Literal["claims", "text"] = "text"
    unsupported: list[str] = Field(default_factory=list)  # sentences their cited source does not back
    #: Why the notes were judged not to cover the question (the gate's deciding signal), else None.
    refusal_reason: str | None = None
    partial: list[str] = Field(default_factory=list)  # embedders the index did not have yet

    @classmethod
    def of(cls, answer: Answer) -> AnswerOut:
        return cls(question=answer.question, answer=answer.text,
                   citations=[CitationOut.of(c) for c in answer.citations], mode=answer.mode,
                   refused=answer.refused, uncited=answer.uncited, notice=answer.notice,
                   removed_citations=list(answer.removed_citations), format=answer.format,
                   unsupported=list(answer.unsupported), refusal_reason=answer.refusal_reason,
                   partial=list(answer.partial))


class EntryFields(_FrontMatter, _Where):
    """Where a note entry is: its file, span, title, link, date and front matter."""


class RelatedEntryOut(EntryFields):
    score: float
    linked: bool  # a [[wikilink]] joins the two notes


class RelatedOut(BaseModel):
    """`rag related --json`: an entry and the entries most like it (wikilinks first, then vectors)."""

    entry: EntryFields
    related: list[RelatedEntryOut]

    @classmethod
    def of(cls, entry: Entry, related: list[Related], path_of: Callable[[str], str]) -> RelatedOut:
        """``path_of``: a note's path as the user named the corpus, from its file."""
        return cls(entry=EntryFields(**entry_fields(entry, path_of(entry.file))),
                   related=[RelatedEntryOut(**entry_fields(r.entry, path_of(r.entry.file)), score=r.score,
                                            linked=r.linked) for r in related])
