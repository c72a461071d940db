"""A cross-lingual glossary mined from the notes themselves, to widen BM25 across languages.

The notes pair Chinese terms with English ones all the time — "稀疏自动编码器（SAE）", "共形预测
(conformal prediction)", "Sparse Attention（稀疏注意力）". An English question about SAE shares no
BM25 token with an entry that writes 稀疏自动编码器, and the other way round; read from the loaded
entries, those pairs let the lexical side search the question's terms in both languages. The
multilingual embedders already cross languages by meaning; this adds the exact words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rag.text import CJK_CLASS, lexical

#: Chinese words before the parenthesis that make the term ("本文首次将稀疏自动编码器" → 稀疏自动编码器).
ZH_WORDS = 2
TAIL_CHARS = 24  # of the run, segmented to find those words
#: Up to four Latin words, each starting at a word boundary and of bounded length: a search that may
#: start inside a 30 kB run of letters must fail at once there, not rescan the run (quadratic).
_LATIN = r"(?<![A-Za-z0-9.'+-])[A-Za-z][A-Za-z0-9.'+-]{0,40}(?: [A-Za-z0-9][A-Za-z0-9.'+-]{0,40}){0,3}"
_ZH_EN = re.compile(rf"(?<![{CJK_CLASS}])([{CJK_CLASS}]{{2,}}+)\s*[（(]\s*({_LATIN})\s*[)）]")
_EN_ZH = re.compile(rf"({_LATIN})\s*[（(]\s*([{CJK_CLASS}]{{2,8}})\s*[)）]")


def _zh_term(run: str, words: int) -> str:
    """The last ``words`` words of a Chinese run: the term a parenthesis glosses."""
    return "".join(lexical.segment(run[-TAIL_CHARS:])[-words:])  # the tail: a 20 000-character run costs jieba a second


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(lexical.tokenize(text)))


@dataclass(frozen=True)
class Glossary:
    """Term (its tokens) → the other language's tokens for it, both directions."""

    terms: Mapping[tuple[str, ...], frozenset[str]]

    @classmethod
    def mine(cls, texts: Iterable[str], zh_words: int = ZH_WORDS) -> Glossary:
        """Every "中文（English）" and "English（中文）" pair of the texts."""
        terms: dict[tuple[str, ...], set[str]] = {}

        def add(zh: str, en: str) -> None:
            zh_tokens, en_tokens = _tokens(zh), _tokens(en)
            if zh_tokens and en_tokens:
                terms.setdefault(zh_tokens, set()).update(en_tokens)
                terms.setdefault(en_tokens, set()).update(zh_tokens)

        for text in texts:
            for m in _ZH_EN.finditer(text):
                add(_zh_term(m.group(1), zh_words), m.group(2))
            for m in _EN_ZH.finditer(text):
                add(m.group(2), m.group(1))
        return cls({k: frozenset(v) for k, v in terms.items()})

    def expand(self, tokens: Sequence[str]) -> tuple[str, ...]:
        """The glossary's tokens for every term whose tokens all occur in ``tokens``, minus those."""
        have = set(tokens)
        extra = (t for term, other in self.terms.items() if have.issuperset(term) for t in sorted(other))
        return tuple(dict.fromkeys(t for t in extra if t not in have))
