"""Structured answers: the model returns claims, each with the numbers of the sources that state it.

Asked through a JSON schema (``response_format: json_schema``) whose source ids are an enum of
the sources actually sent, so a constrained decoder (OpenAI structured outputs, llama.cpp's
grammar) cannot even write a citation to a source it was not given. The schema also carries
``covered``: the model judges in the same call whether the sources answer the question at all.

The reply is parsed as it streams (:class:`ClaimParser`), so each claim can be shown the moment
its object closes, rendered as sentences ending in ``[n]`` (:func:`claim_sentences`). A claim with
no valid source is dropped here and never reaches the user.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .citations import CITATION, with_citations

#: A small local model's grammar stops after this many claims: a short answer, and no endless loop.
MAX_CLAIMS = 6
_SENTENCES = re.compile(r"(?<=[。！？!?；])|(?<=[.;])\s+")
#: A list number or bullet a model starts a claim with ("1. …"): not part of the claim.
_LIST_MARK = re.compile(r"^(?:\d{1,2}[.)、]|[-*•])\s*(?=\D)")
#: A claim says something only with a letter or a character in it ("..." does not).
_WORD = re.compile(r"[^\W\d_]")


def response_format(n_sources: int, bounded: bool = False) -> dict:
    """The OpenAI ``response_format`` asking for ``{"covered": bool, "claims": [{text, sources}]}``.

    ``bounded`` adds ``minItems``/``maxItems`` (a source per claim, at most MAX_CLAIMS claims),
    which llama.cpp's grammar enforces and a small model needs, but which are outside the subset
    every provider's strict mode takes; elsewhere the answer layer drops a claim without a source.
    """
    ids = {"type": "array", "items": {"type": "integer", "enum": list(range(1, n_sources + 1))}}
    claims: dict = {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                               "required": ["text", "sources"],
                                               "properties": {"text": {"type": "string"}, "sources": ids}}}
    if bounded:
        ids["minItems"] = 1
        claims["maxItems"] = MAX_CLAIMS
    schema = {"type": "object", "additionalProperties": False, "required": ["covered", "claims"],
              "properties": {"covered": {"type": "boolean"}, "claims": claims}}
    return {"type": "json_schema", "json_schema": {"name": "cited_claims", "strict": True, "schema": schema}}


@dataclass(frozen=True)
class Claim:
    text: str  # the claim's own words, with any [n] the model wrote inside them removed
    sources: tuple[int, ...]  # valid source numbers, ascending


def make_claim(obj: object, valid: int) -> Claim | None:
    """A claim from one parsed object; None when it has no words or no source in 1..valid."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not isinstance(obj.get("sources"), list):
        return None
    text = _LIST_MARK.sub("", " ".join(CITATION.sub("", obj["text"]).split()))
    sources = tuple(sorted({s for s in obj["sources"]
                            if isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= valid}))
    return Claim(text, sources) if _WORD.search(text) and sources else None


def claim_sentences(claim: Claim, lang: str) -> list[str]:
    """The claim as sentences, each with the claim's citations before its stop ("… 12% faster [1].");
    a claim of two sentences cites both, so that no sentence reaches the user without its source."""
    stop = "。" if lang == "zh" else "."
    return [with_citations(p.strip(), claim.sources, stop) for p in _SENTENCES.split(claim.text) if p.strip()]


def separator(lang: str) -> str:
    """Between sentences: Chinese runs on, English takes a space."""
    return "" if lang == "zh" else " "


class ClaimParser:
    """Reads the JSON reply as it streams and hands out each claim object once it is complete.

    A small scanner (strings, escapes, nesting) finds where each object of the top-level
    ``claims`` array ends; that object alone is then parsed. ``covered`` is known as soon as its
    value is written (the schema puts it first).
    """

    def __init__(self) -> None:
        self.raw = ""
        self.covered: bool | None = None
        self._pos = 0
        self._stack: list[str] = []
        self._in_string = self._escape = False
        self._key = ""  # the last key read at the top level
        self._string_start = -1
        self._value_start = -1  # where a top-level scalar value or a claim object started

    @property
    def is_json(self) -> bool | None:
        """True once the reply opens like a JSON object, False if it starts with anything else."""
        head = self.raw.lstrip()
        return None if not head else head[0] == "{"

    def feed(self, delta: str) -> list[object]:
        """Complete claim objects (parsed, not yet validated) that ``delta`` finished."""
        self.raw += delta
        out: list[object] = []
        while self._pos < len(self.raw):
            c, i = self.raw[self._pos], self._pos
            self._pos += 1
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif c == "\\":
                    self._escape = True
                elif c == '"':
                    self._in_string = False
                    if len(self._stack) == 1 and self._string_start >= 0:
                        self._key = _loads(self.raw[self._string_start:i + 1]) or ""
                continue
            if c == '"':
                self._in_string = True
                self._string_start = i if len(self._stack) == 1 else -1
            elif c in "{[":
                if c == "{" and self._stack == ["{", "["] and self._key == "claims":
                    self._value_start = i
                self._stack.append(c)
            elif c in "}]":
                if self._stack:
                    self._stack.pop()
                if c == "}" and self._stack == ["{", "["] and self._value_start >= 0:
                    out.append(_loads(self.raw[self._value_start:i + 1]))
                    self._value_start = -1
            elif c == ":" and len(self._stack) == 1:
                self._value_start = i + 1
            elif c in ",}" or (c.isspace() and self._stack == ["{"]):
                self._scalar(i)
        return out

    def _scalar(self, end: int) -> None:
        """Read ``covered`` when its value (true/false) has just ended at ``end``."""
        if len(self._stack) == 1 and self._key == "covered" and self._value_start >= 0:
            value = self.raw[self._value_start:end].strip()
            if value in ("true", "false"):
                self.covered = value == "true"
                self._value_start = -1

    def result(self) -> dict | None:
        """The whole reply parsed, once it has ended; None if it is not one JSON object."""
        obj = _loads(self.raw)
        return obj if isinstance(obj, dict) else None


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
