"""A model's reply turned into the text a user reads: claim by claim, or sentence by sentence.

Two protocols, one contract: every sentence that reaches the user is complete, cites only sources
the model was given, and has been checked against them (:mod:`rag.answer.support`).

- **claims** (:func:`claims_reply`): the model wrote JSON claims (:mod:`rag.answer.claims`); each is
  shown as a sentence with ``[n]`` once its object closes. A claim citing no valid source is dropped.
- **text** (:func:`text_reply`): the model wrote prose with ``[n]``; each sentence is shown once it
  ends, an uncited one gains the citation of the one source that clearly states it.

Both stop at a repeated sentence (small models loop), cut the reply at ``max_chars``, and never
pass on a broken character: a model that emits half a UTF-8 sequence yields U+FFFD, which is
dropped, and a surrogate pair split across deltas is joined again.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain

from rag.ingest.notes import Entry

from . import prompts
from .citations import CITATION, CitationStream, clean_citations
from .claims import ClaimParser, claim_sentences, make_claim, separator
from .llm.client import LLMFailure
from .support import check_sentence, supported

#: A repeated sentence shorter than this (after folding) is not taken for a loop ("Yes.").
MIN_LOOP_CHARS = 12
_SENTENCE_END = re.compile(r"[。！？；!?;]|\.(?=\s)|\n")
#: What still belongs to a sentence after its stop: its citations (the space after goes with the next).
_AFTER = re.compile(r"(?:\s*\[\d+(?:\s*[,，、]\s*\d+)*\])*")
_FOLD = re.compile(r"[\W_]+")


@dataclass
class Reply:
    """What a model's reply came to, besides the text already streamed."""

    format: str  # "claims" | "text"
    text: str = ""
    refused: bool = False
    unsupported: list[str] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)  # invalid citation numbers the model wrote
    notice: str | None = None
    cut: bool = False  # stopped at max_chars


class Pieces:
    """The model's deltas, cut at ``max_chars``, with no U+FFFD and no split surrogate pair."""

    def __init__(self, deltas: Iterator[str], max_chars: int) -> None:
        self._deltas = deltas
        self.max_chars = max_chars
        self.received = 0
        self.notice: str | None = None
        self._held = ""

    def __iter__(self) -> Iterator[str]:
        for delta in self._deltas:
            text = self._held + delta
            self._held = text[-1:] if text and "\ud800" <= text[-1] <= "\udbff" else ""
            text = text[:len(text) - len(self._held)]
            # a surrogate pair sent as two JSON escapes becomes one character; a lone half and
            # U+FFFD (a model's broken UTF-8) are dropped
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").replace("\ufffd", "")
            piece = text[:self.max_chars - self.received]
            self.received += len(piece)
            if piece:
                yield piece
            if self.cut:
                self.stop(prompts.ANSWER_CUT_NOTICE.format(limit=self.max_chars))
                return

    @property
    def cut(self) -> bool:
        """Whether the reply was cut at ``max_chars``."""
        return self.received >= self.max_chars

    def stop(self, notice: str | None = None) -> None:
        """Hang up on the model: the rest is not wanted (``notice`` says why, if the user should know)."""
        close = getattr(self._deltas, "close", None)
        if close:
            close()
        self.notice = self.notice or notice


class Repeats:
    """Sentences seen so far, folded; a second sighting of a long one is a loop."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def again(self, sentence: str) -> bool:
        key = _FOLD.sub("", CITATION.sub("", sentence)).lower()
        if len(key) < MIN_LOOP_CHARS:
            return False
        if key in self._seen:
            return True
        self._seen.add(key)
        return False


ReplyStream = Generator[str, None, "Reply"]


def claims_reply(pieces: Pieces, entries: Sequence[Entry], lang: str, strict: bool) -> ReplyStream:
    """Claims as sentences while they stream; returns a :class:`Reply` (``format`` "text" when the
    model ignored the schema and wrote prose, which is then read as :func:`text_reply` reads it)."""
    parser, repeats, reply = ClaimParser(), Repeats(), Reply("claims")
    waiting: list[str] = []  # claims read before "covered" is known
    sep = separator(lang)
    stream = iter(pieces)
    for piece in stream:
        found = parser.feed(piece)
        if parser.is_json is False:
            return (yield from text_reply(pieces, entries, strict, chain([parser.raw], stream)))
        for obj in found:
            claim = make_claim(obj, len(entries))
            if claim is None:
                continue  # no valid source: never shown
            cited = [entries[n - 1] for n in claim.sources]
            for sentence in claim_sentences(claim, lang):
                if repeats.again(sentence):
                    pieces.stop(prompts.LOOP_NOTICE)
                    break
                if not supported(sentence, cited):
                    reply.unsupported.append(sentence)
                    if strict:
                        continue
                waiting.append(sentence)
            if pieces.notice == prompts.LOOP_NOTICE:
                break
        if parser.covered is False:
            pieces.stop()
            break
        if parser.covered and waiting:
            out = (sep if reply.text else "") + sep.join(waiting)
            reply.text += out
            waiting.clear()
            yield out
    result = parser.result() or {}
    covered = parser.covered if parser.covered is not None else result.get("covered") is not False
    if covered and waiting:
        out = (sep if reply.text else "") + sep.join(waiting)
        reply.text += out
        yield out
    if covered and not reply.text:  # it meant to answer, but no claim held a source (or, strict, its support)
        raise LLMFailure(prompts.FAILURES["no_claims"] + prompts.FALLBACK)
    reply.refused = not covered
    reply.notice, reply.cut = pieces.notice, pieces.cut
    return reply


def text_reply(pieces: Pieces, entries: Sequence[Entry], strict: bool,
               chunks: Iterable[str] | None = None) -> ReplyStream:
    """Prose with ``[n]``, released a sentence at a time once checked; returns a :class:`Reply`.
    ``chunks`` is what is left of ``pieces`` when the reply was first read as claims."""
    cite, repeats, reply = CitationStream(len(entries)), Repeats(), Reply("text")
    pending = ""

    def release(final: bool) -> Generator[str, None, None]:
        nonlocal pending
        for sentence in _sentences(pending, final):
            pending = pending[len(sentence):]
            core = sentence.strip()
            if core and repeats.again(core):
                pieces.stop(prompts.LOOP_NOTICE)
                pending = ""
                return
            checked, ok = check_sentence(core, entries) if core else (core, True)
            if not ok:
                reply.unsupported.append(core)
                if strict:
                    continue
            out = sentence.replace(core, checked) if core else sentence
            out = out if reply.text else out.lstrip()
            reply.text += out
            yield out

    for piece in pieces if chunks is None else chunks:
        pending += cite.feed(piece)
        yield from release(False)
    pending += cite.finish()
    if pieces.cut:  # a sentence cut short is shown as it came, and checks nothing
        out, pending = pending.rstrip(), ""
        reply.text += out
        yield out
    elif pieces.notice != prompts.LOOP_NOTICE:
        yield from release(True)
    _, reply.removed = clean_citations(cite.raw, len(entries))
    reply.notice, reply.cut = pieces.notice, pieces.cut
    return reply


def answer_sentences(text: str) -> list[str]:
    """The sentences of a finished answer, each with its citations, as the check reads them."""
    return [s.strip() for s in _sentences(text, final=True) if s.strip()]


def _sentences(text: str, final: bool) -> list[str]:
    """Complete sentences at the start of ``text`` (each with the citations and space after its
    stop); with ``final`` the rest is one more."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.end() <= start:
            continue
        after = _AFTER.match(text, m.end())
        end = after.end() if after else m.end()
        if len(text[end:].strip()) == 0 and not final:
            break  # citations may still follow the stop
        out.append(text[start:end])
        start = end
    if final and start < len(text):
        out.append(text[start:])
    return out
