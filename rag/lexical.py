"""CJK-aware tokens for BM25: jieba words for Chinese, lower-cased words for Latin script.

Technical tokens survive whole (``kv-cache``, ``4-bit``, ``2601.16725``, ``80%``) and also as
their parts (``kv``, ``cache``), so "KV cache" and "KV-cache" find each other.
"""

from __future__ import annotations

import logging
import re
from functools import cache

TOKENIZER_ID = "cjk-jieba-search/v1"

_TOKEN = re.compile(
    r"(?P<latin>[A-Za-z0-9](?:[A-Za-z0-9]|[-._+/](?=[A-Za-z0-9]))*%?)"
    r"|(?P<cjk>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)"
)
_PARTS = re.compile(r"[-._+/]")

STOPWORDS = frozenset(
    """a an and are as at be been by can did do does for from had has have how i in into is it
    its of on or that the their them then there these this those to was were what when where
    which who whom why will with would about paper papers work note notes my me we our
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


def tokenize(text: str) -> list[str]:
    """Tokens for indexing and for queries alike (the same function on both sides)."""
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        if latin := m.group("latin"):
            word = latin.lower()
            if word not in STOPWORDS:
                out.append(word)
            parts = [p for p in _PARTS.split(word.rstrip("%")) if p]
            if len(parts) > 1 or word.endswith("%"):
                out.extend(p for p in parts if p not in STOPWORDS)
        else:
            out.extend(w for w in _jieba().lcut_for_search(m.group("cjk")) if w not in STOPWORDS)
    return out
