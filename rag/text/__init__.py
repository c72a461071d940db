"""Text helpers every stage shares: what counts as Chinese, a question's language, markdown → plain.

Kept in one place so the segmenter, the tokenizer, snippets and answers agree on the same ranges
and rules (they used to carry four different CJK ranges).
"""

from __future__ import annotations

import re

#: CJK Unified Ideographs with Extension A and the compatibility block.
CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK = re.compile(f"[{CJK_CLASS}]")

#: Link text holds no bracket, so a run of "[" is read once, not from each one to the end.
_IMAGE = re.compile(r"!\[[^\[\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\[\]]*)\]\([^)]*\)")
_MARKUP = re.compile(r"<br\s*/?>|[#*`>|]+")
_SPACE = re.compile(r"\s+")
_LATIN_LETTER = re.compile(r"[A-Za-z]")


def is_cjk(ch: str) -> bool:
    return bool(CJK.match(ch))


def language(text: str) -> str:
    """``zh`` when the text has Chinese in it (mixed questions are answered in Chinese), else ``en``."""
    return "zh" if len(CJK.findall(text)) >= 2 else "en"


def written_language(text: str) -> str:
    """``zh`` when Chinese makes up a fair share of what a text says (a character counts as a word,
    four Latin letters as one), else ``en``: an English note quoting one Chinese term is English,
    where :func:`language` would call a question with two Chinese characters Chinese."""
    zh = len(CJK.findall(text))
    return "zh" if zh and zh >= 0.3 * (zh + len(_LATIN_LETTER.findall(text)) / 4) else "en"


def markdown_to_plain(text: str) -> str:
    """Markdown as one line of plain text: images dropped, links to their text, markup to spaces."""
    plain = _LINK.sub(r"\1", _IMAGE.sub("", text))
    return _SPACE.sub(" ", _MARKUP.sub(" ", plain)).strip()
