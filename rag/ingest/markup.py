"""Markdown as researchers' note tools write it, read line by line: headings, fences, links,
``[[wikilinks]]``, callouts and inline marks, so the segmenter and the answerer agree on what a
line says."""

from __future__ import annotations

import re

#: The closing "##" and spaces are cut in code (:func:`parse_heading`): a lazy group before two
#: optional runs backtracks without end on a heading padded with thousands of spaces.
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*)|([^#\s].*))$")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
#: Link text and target are bounded and possessive, so a line of "[[[[…" costs linear time, not quadratic.
_MD_LINK = re.compile(r"(!?)\[([^\]\n]{0,500}+)\]\((\S{1,500}?)(?:\s+\"[^\"\n]{0,500}+\")?\)")
#: ``[[target]]``, ``[[target|alias]]``, ``[[target#heading]]`` and ``![[embed]]``.
_WIKILINK = re.compile(r"!?\[\[([^\]|#\n]{0,300}+)(?:#[^\]|\n]{0,300}+)?(?:\|([^\]\n]{0,300}+))?\]\]")
_CALLOUT = re.compile(r"\[!\w+\][+-]?")
_BARE_URL = re.compile(r"https?://[^\s<>()\[\]\"'，。）]+")
_IMAGE_EXT = re.compile(r"\.(?:png|jpe?g|gif|webp|svg|bmp)(?:\?.*)?$", re.I)
_TAG_PREFIX = re.compile(r"^(?:[\[【][^\]】]{1,30}[\]】]\s*)+")
_LEAD_SYMBOLS = re.compile(r"^[^\w\[(（]+")
_NUMBERED = re.compile(r"^\d+(?:[.)][ \t]+|、\s*)")
_HTML_IMG = re.compile(r"<img\b[^>]*>", re.I)


def split_lines(text: str) -> list[str]:
    """Lines as editors and ``grep -n`` number them (``str.splitlines`` also breaks on U+2028)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _wikilink_text(m: re.Match) -> str:
    target, alias = m.group(1), m.group(2)
    return (alias or target.rsplit("/", 1)[-1]).strip()


def wikilinks(text: str) -> tuple[str, ...]:
    """The notes a text links to with ``[[…]]``, as written (path and all), in order."""
    return tuple(dict.fromkeys(t.strip() for t, _ in _WIKILINK.findall(text) if t.strip()))


def clean_inline(text: str) -> str:
    """Markdown inline text → plain text: links and wikilinks to their text, marks dropped."""
    text = _WIKILINK.sub(_wikilink_text, text)
    text = _MD_LINK.sub(lambda m: m.group(2) if not m.group(1) else "", text)
    text = _CALLOUT.sub(" ", text)
    text = re.sub(r"<br\s*/?>", " ", text, flags=re.I)
    text = re.sub(r"(\*\*|__|`)", "", text)
    return re.sub(r"\s+", " ", text).strip()


_CJK_LABEL = re.compile(r"^\s*【([^】\n]{1,20})】")
_ORDINAL = re.compile(r"[一二三四五六七八九十\d]{1,3}")


_RULE_CHARS = "-=~*_"
_TAG_WORD = re.compile(r"#[A-Za-z\u4e00-\u9fff][\w\u4e00-\u9fff/-]*+")


def _without_tags(title: str) -> str:
    """The title without the ``#tags`` it ends with (in code, not a regex searched from every space)."""
    words = title.split()
    kept = len(words)
    while kept and _TAG_WORD.fullmatch(words[kept - 1]):
        kept -= 1
    return " ".join(words[:kept]) if kept < len(words) else title


def _without_rules(title: str) -> str:
    """The title without runs of three or more rule characters at either end."""
    for strip in (str.lstrip, str.rstrip):
        bare = strip(title, _RULE_CHARS)
        if len(title) - len(bare) >= 3:
            title = bare.strip()
    return title


def clean_title(raw: str) -> str:
    """A heading's text as a title: leading emoji, symbols and list numbering go; a leading
    "【一】" numbers it and goes too, and a "【写在最后】" label keeps its words."""
    plain = clean_inline(raw)
    if label := _CJK_LABEL.match(plain):
        rest = plain[label.end():].strip()
        plain = rest if rest and _ORDINAL.fullmatch(label.group(1)) else f"{label.group(1)} {rest}".strip()
    plain = _without_tags(plain) or plain  # "StreamingLLM #paper": the tag is the entry's, not its name
    plain = _without_rules(plain) or plain  # "--- wav2vec 2.0 ---"
    return _NUMBERED.sub("", _LEAD_SYMBOLS.sub("", plain)).strip() or plain


def untagged(title: str) -> str:
    """The title without its leading bracketed tags ("[小米] HySparse：…" → "HySparse：…")."""
    return _TAG_PREFIX.sub("", title).strip()


def title_head(title: str) -> str:
    """What a title calls its subject: the part before its first colon ("HySparse" of "[小米]
    HySparse：…", "Back to Basics" of "Back to Basics: Revisiting …"), else its first three words."""
    bare = untagged(title)
    head = re.split(r"[:：]", bare, maxsplit=1)[0].strip()
    return head if head != bare else " ".join(bare.split()[:3])


def normalized_title(title: str) -> str:
    return re.sub(r"[\W\d_]+", "", clean_inline(title)).lower()


def title_shape(title: str) -> tuple[str, bool]:
    """What sibling items share: their leading symbols and whether they are numbered."""
    plain = clean_inline(title)
    prefix = _LEAD_SYMBOLS.match(plain)
    symbols = re.sub(r"[\s*_]", "", prefix.group(0)) if prefix else ""
    rest = plain[prefix.end():] if prefix else plain
    return symbols, bool(_NUMBERED.match(rest))


def has_link(text: str) -> bool:
    return bool(_MD_LINK.search(text) or _BARE_URL.search(text))


def strip_urls(text: str) -> str:
    return _BARE_URL.sub(" ", text)


def first_url(text: str) -> str | None:
    """The first link of a text that is not an image."""
    text = _HTML_IMG.sub(lambda m: " " * len(m.group(0)), text)
    found: list[tuple[int, str]] = []
    for m in _MD_LINK.finditer(text):
        if not m.group(1) and m.group(3).startswith(("http://", "https://")):
            found.append((m.start(), m.group(3)))
    images = [(m.start(), m.end()) for m in _MD_LINK.finditer(text) if m.group(1)]
    for m in _BARE_URL.finditer(text):
        inside_image = any(a <= m.start() < b for a, b in images)
        if not inside_image and not _IMAGE_EXT.search(m.group(0)):
            found.append((m.start(), m.group(0).rstrip(".,;:*")))
    return min(found)[1] if found else None


def fence_mask(lines: list[str]) -> list[bool]:
    """True for lines inside (or opening/closing) a fenced code block; unterminated runs to EOF."""
    mask = [False] * len(lines)
    opener: str | None = None
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if opener is None:
            if m:
                opener = m.group(1)
                mask[i] = True
        else:
            mask[i] = True
            if m and m.group(1)[0] == opener[0] and len(m.group(1)) >= len(opener) \
                    and not line.strip()[len(m.group(1)):].strip():
                opener = None
    return mask


def parse_heading(line: str) -> tuple[int, str] | None:
    m = _HEADING.match(line)
    if not m:
        return None
    level = len(m.group(1))
    text = (m.group(2) if m.group(2) is not None else m.group(3)).rstrip(" \t")
    if m.group(3) is not None and level == 1:  # "#tag" is not a heading
        return None
    bare = text.rstrip("#")
    if bare != text and (not bare or bare[-1] in " \t"):  # "## Title ##": a closing sequence
        text = bare.rstrip(" \t")
    return level, text
