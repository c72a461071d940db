"""Notes → entries: a generic, fence-aware segmenter for the notes researchers keep.

Structure is read from the content, never from a file name or the tool that wrote it:

* a note **about one thing** — front matter that names a paper (authors, an id, a link), or one
  title heading whose sub-headings are parts (Summary, Method, 实验, My take: :mod:`.sections`) —
  is one item; its sections are parts of it, and its front matter (title, aliases, tags, authors,
  date) describes the item;
* the heading group (same level, same shape: emoji prefix, ``N.`` numbering) whose titles are
  many and mostly distinct is the item level; sub-headings repeat the same titles in every item
  (``应用领域``, ``实验效果``) and lose. Inside an item, any heading belongs to the item. A part
  heading never opens an entry under another heading: "Key results" belongs to what is above it;
* date headings (``## 1.12``, ``## 2026-02-07``) open a day; the top-level bullets under them
  that carry a link or indented children are the items of that day;
* table rows with a link in any cell are items of their own;
* an outline (a note of bullets, as Logseq writes): each top-level bullet with its children is an
  item, its ``key:: value`` properties its metadata;
* plain text of paragraphs (a reading log): each paragraph is an entry, an item when its first
  line is a title (a date, or a short line above prose);
* everything else becomes a section entry, so no text is lost: every non-blank line outside
  front matter and page properties belongs to exactly one entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

from . import org
from .bibtex import bibtex_spans
from .blocks import (
    BULLET,
    PATH_SEP,
    TABLE_ROW,
    Span,
    bullet_title,
    card_spans,
    has_children,
    outline_spans,
    paragraph_spans,
    ruled_spans,
)
from .dates import COMPACT_DATE, FULL_DATE, YEAR, date_heading, leading_date, valid_date
from .headings import heading_properties, item_headings, one_thing_title
from .lists import listed_things
from .markup import (
    clean_inline,
    clean_title,
    fence_mask,
    first_url,
    has_link,
    parse_heading,
    split_lines,
    strip_urls,
    wikilinks,
)
from .meta import (
    NoteMeta,
    front_matter,
    inline_tags,
    is_property,
    key_value_block,
    merge_fields,
    meta_from_mapping,
    properties,
    property_fields,
)
from .sections import is_overview, is_part_heading, title_names
from .tables import TABLE_RULE, TableHeader, delimited_spans, table_spans

NOTE_SUFFIXES = (".md", ".markdown", ".txt", ".org")
MIN_LISTBULLETS = 4  # a heading's text that is this many bullets of names or links is a list
MAX_NAME_CHARS = 60  # a bullet that names a paper, with a word or two on it

_SHORT_ALIAS = re.compile(r"^[\w.+-]+(?: [\w.+-]+){0,2}$")


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
    tags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    links: tuple[str, ...] = ()  # [[wikilink]] targets
    context: str = ""  # where it sits ("Digest › 2025-02-03"), a table row's header
    #: Its fields as written (key, value): its own ``key:: value`` lines, then its note's front matter.
    properties: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:  # stores hand back lists; the entry stays hashable
        for name in ("tags", "aliases", "authors", "links"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value or ()))
        if not isinstance(self.properties, tuple) or any(not isinstance(p, tuple) for p in self.properties):
            object.__setattr__(self, "properties", tuple((str(k), str(v)) for k, v in self.properties or ()))

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line_start}-{self.line_end}"


def _file_dates(lines: list[str], head: list[str], meta: NoteMeta) -> tuple[str | None, int | None]:
    """(date of the whole note, its year) from its metadata, then the head of the note.

    A dated log (``## 1.12``) rarely repeats its year, so as a last resort the year of the first
    full date anywhere in the file is taken (note apps stamp it into pasted-image names).
    """
    note_date, year = meta.date, meta.year
    if note_date is None and meta.title and (m := FULL_DATE.search(meta.title)):  # a journal page
        note_date = valid_date(*map(int, m.groups()))
    head_text = "\n".join(head)
    if note_date is None and (m := FULL_DATE.search(head_text)):
        note_date = valid_date(*map(int, m.groups()))
    if year is None and (m := YEAR.search(head_text)):
        year = int(m.group(1))
    if year is None:
        body = unquote("\n".join(lines))  # "Pasted%20image%2020260104.png"
        for pattern in (FULL_DATE, COMPACT_DATE):
            for m in pattern.finditer(body):
                if valid_date(*map(int, m.groups())):
                    year = int(m.group(1))
                    break
            if year:
                break
    if note_date and year is None:
        year = int(note_date[:4])
    return note_date, year


def _display_title(title: str, aliases: tuple[str, ...]) -> str:
    """A paper's title with its short name in front ("HyDE: Precise Zero-Shot …") when the title
    does not say it: people ask for the short name, the source card shows both."""
    short = next((a for a in aliases if _SHORT_ALIAS.match(a) and len(a) <= 24), None)
    if short and short.lower() not in title.lower():
        return f"{short}: {title}" if title else short
    return title


def _is_log_item(lines: list[str], i: int, fenced: list[bool]) -> bool:
    """A top-level bullet under a date heading that names a paper: a link or indented children."""
    m = BULLET.match(lines[i])
    return bool(m) and not fenced[i] and (has_link(m.group(1)) or has_children(lines, i))


def _is_name_list(body: list[str]) -> bool:
    """A heading over nothing but a flat list of names or links (a topic page's "to read"): it
    points at papers, it describes none, so it is a section and not an item."""
    lines = [line for line in body[1:] if line.strip()]
    if any(line[0] in " \t" for line in lines):
        return False  # nested bullets describe something
    bullets = [clean_inline(strip_urls(m.group(1))) for line in lines if (m := BULLET.match(line))]
    if len(bullets) < MIN_LISTBULLETS or len(bullets) * 5 < len(lines) * 4:
        return False
    return sum(len(b) <= MAX_NAME_CHARS for b in bullets) * 10 >= len(bullets) * 7


def _page_properties(lines: list[str], start: int) -> tuple[int, NoteMeta]:
    """Logseq page properties (``title:: …``, ``tags:: …``) at the top of the body."""
    end = start
    while end < len(lines) and is_property(lines[end]) and not BULLET.match(lines[end].lstrip()):
        end += 1
    if end == start:
        return start, NoteMeta()
    return end, meta_from_mapping(properties(lines[start:end]))


def _heading_spans(lines: list[str], start: int, fenced: list[bool], headings: dict[int, tuple[int, str]],
                   dated: dict[int, tuple[int | None, int, int]], items: set[int], note_date: str | None,
                   year: int | None, note_title: str | None) -> list[Span]:
    """Entries of a note with headings: items, days of a log, table rows, sections."""
    spans: list[Span] = []
    in_log = False  # under a date heading
    section: tuple[str, str | None] | None = None  # enclosing section, for rows and text after rows
    after_row = False
    last_month: int | None = None
    current_date = note_date
    first_title = clean_title(headings[min(headings)][1])
    # the headings above the current line, under the note's front-matter title when it has its own
    stack: list[tuple[int, str]] = [(0, note_title)] if note_title and note_title != first_title else []
    header = TableHeader()  # the header row of the table being read
    first_item = min(items, default=None)
    for i in range(start, len(lines)):
        line = lines[i]
        span: Span | None = None
        context = ""
        heading = headings.get(i)
        if heading:
            while stack and stack[-1][0] >= heading[0]:
                stack.pop()
            context = PATH_SEP.join(t for _, t in stack)
            stack.append((heading[0], clean_title(heading[1])))
        if i in dated:
            y, m, d = dated[i]
            if y is None and year is not None:
                if last_month is not None and m < last_month - 6:
                    year += 1  # a log running from December into January
                y = year
            last_month = m
            current_date = valid_date(y, m, d) if y else None
            in_log = True
            span = Span(i, "section", clean_title(heading[1]), current_date, context)
        elif i in items:
            in_log, current_date = False, note_date
            title = clean_title(heading[1])
            span = Span(i, "item", title, leading_date(title) or note_date, context)
        elif heading and (first_item is None or i < first_item):
            if is_part_heading(heading[1]) and spans and spans[-1].start in headings:
                if first_item is None and spans[-1].kind == "section" and not leading_date(spans[-1].title):
                    spans[-1].kind = "item"  # "PaperA" with its "Summary" and "My take" is a thing
                continue
            in_log, current_date = False, note_date
            title = clean_title(heading[1])
            span = Span(i, "section", title, leading_date(title) or note_date, context)
        elif in_log and not fenced[i] and _is_log_item(lines, i, fenced):
            day = PATH_SEP.join(t for _, t in stack)
            span = Span(i, "item", bullet_title(lines, i), current_date, day)
        elif section is not None and not fenced[i] and header.is_row(line):
            span = header.row(i, line, section[1], section[0])
        elif after_row and section is not None:
            span = Span(i, "section", section[0], section[1])
        elif not fenced[i] and TABLE_RULE.match(line) and i > start and TABLE_ROW.match(lines[i - 1]):
            header = TableHeader.of(lines[i - 1])
        if span is not None:
            spans.append(span)
            after_row = span.kind == "row"
            if span.kind == "section":
                section = (span.title, span.date)
            elif span.kind == "item":
                section = None
        elif not spans and line.strip():  # text before any structure: a preamble section
            title = clean_title(line)[:80] or note_title or ""
            spans.append(Span(i, "section", title, note_date))
            section = (title, note_date)
    return spans


def split_entries(text: str, file: str, warn: Callable[[str], None] | None = None) -> list[Entry]:
    """Split one note's text into entries; ``file`` is its path relative to the corpus. ``warn``
    hears what the reading says about the note (a front matter read as text, and why)."""
    written = split_lines(text)
    is_org = org.is_org(written)
    lines = org.as_markdown(written) if is_org else written  # structure read from Markdown
    body_start, meta = front_matter(lines)
    if meta.problem and warn is not None:
        warn(meta.problem)
    body_start, props = _page_properties(lines, body_start)
    meta = meta.merged(props)
    fenced = fence_mask(lines)
    headings: dict[int, tuple[int, str]] = {}
    for i in range(body_start, len(lines)):
        if not fenced[i] and (h := parse_heading(lines[i])):
            headings[i] = h
    first_heading = min(headings, default=None)
    if first_heading is not None and headings[first_heading][0] == 1 \
            and not any(line.strip() for line in lines[body_start:first_heading]):
        meta = meta.merged(key_value_block(lines, first_heading))
    dated = {i: d for i, (_, t) in headings.items() if (d := date_heading(clean_title(t)))}
    if len(dated) < 2:
        dated = {}
    described = heading_properties(lines, headings)
    items = item_headings(headings, set(dated), set(described))
    first_structure = min(items | set(dated), default=None)
    head_end = first_structure if first_structure is not None else min(len(lines), body_start + 10)
    note_date, year = _file_dates(lines, lines[body_start:head_end], meta)
    one_thing = one_thing_title(meta, headings)
    if one_thing is not None and not meta.about_a_paper and first_heading is not None:
        own_end = min((i for i in headings if i > first_heading), default=len(lines))
        if table_spans(lines, first_heading, own_end, fenced, None, ""):
            one_thing = None  # a title over a table of things (a Notion database): the rows are the things
    top_heading = next((clean_title(t) for i, (level, t) in sorted(headings.items()) if level == 1), None)
    note_title = meta.title or top_heading
    body = [i for i in range(body_start, len(lines)) if lines[i].strip()]
    if not body:
        return []
    if one_thing is not None:
        title = _display_title(one_thing or Path(file).stem, meta.aliases)
        spans = [Span(body[0], "item", title, note_date, "", meta)]
    elif headings:
        spans = _heading_spans(lines, body_start, fenced, headings, dated, items, note_date, year, note_title)
        for span in spans:
            if span.kind == "item" and span.start in described:
                span.meta = described[span.start]
                span.title = _display_title(span.title, span.meta.aliases)  # "InstructGPT: Training language …"
        spans = listed_things(spans, lines, fenced, headings)
        if len(spans) == 1 and spans[0].start in headings:
            spans[0].kind = "item"  # one heading over prose: the note is about that
    else:
        spans = (bibtex_spans(lines, body_start, note_date)
                 or delimited_spans(lines, body_start, note_date)
                 or card_spans(lines, body_start, len(lines), fenced, note_date, note_title or "")
                 or ruled_spans(lines, body_start, len(lines), fenced, note_date, note_title or "")
                 or outline_spans(lines, body_start, fenced, note_date, note_title)
                 or paragraph_spans(lines, body_start, fenced, note_date, note_title)
                 or [Span(body[0], "section", clean_title(lines[body[0]])[:80], note_date)])
    states = org.todo_states(written) if is_org else {}
    return _entries(spans, lines, written, file, meta if one_thing is None else NoteMeta(), headings, states)


def _entries(spans: list[Span], lines: list[str], written: list[str], file: str, note: NoteMeta,
             headings: dict[int, tuple[int, str]], states: dict[int, str]) -> list[Entry]:
    """Spans → entries: each runs to the next one's start, trailing blank lines dropped; an
    entry's text is the note's lines as ``written`` (an Org note's own, not its Markdown reading);
    its tags are the note's (front matter, page properties), its own and its ``#tags``; an Org
    heading's TODO keyword (``states``) is its status."""
    entries, described = [], []
    items = [title_names(s.title) for s in spans if s.kind == "item"]
    for n, span in enumerate(spans):
        stop = spans[n + 1].start if n + 1 < len(spans) else len(lines)
        end = stop - 1
        while end > span.start and not written[end].strip():
            end -= 1
        if not written[span.start].strip() and end == span.start:
            continue
        body = "\n".join(lines[span.start:end + 1])
        meta = span.meta
        if span.kind == "item" and span.start in headings and (
                _is_name_list(lines[span.start:end + 1]) or is_overview(span.title, body, items)):
            span.kind = "section"
        tags = tuple(dict.fromkeys((*note.tags, *meta.tags, *inline_tags(body))))
        own = merge_fields(property_fields(lines[span.start:end + 1]),
                           [("status", states[span.start])] if span.start in states else [], meta.fields)
        entries.append(Entry(
            file=file, title=span.title or note.title or Path(file).stem, line_start=span.start + 1,
            line_end=end + 1, url=meta.url or first_url(body), date=span.date,
            text="\n".join(written[span.start:end + 1]), kind=span.kind,
            tags=tags, aliases=meta.aliases, authors=meta.authors, links=wikilinks(body), context=span.context,
            properties=merge_fields(own, note.fields)))
        described.append(bool(own))
    return _share_fields(entries, described)


def _share_fields(entries: list[Entry], described: list[bool]) -> list[Entry]:
    """One paper written about twice in a note, as a table row with its fields ("Masked Autoencoders
    … (MAE)" with Authors, Status) and as an item in short ("**MAE**: …"): the item carries the
    row's fields, when exactly one described entry's title names it."""
    holders = [e for e, has in zip(entries, described, strict=True) if has]
    out = []
    for entry, has in zip(entries, described, strict=True):
        if not has and entry.kind == "item" and holders and len(entry.title) <= MAX_NAME_CHARS:
            named = re.compile(rf"(?<![\w-]){re.escape(entry.title)}(?![\w-])")
            if len(same := [h for h in holders if named.search(h.title)]) == 1:
                entry = replace(entry, properties=merge_fields(same[0].properties, entry.properties),
                                authors=entry.authors or same[0].authors)
        out.append(entry)
    return out
