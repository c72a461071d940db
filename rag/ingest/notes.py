"""Notes → entries: a generic, fence-aware markdown segmenter.

A note mixes several styles (a heading per paper, dated logs of bullets, tables of models). The
segmenter finds the repeated *items* of a file without knowing its name:

* the heading group (same level, same shape: emoji prefix, ``N.`` numbering) whose titles are
  many and mostly distinct is the item level; sub-headings repeat the same titles in every item
  (``应用领域``, ``实验效果``) and lose. Inside an item, any heading belongs to the item: notes
  often paste a paper's own ``# Title`` report under the item heading;
* date headings (``## 1.12``, ``## 2026-02-07``) open a day; the top-level bullets under them
  that carry a link or indented children are the items of that day;
* table rows whose first cell is a link are items of their own;
* everything else becomes a section entry, so no text is lost: every non-blank line outside
  front matter belongs to exactly one entry.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import unquote

NOTE_SUFFIXES = (".md", ".markdown", ".txt")
MIN_ITEMS = 4  # fewer distinct headings than this is not a list of items
MIN_DISTINCT_RATIO = 0.7

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?)|([^#\s].*?))[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_BULLET = re.compile(r"^(?:[-*+]|\d{1,3}[.)])[ \t]+(\S.*)$")
_TABLE_ROW = re.compile(r"^\s*\|(.*)\|?\s*$")
_MD_LINK = re.compile(r"(!?)\[([^\]]*)\]\((\S+?)(?:\s+\"[^\"]*\")?\)")
_BARE_URL = re.compile(r"https?://[^\s<>()\[\]\"'，。）]+")
_IMAGE_EXT = re.compile(r"\.(?:png|jpe?g|gif|webp|svg|bmp)(?:\?.*)?$", re.I)
_FULL_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})[-./年](\d{1,2})[-./月](\d{1,2})(?!\d)")
_COMPACT_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")
_DATE_HEADING = re.compile(
    r"^(?:(?P<y>(?:19|20)\d{2})[-./年])?(?P<m>\d{1,2})[-./月](?P<d>\d{1,2})日?$"
)
_LEAD_SYMBOLS = re.compile(r"^[^\w\[(（]+")
_NUMBERED = re.compile(r"^\d+(?:[.)][ \t]+|、\s*)")
_HTML_IMG = re.compile(r"<img\b[^>]*>", re.I)


@dataclass(frozen=True)
class Entry:
    """One item of a note (a paper, a log item, a table row) or a section between items."""

    file: str  # path relative to the corpus, with forward slashes
    title: str
    line_start: int  # 1-based, inclusive
    line_end: int  # 1-based, inclusive
    url: str | None
    date: str | None  # ISO YYYY-MM-DD
    text: str
    kind: str = "item"  # item | row | section

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line_start}-{self.line_end}"


def split_lines(text: str) -> list[str]:
    """Lines as editors and ``grep -n`` number them (``str.splitlines`` also breaks on U+2028)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def clean_inline(text: str) -> str:
    """Markdown inline text → plain text: links to their text, emphasis and code marks dropped."""
    text = _MD_LINK.sub(lambda m: m.group(2) if not m.group(1) else "", text)
    text = re.sub(r"<br\s*/?>", " ", text, flags=re.I)
    text = re.sub(r"(\*\*|__|`)", "", text)
    return re.sub(r"\s+", " ", text).strip()


def clean_title(raw: str) -> str:
    """A heading's text as a title: leading emoji, symbols and list numbering go."""
    plain = clean_inline(raw)
    return _NUMBERED.sub("", _LEAD_SYMBOLS.sub("", plain)).strip() or plain


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


def _fence_mask(lines: list[str]) -> list[bool]:
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


def _front_matter(lines: list[str]) -> tuple[int, dict[str, str]]:
    """(index of the first body line, key → value) for a leading ``---`` block."""
    if not lines or lines[0].strip() != "---":
        return 0, {}
    for i in range(1, min(len(lines), 200)):
        if lines[i].strip() in ("---", "..."):
            meta = {}
            for line in lines[1:i]:
                key, sep, value = line.partition(":")
                if sep:
                    meta[key.strip().lower()] = value.strip()
            return i + 1, meta
    return 0, {}


def parse_heading(line: str) -> tuple[int, str] | None:
    m = _HEADING.match(line)
    if not m:
        return None
    level = len(m.group(1))
    text = m.group(2) if m.group(2) is not None else m.group(3)
    if m.group(3) is not None and level == 1:  # "#tag" is not a heading
        return None
    return level, text or ""


def _shape(title: str) -> tuple[str, bool]:
    """What sibling items share: their leading symbols and whether they are numbered."""
    plain = clean_inline(title)
    prefix = _LEAD_SYMBOLS.match(plain)
    symbols = re.sub(r"[\s*_]", "", prefix.group(0)) if prefix else ""
    rest = plain[prefix.end():] if prefix else plain
    return symbols, bool(_NUMBERED.match(rest))


def normalized_title(title: str) -> str:
    return re.sub(r"[\W\d_]+", "", clean_inline(title)).lower()


def _valid_date(y: int, m: int, d: int) -> str | None:
    try:
        return date(y, m, d).isoformat()
    except ValueError:
        return None


def _date_heading(title: str) -> tuple[int | None, int, int] | None:
    m = _DATE_HEADING.match(clean_title(title).strip())
    if not m:
        return None
    month, day = int(m.group("m")), int(m.group("d"))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return (int(m.group("y")) if m.group("y") else None), month, day


def _file_dates(lines: list[str], head: list[str], meta: dict[str, str]) -> tuple[str | None, int | None]:
    """(date of the whole note, its year) from front matter, then the head of the note.

    A dated log (``## 1.12``) rarely repeats its year, so as a last resort the year of the first
    full date anywhere in the file is taken (note apps stamp it into pasted-image names).
    """
    note_date: str | None = None
    year: int | None = None
    for key in ("date", "created", "period", "month"):
        value = meta.get(key, "")
        if m := _FULL_DATE.search(value):
            note_date = note_date or _valid_date(*map(int, m.groups()))
        if m := _YEAR.search(value):
            year = year or int(m.group(1))
    head_text = "\n".join(head)
    if note_date is None and (m := _FULL_DATE.search(head_text)):
        note_date = _valid_date(*map(int, m.groups()))
    if year is None and (m := _YEAR.search(head_text)):
        year = int(m.group(1))
    if year is None:
        body = unquote("\n".join(lines))  # "Pasted%20image%2020260104.png"
        for pattern in (_FULL_DATE, _COMPACT_DATE):
            for m in pattern.finditer(body):
                if _valid_date(*map(int, m.groups())):
                    year = int(m.group(1))
                    break
            if year:
                break
    if note_date and year is None:
        year = int(note_date[:4])
    return note_date, year


def _item_headings(headings: dict[int, tuple[int, str]], dated: set[int]) -> set[int]:
    """The heading lines of the repeated items, or an empty set when the note has none."""
    groups: dict[tuple[int, str, bool], list[int]] = defaultdict(list)
    for i, (level, title) in headings.items():
        if i not in dated:
            groups[(level, *_shape(title))].append(i)
    best: tuple[int, int] | None = None
    chosen: list[int] = []
    for (level, _, _), members in groups.items():
        distinct = len({normalized_title(headings[i][1]) for i in members})
        if distinct < MIN_ITEMS or distinct / len(members) < MIN_DISTINCT_RATIO:
            continue
        key = (distinct, -level)
        if best is None or key > best:
            best, chosen = key, members
    return set(chosen)


def _is_log_item(lines: list[str], i: int, fenced: list[bool]) -> bool:
    """A top-level bullet under a date heading that names a paper: a link or indented children."""
    m = _BULLET.match(lines[i])
    if not m or fenced[i]:
        return False
    if _MD_LINK.search(m.group(1)) or _BARE_URL.search(m.group(1)):
        return True
    for nxt in lines[i + 1:]:
        if nxt.strip():
            return nxt[0] in " \t" and bool(_BULLET.match(nxt.strip()))
    return False


def _is_link_row(line: str) -> bool:
    m = _TABLE_ROW.match(line)
    if not m:
        return False
    first_cell = m.group(1).split("|", 1)[0]
    return bool(_MD_LINK.search(first_cell) or _BARE_URL.search(first_cell))


def _bullet_title(lines: list[str], i: int) -> str:
    text = _BULLET.match(lines[i]).group(1)  # type: ignore[union-attr]
    title = clean_inline(_BARE_URL.sub(" ", clean_inline(text)))
    if title:
        return title
    for nxt in lines[i + 1:]:  # a bare link: describe it by its first child line
        stripped = nxt.strip()
        if stripped:
            child = _BULLET.match(stripped)
            words = clean_inline(child.group(1) if child else stripped)
            return words[:80] + ("…" if len(words) > 80 else "")
    return first_url(text) or "untitled"


def _row_title(line: str) -> str:
    first_cell = _TABLE_ROW.match(line).group(1).split("|", 1)[0]  # type: ignore[union-attr]
    return clean_inline(first_cell) or (first_url(first_cell) or "row")


def split_entries(text: str, file: str) -> list[Entry]:
    """Split one note's text into entries; ``file`` is its path relative to the corpus."""
    lines = split_lines(text)
    body_start, meta = _front_matter(lines)
    fenced = _fence_mask(lines)
    headings: dict[int, tuple[int, str]] = {}
    for i in range(body_start, len(lines)):
        if not fenced[i] and (h := parse_heading(lines[i])):
            headings[i] = h
    dated = {i: d for i, (_, t) in headings.items() if (d := _date_heading(t))}
    if len(dated) < 2:
        dated = {}
    items = _item_headings(headings, set(dated))
    first_structure = min(items | set(dated), default=None)
    head_end = first_structure if first_structure is not None else min(len(lines), body_start + 10)
    note_date, year = _file_dates(lines, lines[body_start:head_end], meta)

    # boundaries: line → (kind, title, date)
    spans: list[tuple[int, str, str, str | None]] = []
    in_log = False  # under a date heading
    section: tuple[str, str | None] | None = None  # enclosing section, for rows and text after rows
    after_row = False
    last_month: int | None = None
    current_date = note_date
    for i in range(body_start, len(lines)):
        line = lines[i]
        boundary: tuple[str, str, str | None] | None = None
        if i in dated:
            y, m, d = dated[i]
            if y is None and year is not None:
                if last_month is not None and m < last_month - 6:
                    year += 1  # a log running from December into January
                y = year
            last_month = m
            current_date = _valid_date(y, m, d) if y else None
            in_log = True
            boundary = ("section", clean_title(headings[i][1]), current_date)
        elif i in items:
            in_log, current_date = False, note_date
            boundary = ("item", clean_title(headings[i][1]), note_date)
        elif i in headings and (not items or i < min(items)):
            in_log, current_date = False, note_date
            boundary = ("section", clean_title(headings[i][1]), note_date)
        elif in_log and not fenced[i] and _is_log_item(lines, i, fenced):
            boundary = ("item", _bullet_title(lines, i), current_date)
        elif section is not None and not fenced[i] and _is_link_row(line):
            boundary = ("row", _row_title(line), section[1])
        elif after_row and section is not None:
            boundary = ("section", section[0], section[1])
        if boundary is not None:
            spans.append((i, *boundary))
            after_row = boundary[0] == "row"
            if boundary[0] == "section":
                section = (boundary[1], boundary[2])
            elif boundary[0] == "item":
                section = None
        elif not spans and line.strip():  # text before any structure: a preamble section
            title = clean_title(line)[:80] or Path(file).stem
            spans.append((i, "section", title, note_date))
            section = (title, note_date)

    entries = []
    for n, (start, kind, title, entry_date) in enumerate(spans):
        stop = spans[n + 1][0] if n + 1 < len(spans) else len(lines)
        end = stop - 1
        while end > start and not lines[end].strip():
            end -= 1
        if not lines[start].strip() and end == start:
            continue
        body = "\n".join(lines[start:end + 1])
        entries.append(Entry(file=file, title=title or Path(file).stem, line_start=start + 1,
                             line_end=end + 1, url=first_url(body), date=entry_date, text=body,
                             kind=kind))
    return entries
