"""Cited answers: retrieval → coverage gate → an LLM (or the notes themselves) → checked citations.

The orchestration only; each step is its own module: :mod:`rag.answer.rewrite` (follow-ups),
:mod:`rag.answer.gate` (the coverage gate), :mod:`rag.answer.prompts` (the fenced sources),
:mod:`rag.answer.llm.client` (the request), :mod:`rag.answer.claims` (structured claims with source
ids), :mod:`rag.answer.generate` (the reply as checked sentences), :mod:`rag.answer.support` (does
the cited source say it), :mod:`rag.answer.extractive` (the offline answer). A model is asked for
JSON claims first and, if its endpoint refuses a JSON schema, for prose with ``[n]``.

When retrieval finds nothing relevant the answer is a plain refusal listing the
closest entries, with no model call; when the endpoint fails the user gets one line saying so and
the extractive answer instead. With no model configured no request is made, whatever ``use_llm``
a caller passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

from rag.answer.llm.client import FormatRejected, LLMFailure, stream_chat
from rag.retrieve.searcher import Filters, Hit, Searcher
from rag.settings import Settings
from rag.text import language

from . import prompts
from .citations import cited_numbers, neutralise
from .claims import response_format
from .evidence import Evidence, gather_evidence
from .extractive import best_sentences, extractive_answer
from .gate import Gate, judge
from .generate import Pieces, Reply, ReplyStream, claims_reply, text_reply
from .mode import AnswerMode
from .rewrite import rewrite_question
from .session import Session, settings_digest

#: A refusal lists this many of the closest entries.
REFUSAL_ENTRIES = 3
#: Why an offline answer is refused past the gate: no sentence to quote, or a how-much question
#: whose best sentences hold no number (rag.answer.extractive).
NOTHING_QUOTABLE = "no sentence of the top entries says what is asked"
_SPACE = re.compile(r"\s+")


@dataclass
class Citation:
    n: int  # the source number used in the answer text
    hit: Hit


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation]
    mode: str  # "llm" | "extractive"
    refused: bool
    uncited: bool = False
    notice: str | None = None  # one line for the user (e.g. the model failed), never a secret
    removed_citations: list[int] = field(default_factory=list)
    standalone_question: str | None = None  # the rewritten follow-up actually searched
    format: str = "text"  # "claims" when the model answered in structured claims
    unsupported: list[str] = field(default_factory=list)  # sentences their cited source does not back
    #: Embedders the index was still missing when the notes were searched (see RetrievalResult.partial).
    partial: list[str] = field(default_factory=list)
    session: Session | None = None  # how it was reached: retrieval, evidence, the gate, timings

    @property
    def refusal_reason(self) -> str | None:
        return self.session.refusal_reason if self.session is not None else None


AnswerStream = Generator[str, None, Answer]


def refusal_text(hits: Sequence[Hit], lang: str, lead: str | None = None) -> str:
    """The refusal sentence (or ``lead``), then the closest entries with their ``[n]``."""
    lines = [prompts.REFUSAL[lang] if lead is None else lead]
    lines += [f"- {neutralise(h.entry.title)} [{n}]" for n, h in enumerate(hits[:REFUSAL_ENTRIES], start=1)]
    return "\n".join(x for x in lines if x)


def is_model_refusal(text: str) -> bool:
    """Whether a model's reply starts with the fixed "not covered" sentence it was told to use."""
    plain = _SPACE.sub("", text).lower()
    return any(_SPACE.sub("", s).lower().rstrip(".。") in plain[:80] for s in prompts.NOT_COVERED.values())


@dataclass
class _Turn:
    """One question being answered: what every exit needs to build its :class:`Answer`."""

    session: Session
    mode: str

    @property
    def lang(self) -> str:
        return self.session.lang

    @property
    def hits(self) -> Sequence[Hit]:
        return self.session.result.hits if self.session.result is not None else ()

    def answer(self, text: str, cited: Sequence[int], refused: bool, mode: str | None = None,
               **extra: object) -> Answer:
        citations = [Citation(n, self.hits[n - 1]) for n in cited]
        result = self.session.result
        return Answer(self.session.question, text, citations, mode or self.mode, refused,
                      uncited=not citations and not refused, standalone_question=self.session.standalone,
                      partial=list(result.partial) if result is not None else [], session=self.session,
                      **extra)  # type: ignore[arg-type]


def iter_answer(question: str, searcher: Searcher, settings: Settings, *, k: int | None = None,
                filters: Filters | None = None, history: Sequence[dict] | None = None,
                use_llm: bool | None = None, source_budget: int | None = None,
                small_model: bool = False) -> AnswerStream:
    """Text deltas as they are produced; the generator's return value is the :class:`Answer`.

    ``use_llm`` None means "when a model is configured"; True cannot turn on a model that is not
    (the answer is extractive, with a notice). ``source_budget`` overrides
    ``settings.answer.source_token_budget`` (a local model reads less). A ``small_model`` (a local
    one) reads each source's best sentences instead of whole entries, and its schema bounds the
    number of claims and requires a source for each.
    """
    mode = AnswerMode.of(use_llm)
    notice, use_llm = mode.notice(settings.llm), mode.uses_model(settings.llm)
    session = Session(question, language(question), settings_digest(settings))
    turn = _Turn(session, "llm" if use_llm else "extractive")
    if refusal := _unusable_question(question, turn.lang, settings.answer.max_question_chars):
        text, refusal_notice = refusal
        yield text
        return turn.answer(text, [], refused=True, notice=refusal_notice)
    with session.timed("rewrite"):
        standalone = rewrite_question(question, history, settings.llm, use_llm)
    session.standalone = standalone if standalone != question else None
    session.generation = searcher.index.generation
    with session.timed("retrieve"):
        result = session.result = searcher.search(standalone, k=k or settings.answer.k, filters=filters)
    if not result.hits:
        yield prompts.NO_ENTRIES[turn.lang]
        return turn.answer(prompts.NO_ENTRIES[turn.lang], [], refused=True)
    with session.timed("gate"):
        evidence = session.evidence = gather_evidence(result, settings.answer.evidence_entries)
        session.gate = judge(evidence, settings.answer)
    if not session.gate.covered:
        text = refusal_text(result.hits, turn.lang)
        yield text
        return turn.answer(text, cited_numbers(text), refused=True)
    if use_llm:
        shown: list[bool] = []
        try:
            return (yield from _shown(_from_model(turn, evidence, settings, source_budget, small_model), shown))
        except LLMFailure as exc:
            notice = str(exc)
            if shown:
                yield "\n\n"
    with session.timed("extractive"):
        quoted = extractive_answer(result.hits, evidence, turn.lang)
    if quoted is None:  # refused after the gate: the JSON's refusal_reason says why
        session.gate = Gate(False, NOTHING_QUOTABLE)
    text, cited = quoted or (refusal_text(result.hits, turn.lang), [])
    yield text
    return turn.answer(text, cited, refused=not cited, mode="extractive", notice=notice)


def _unusable_question(question: str, lang: str, limit: int) -> tuple[str, str | None] | None:
    """The reply (and notice) for an empty question or one over ``limit`` characters; None if fine."""
    if not question.strip():
        return prompts.NO_QUESTION[lang], None
    if len(question) > limit:
        return (prompts.TOO_LONG[lang].format(chars=len(question), limit=limit),
                prompts.TOO_LONG_NOTICE.format(chars=len(question), limit=limit))
    return None


def _shown(stream: AnswerStream, shown: list[bool]) -> AnswerStream:
    """``stream`` passed on, noting in ``shown`` whether any text reached the user."""
    while True:
        try:
            delta = next(stream)
        except StopIteration as done:
            return done.value
        shown.append(True)
        yield delta


def _from_model(turn: _Turn, evidence: Evidence, settings: Settings, source_budget: int | None,
                small_model: bool) -> AnswerStream:
    """The model's answer: structured claims when the endpoint takes a JSON schema, else prose."""
    answer = settings.answer
    session = turn.session
    asked = session.question if session.standalone is None else f"{session.question}\n({session.standalone})"
    texts = best_sentences(turn.hits, evidence, answer.excerpt_sentences) if small_model else None

    def reply(structured: bool) -> ReplyStream:
        messages, provided = prompts.build_messages(asked, turn.hits, turn.lang,
                                                    source_budget or answer.source_token_budget,
                                                    answer.max_source_tokens, structured, texts)
        fmt = response_format(provided, bounded=small_model) if structured else None
        pieces = Pieces(stream_chat(messages, settings.llm, answer.max_answer_tokens, response_format=fmt),
                        answer.max_answer_chars)
        entries = [h.entry for h in turn.hits[:provided]]
        if structured:
            return (yield from claims_reply(pieces, entries, turn.lang, answer.strict))
        return (yield from text_reply(pieces, entries, answer.strict))

    try:
        result: Reply = yield from reply(answer.structured)
    except FormatRejected:  # an endpoint without structured outputs: today's text protocol
        result = yield from reply(False)
    text = result.text
    if result.cut:
        yield prompts.ANSWER_CUT
        text += prompts.ANSWER_CUT
    refused = result.refused or is_model_refusal(text)
    if refused:  # no claim, or the model's own "not covered" sentence: then the closest entries
        extra = refusal_text(turn.hits, turn.lang) if result.refused else "\n" + refusal_text(
            turn.hits, turn.lang, lead="")
        yield extra
        text += extra
    return turn.answer(text, cited_numbers(text), refused=refused, removed_citations=result.removed,
                       notice=result.notice, format=result.format, unsupported=result.unsupported)


def collect(stream: AnswerStream, on_token: Callable[[str], None] | None = None) -> Answer:
    """Run an answer stream to its end; ``on_token`` sees each text delta (e.g. to print it)."""
    while True:
        try:
            delta = next(stream)
        except StopIteration as done:
            return done.value
        if on_token:
            on_token(delta)


def answer_question(question: str, searcher: Searcher, settings: Settings, *, k: int | None = None,
                    filters: Filters | None = None, history: Sequence[dict] | None = None,
                    use_llm: bool | None = None, source_budget: int | None = None, small_model: bool = False,
                    on_token: Callable[[str], None] | None = None) -> Answer:
    """The whole answer; ``on_token`` sees each text delta as it streams (e.g. to a TTY)."""
    return collect(iter_answer(question, searcher, settings, k=k, filters=filters, history=history,
                               use_llm=use_llm, source_budget=source_budget, small_model=small_model),
                   on_token)


def format_sources(answer: Answer) -> str:
    """``[n] title — file:lines — url``, one line per cited entry."""
    lines = []
    for c in answer.citations:
        e = c.hit.entry
        lines.append(" — ".join(x for x in (f"[{c.n}] {e.title}", f"{c.hit.path}:{e.line_start}-{e.line_end}",
                                            e.url) if x))
    return "\n".join(lines)
