"""``[n]`` citations: find them, drop the ones outside the given sources, filter them in a stream.

An answer's contract is that every ``[n]`` in it names source ``n``. Models sometimes cite a
source they were not given, and notes carry their own reference marks (``[21]``); the first are
removed (and reported), the second are neutralised (``［21］``) before any note text is quoted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: ``[1]``, ``[2, 3]``, ``[2，3]``, ``[2、3]``.
CITATION = re.compile(r"\[(\d+(?:\s*[,，、]\s*\d+)*)\]")
_OPEN_TAIL = re.compile(r"[\d,，、\s]*")
_NUMBER = re.compile(r"\d+")
_REMOVED = re.compile(r"(?<![ \t])[ \t]*+\0")  # a run of spaces tried from its start only
_TAIL_CHARS = " \t\n\r\f\v\xa0\u3000。．.！!？?；;:："  # a sentence's final stops and spaces
#: Longest unfinished ``[1, 2, …`` a stream holds back; anything longer is not a citation.
MAX_OPEN_CHARS = 40


def numbers(match: re.Match[str]) -> list[int]:
    return [int(x) for x in _NUMBER.findall(match.group(1))]


def clean_citations(text: str, valid: int) -> tuple[str, list[int]]:
    """Drop ``[n]`` outside 1..valid (keeping valid ones of ``[1, 7]``); report what went."""
    removed: list[int] = []

    def fix(m: re.Match[str]) -> str:
        nums = numbers(m)
        removed.extend(x for x in nums if not 1 <= x <= valid)
        return "".join(f"[{x}]" for x in nums if 1 <= x <= valid) or "\0"

    cleaned = CITATION.sub(fix, text)
    # a citation removed whole takes the space before it along ("text [7]." → "text.")
    return _REMOVED.sub("", cleaned), removed


def cited_numbers(text: str) -> list[int]:
    """The distinct source numbers a text cites, ascending."""
    return sorted({x for m in CITATION.finditer(text) for x in numbers(m)})


def with_citations(sentence: str, sources: Sequence[int], stop: str = "") -> str:
    """``[n]`` marks placed before a sentence's final stop ("… faster." → "… faster [1]."); ``stop``
    ends a sentence that has none."""
    body = sentence.rstrip(_TAIL_CHARS)  # in code: a pattern searched from every stop costs "。。。…" dearly
    tail = sentence[len(body):]
    space = tail[len(tail.rstrip()):]
    return f"{body} {''.join(f'[{n}]' for n in sources)}{''.join(tail.split()) or stop}{space}"


def neutralise(text: str) -> str:
    """A note's own bracketed numbers (``[21]``) in full-width brackets, so they read as no citation."""
    return CITATION.sub(lambda m: f"［{m.group(1)}］", text)


class CitationStream:
    """Streams text with invalid citations already removed, holding back what may still change.

    Held back: an unfinished ``[1, ..`` (it may turn out invalid) and trailing whitespace (a
    removed citation takes the space before it). Everything before that is cleaned once and
    emitted, so the cost is linear in the length of the answer, not in deltas × length.
    """

    def __init__(self, valid: int) -> None:
        self.valid = valid
        self._parts: list[str] = []
        self._pending = ""  # received, not yet emitted

    @property
    def raw(self) -> str:
        """Everything received, unfiltered."""
        return "".join(self._parts)

    def feed(self, delta: str) -> str:
        """The part of the text so far that is final, not yet sent."""
        self._parts.append(delta)
        self._pending += delta
        cut = self._open_citation()
        return self._emit(self._pending[:cut].rstrip())

    def finish(self) -> str:
        """The rest, once the stream has ended."""
        return self._emit(self._pending)

    def _open_citation(self) -> int:
        start = self._pending.rfind("[", max(0, len(self._pending) - MAX_OPEN_CHARS))
        if start >= 0 and _OPEN_TAIL.fullmatch(self._pending, start + 1):
            return start
        return len(self._pending)

    def _emit(self, safe: str) -> str:
        self._pending = self._pending[len(safe):]
        out, _ = clean_citations(safe, self.valid)
        return out
