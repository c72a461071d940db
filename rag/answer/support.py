"""Does the cited source say it? A check of each sentence of an answer against the entries it cites.

A model's citation is a claim too: users of every assistant see answers that cite a note and
then say something it does not. Checked cheaply, with no model: the numbers, names and ids of a
sentence must occur in a cited entry (a wrong number is the costliest error and the easiest to
catch); a sentence without any is judged by the share of its words found there. A sentence that
cites nothing but plainly restates one source gets that citation (post-hoc attribution).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from rag.ingest.notes import Entry
from rag.text import lexical

from .citations import CITATION, cited_numbers, with_citations

#: Share of a sentence's words that its cited entries must hold when it names no number or name ...
MIN_SUPPORT = 0.5
#: ... and when it does (and they are all there): the words must still tie it to the entry, or a
#: bare "1.0 [1]" would pass on any entry that writes a 1.
MIN_KEYED_SUPPORT = 0.2
#: An uncited sentence is attributed to the one source holding all its numbers and names (and, when
#: it has none, this share of its words), unless another comes within ATTRIBUTE_MARGIN of it.
MIN_ATTRIBUTE = 0.6
ATTRIBUTE_MARGIN = 0.2
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z][\w.+/-]*[\w+]|[A-Za-z]")
_SEPARATORS = re.compile(r"[\s\-_/.·]+")


@dataclass(frozen=True)
class Source:
    """An entry as the check reads it: folded text, its numbers, its word tokens."""

    folded: str
    numbers: frozenset[str]
    tokens: frozenset[str]


@lru_cache(maxsize=256)
def _source(title: str, text: str) -> Source:
    plain = lexical.normalize(f"{title}\n{text}")
    return Source(_fold(plain), frozenset(_numbers(plain)), frozenset(lexical.tokenize(plain)))


def source_of(entry: Entry) -> Source:
    return _source(entry.title, entry.text)


def _fold(text: str) -> str:
    """Lower case, separators gone: "KV-cache", "KV cache" and "kv_cache" read alike."""
    return _SEPARATORS.sub("", text.lower())


def _numbers(text: str) -> set[str]:
    """Numbers as written, trailing zeros of decimals dropped ("1.50" is "1.5")."""
    return {n.rstrip("0").rstrip(".") if "." in n else n for n in _NUMBER.findall(text)}


def key_terms(sentence: str) -> tuple[set[str], set[str]]:
    """The numbers and the names (HySparse, Qwen2.5, KV-cache) of a sentence, its citations aside."""
    plain = lexical.normalize(CITATION.sub(" ", sentence))
    names = {_fold(w) for w in _WORD.findall(plain) if lexical.is_name(w) and not w.isdigit()}
    return _numbers(plain), names


def _words(sentence: str) -> set[str]:
    """Content tokens, numbers aside (they are checked on their own)."""
    return {t for t in lexical.tokenize(CITATION.sub(" ", sentence)) if not _NUMBER.fullmatch(t.rstrip("%×"))}


@dataclass(frozen=True)
class Verdict:
    keys_found: bool  # every number and name occurs in the sources read
    has_keys: bool
    overlap: float  # share of the sentence's words the sources hold (0 when it has none)

    @property
    def supported(self) -> bool:
        return self.keys_found and self.overlap >= (MIN_KEYED_SUPPORT if self.has_keys else MIN_SUPPORT)


def judge(sentence: str, sources: Sequence[Source]) -> Verdict:
    """How far ``sources`` (together) back ``sentence``."""
    numbers, names = key_terms(sentence)
    found_numbers = set().union(*(s.numbers for s in sources)) if sources else set()
    keys_found = numbers <= found_numbers and all(any(n in s.folded for s in sources) for n in names)
    words = _words(sentence)
    held = set().union(*(s.tokens for s in sources)) if sources else set()
    overlap = len(words & held) / len(words) if words else 0.0  # numbers alone say nothing
    return Verdict(keys_found, bool(numbers or names), overlap)


def supported(sentence: str, entries: Sequence[Entry]) -> bool:
    """Whether the cited entries back the sentence (see the module's rule)."""
    return judge(sentence, [source_of(e) for e in entries]).supported


def attribute(sentence: str, entries: Sequence[Entry]) -> int | None:
    """The source number (1-based) that alone clearly backs an uncited sentence, else None."""
    scores = []
    for n, entry in enumerate(entries, start=1):
        v = judge(sentence, [source_of(entry)])
        if v.keys_found and (v.has_keys or v.overlap >= MIN_ATTRIBUTE):
            scores.append((v.overlap, n))
    scores.sort(reverse=True)
    if not scores or (len(scores) > 1 and scores[0][0] - scores[1][0] < ATTRIBUTE_MARGIN):
        return None
    return scores[0][1]


def needs_source(sentence: str) -> bool:
    """Whether a sentence states something checkable (a lead-in such as "Two papers do:" does not)."""
    numbers, names = key_terms(sentence)
    return bool(numbers or names) or len(_words(sentence)) >= 4


def check_sentence(sentence: str, entries: Sequence[Entry]) -> tuple[str, bool]:
    """The sentence (with an attributed ``[n]`` added when it cited nothing) and whether it is
    supported. ``entries`` are the sources the model read, source n at index n - 1."""
    cited = [n for n in cited_numbers(sentence) if 1 <= n <= len(entries)]
    if cited:
        return sentence, supported(sentence, [entries[n - 1] for n in cited])
    if not needs_source(sentence):
        return sentence, True
    n = attribute(sentence, entries)
    if n is None:
        return sentence, False
    return with_citations(sentence, [n]), True
