"""Entries of a block of lines with no headings of its own (a whole note, or one heading's
body): a flashcard deck's cards, an outline's top-level bullets (as Logseq writes them), plain
text's paragraphs (a reading log); and the :class:`Span` every segmenting rule produces."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .dates import DATE_LEAD, leading_date
from .markup import clean_inline, clean_title, first_url, strip_urls
from .meta import NoteMeta, is_property, meta_from_mapping, properties

MIN_OUTLINE_ITEMS = 2  # top-level bullets with children that make a note an outline
MIN_PARAGRAPHS = 3  # blank-line separated blocks that make plain text a list of entries
MIN_CARDS = 3  # answered questions that make a flashcard deck

BULLET = re.compile(r"^(?:[-*+]|\d{1,3}[.)])[ \t]+(\S.*)$")
TABLE_ROW = re.compile(r"^\s*\|(.*)\|?\s*$")
#: A flashcard's question and answer lines ("Q: …" / "A: …", "问：" / "答：").
CARD_Q = re.compile(r"^(?:Q|问|Question)\s*[:：]\s*(\S.*)$", re.IGNORECASE)
CARD_A = re.compile(r"^(?:A|答|Answer)\s*[:：]", re.IGNORECASE)
_SENTENCE_END = ("。", ".", "！", "!", "？", "?", "；", ";", "：", ":", "，", ",")


@dataclass
class Span:
    """Where an entry starts (0-based line) and what the segmenter knows about it there."""

    start: int
    kind: str
    title: str
    date: str | None
    context: str = ""
    meta: NoteMeta = field(default_factory=NoteMeta)


def has_children(lines: list[str], i: int) -> bool:
    for nxt in lines[i + 1:]:
        if nxt.strip():
            return nxt[0] in " \t" and (bool(BULLET.match(nxt.strip())) or is_property(nxt))
    return False


def bullet_title(lines: list[str], i: int) -> str:
    text = BULLET.match(lines[i]).group(1)  # type: ignore[union-attr]
    title = clean_inline(strip_urls(clean_inline(text)))
    if title:
        return title
    for nxt in lines[i + 1:]:  # a bare link: describe it by its first child line
        stripped = nxt.strip()
        if stripped:
            child = BULLET.match(stripped)
            words = clean_inline(child.group(1) if child else stripped)
            return words[:80] + ("…" if len(words) > 80 else "")
    return first_url(text) or "untitled"


def card_spans(lines: list[str], start: int, stop: int, fenced: list[bool], date: str | None,
               context: str) -> list[Span] | None:
    """A flashcard deck's entries (lines ``start`` to ``stop``): each question with its answer;
    None when it is no deck. A card is the unit a deck's owner wrote and looks up."""
    body = [i for i in range(start, stop) if lines[i].strip() and not fenced[i]]
    cards = [(i, q.group(1)) for n, i in enumerate(body) if (q := CARD_Q.match(lines[i].strip()))
             and n + 1 < len(body) and CARD_A.match(lines[body[n + 1]].strip())]
    if len(cards) < MIN_CARDS:
        return None
    return [Span(i, "item", clean_inline(question), date, context) for i, question in cards]


def outline_spans(lines: list[str], start: int, fenced: list[bool], note_date: str | None,
                  note_title: str | None, stop: int | None = None) -> list[Span] | None:
    """An outline's entries (lines ``start`` to ``stop``): each top-level bullet with its
    children; None when it is no outline."""
    stop = len(lines) if stop is None else stop
    body = [i for i in range(start, stop) if lines[i].strip() and not fenced[i]]
    tops = [i for i in body if BULLET.match(lines[i])]
    parents = [i for i in tops if has_children(lines, i)]
    nested = sum(1 for i in body if lines[i][0] in " \t" or BULLET.match(lines[i]))
    if len(parents) < MIN_OUTLINE_ITEMS or nested * 10 < len(body) * 6:
        return None
    spans: list[Span] = []
    for i in tops:
        if i in parents:
            block = []
            for line in lines[i + 1:stop]:
                if line.strip() and line[0] not in " \t":
                    break
                block.append(line)
            meta = meta_from_mapping(properties(block))
            spans.append(Span(i, "item", bullet_title(lines, i), meta.date or note_date, note_title or "", meta))
        elif not spans or spans[-1].kind == "item":  # loose bullets between items: one section
            spans.append(Span(i, "section", clean_inline(lines[i])[2:82].strip(), note_date, note_title or ""))
    if body and body[0] < spans[0].start:
        spans.insert(0, Span(body[0], "section", clean_title(lines[body[0]])[:80], note_date))
    return spans


def paragraph_spans(lines: list[str], start: int, fenced: list[bool], note_date: str | None,
                     note_title: str | None) -> list[Span] | None:
    """Plain text's entries: a paragraph each; None when the text is not paragraphs of prose."""
    blocks: list[list[int]] = []
    for i in range(start, len(lines)):
        if not lines[i].strip() or fenced[i]:
            if blocks and blocks[-1]:
                blocks.append([])
            continue
        if not blocks:
            blocks.append([])
        blocks[-1].append(i)
    blocks = [b for b in blocks if b]
    listish = sum(1 for b in blocks for i in b if BULLET.match(lines[i].strip()) or TABLE_ROW.match(lines[i]))
    if len(blocks) < MIN_PARAGRAPHS or listish * 3 > sum(map(len, blocks)):
        return None
    spans = []
    for block in blocks:
        first = lines[block[0]].strip()
        when = leading_date(first)
        titled = when or (len(block) > 1 and len(first) <= 120 and not first.endswith(_SENTENCE_END))
        if titled:
            title = clean_inline(DATE_LEAD.sub("", first)) or first
            spans.append(Span(block[0], "item", title, when or note_date, note_title or ""))
        else:
            spans.append(Span(block[0], "section", clean_inline(first)[:80], note_date, note_title or ""))
    return spans
