"""CJK-aware tokens for BM25: jieba words for Chinese, lower-cased words for Latin script.

Technical tokens survive whole (``kv-cache``, ``4-bit``, ``2601.16725``, ``80%``) and also as
their parts (``kv``, ``cache``), so "KV cache" and "KV-cache" find each other. Numbers with a unit
are written one way whatever the note or question says (``80 %``, ``８０％`` → ``80%``; ``5.8x``,
``5.8 倍``, ``5.8-fold`` → ``5.8×``), so "cut by 80%" meets "显存直降 80%". :func:`exact_terms`
picks the tokens a question names exactly (numbers with units, model and method names, ids).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import cache
from itertools import pairwise

from rag.text import CJK_CLASS

TOKENIZER_ID = "cjk-jieba-search/v4"

_TOKEN = re.compile(
    r"(?P<latin>[A-Za-z0-9](?:[A-Za-z0-9]|[-._+/](?=[A-Za-z0-9]))*[%×]?)"
    f"|(?P<cjk>[{CJK_CLASS}]+)"
)
_PARTS = re.compile(r"[-._+/]")
_PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:%|percent\b|per cent\b)", re.I)
_TIMES = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:×|[xX](?![A-Za-z0-9])|倍|-?fold\b)")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+%×/-]*")
_ARXIV = re.compile(r"^\d{4}\.\d{4,5}(?:v\d+)?$")

STOPWORDS = frozenset(
    """a an and are as at be been by can did do does for from had has have how i in into is it
    its of on or that the their them then there these this those to was were what when where
    which who whom why will with would about paper papers work note notes my me we our many much
    的 了 是 在 和 与 及 或 也 都 把 被 对 从 而 就 并 其 之 这 那 个 一个 这个 那个 哪 哪篇 哪个 哪些
    什么 怎么 怎样 如何 为什么 吗 呢 吧 啊 么 有 有没有 是否 多少 篇 里 中 上 下 提到 笔记""".split()
)


@cache
def _jieba():  # type: ignore[no-untyped-def]
    """jieba loads a 20 MB dictionary: once per process, quietly."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def normalize(text: str) -> str:
    """Full-width forms folded (NFKC), numbers with a unit written one way."""
    text = unicodedata.normalize("NFKC", text)
    return _TIMES.sub(r"\1×", _PERCENT.sub(r"\1%", text))


def plain(text: str) -> str:
    """Lower case, hyphens and underscores as spaces, whitespace collapsed: how one name is matched
    across its spellings (Self-RAG, self rag; Chain-of-Thought, chain of thought)."""
    return " ".join(re.split(r"[\s_-]+", text.lower())).strip()


def segment(text: str) -> list[str]:
    """Chinese text cut into jieba's words (precise mode: no overlapping sub-words)."""
    return _jieba().lcut(text)


def tokenize(text: str) -> list[str]:
    """Tokens for indexing and for queries alike (the same function on both sides)."""
    out: list[str] = []
    for m in _TOKEN.finditer(normalize(text)):
        if latin := m.group("latin"):
            word = latin.lower()
            if word not in STOPWORDS:
                out.append(word)
            if word[-1] in "%×":  # 80% → also 80; 5.8× → also 5.8
                out.append(word[:-1])
                continue
            parts = [p for p in _PARTS.split(word) if p]
            if len(parts) > 1:
                out.extend(p for p in parts if p not in STOPWORDS)
                out.extend(_versioned(parts))
        else:
            out.extend(w for w in _jieba().lcut_for_search(m.group("cjk")) if w not in STOPWORDS)
    return out


def _versioned(parts: list[str]) -> list[str]:
    """A name and its version written apart, as one word too: "gpt2" of GPT-2, "mamba2" of Mamba-2,
    so that notes writing GPT2 and questions writing GPT-2 (or the other way round) meet."""
    return [a + b for a, b in pairwise(parts) if a.isalpha() and b[:1].isdigit()]


def is_name(word: str) -> bool:
    """Two capitals or letters and a digit: HySparse, MEMIT, Qwen2.5, KV-cache (not "English", not "2026")."""
    has_letter = any(c.isalpha() for c in word)
    return has_letter and (sum(c.isupper() for c in word) >= 2 or any(c.isdigit() for c in word))


def exact_terms(text: str) -> list[str]:
    """The tokens of what a question names exactly: numbers with units, names, arXiv ids.

    A name is a word with two capitals or with letters and digits (HySparse, GRPO, Qwen2.5,
    KV-cache). A compound name also counts by its parts, which is how a note that writes
    "KV Cache" matches a question that writes "KV-cache"; decimals are not split.
    """
    terms: list[str] = []
    for m in _WORD.finditer(normalize(text)):
        word = m.group(0).rstrip(".-+/")
        unit = word[-1:] in ("%", "×")
        if not (unit or _ARXIV.match(word) or is_name(word)):
            continue
        whole = word.lower()
        terms.append(whole)
        if not unit and re.search(r"[-/]", word):
            parts = [p for p in _PARTS.split(whole) if p]
            terms.extend(p for p in parts if len(p) > 1 and not p.isdigit() and p not in STOPWORDS)
            terms.extend(_versioned(parts))
    return list(dict.fromkeys(terms))
