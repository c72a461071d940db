"""A heading's own text that lists things: a table of them, an outline of them (described by
``key:: value`` fields or not), links, a flashcard deck, paragraphs led by their names in bold.
Each is an entry under the heading, as if the note held only that body; the heading becomes a
section.
"""

from __future__ import annotations

import re

from .blocks import PATH_SEP, Span, card_spans, link_list_spans, outline_spans, ruled_spans
from .markup import clean_inline, clean_title
from .sections import is_part_heading
from .tables import table_spans

#: A paragraph led by a name in bold and a colon or dash: "**ViT**: …", "**Swin** — …".
_BOLD_LABEL = re.compile(r"^\*\*([^*\n]{1,60})\*\*\s*[:：—–-]")


def listed_things(spans: list[Span], lines: list[str], fenced: list[bool], headings: dict[int, tuple[int, str]]
                   ) -> list[Span]:
    """Each heading whose own text lists things becomes a section over them, an entry each: paragraphs
    led by a name in bold (under any heading), and, under a heading that is no paper's part, a list
    of described links, a table of things or bullets carrying ``key:: value`` fields; a heading after
    the list is no part of its last thing. A section heading's body that is a flashcard deck, or an
    outline of things (top-level bullets with children that are not one thing's Summary / Method
    parts), is those things too: a reading log kept as "* **MMLU**: …" blocks under one title is then
    an entry per paper, not one."""
    out: list[Span] = []
    for n, span in enumerate(spans):
        out.append(span)
        if span.start not in headings:
            continue
        stop = spans[n + 1].start if n + 1 < len(spans) else len(lines)
        context = PATH_SEP.join(filter(None, (span.context, span.title)))
        own_end = min((i for i in headings if span.start < i < stop), default=stop)  # a part heading's text is no list
        part = is_part_heading(span.title)
        listed = (labelled_paragraphs(lines, span.start + 1, own_end, fenced, span.date, context)
                  or (None if part else link_list_spans(lines, span.start + 1, own_end, fenced, span.date, context))
                  or (None if part or span.kind == "section" else
                      table_spans(lines, span.start, own_end, fenced, span.date, context)
                      or described_bullets(lines, span.start + 1, own_end, fenced, span.date, context)))
        if listed:  # "## 简短笔记" over "**ViT**: …" (even under a part's name), "### Tool Use" over
            span.kind = "section"  # "- ⭐ [Toolformer: …](…)", a table of things, "- **REALM** …" with
            out += listed  # "venue:: ICML 2020": the things it lists
            if own_end < stop:  # a heading after the list ("## 待办", "## Contributing") is not the last thing's
                out.append(Span(own_end, "section", clean_title(headings[own_end][1]), span.date, context))
            continue
        if part or span.kind != "section":
            continue
        inner = (card_spans(lines, span.start + 1, stop, fenced, span.date, context)
                 or outline_spans(lines, span.start + 1, fenced, span.date, context, stop)
                 or ruled_spans(lines, span.start + 1, stop, fenced, span.date, context) or [])
        things = [s for s in inner if s.kind == "item"]
        if len(things) >= 2 and sum(is_part_heading(s.title) for s in things) * 2 < len(things):
            out += inner[inner.index(things[0]):]  # text before the first thing stays with the heading
    return out


def described_bullets(lines: list[str], start: int, stop: int, fenced: list[bool], date: str | None,
                       context: str) -> list[Span] | None:
    """A heading's outline whose bullets mostly carry ``key:: value`` fields (a Dataview topic note:
    "- **REALM** …" with "venue:: ICML 2020", "rating:: 4"): each described bullet is a thing."""
    bullets = outline_spans(lines, start, fenced, date, context, stop)
    items = [s for s in bullets or () if s.kind == "item"]
    return bullets if items and sum(bool(s.meta.fields) for s in items) * 2 >= len(items) else None


def labelled_paragraphs(lines: list[str], start: int, stop: int, fenced: list[bool], date: str | None,
                        context: str) -> list[Span] | None:
    """Paragraphs that each open with a name in bold ("**ViT**: patches as tokens …", "**CLIP** —
    …"): a thing each, when two or more do, they are most of the text, and their names are not a
    paper's parts ("**Method**:", "**Results**:" are one thing's)."""
    firsts = [i for i in range(start, stop) if not fenced[i] and lines[i].strip()
              and (i == start or not lines[i - 1].strip())]
    labelled = [(i, clean_inline(m.group(1))) for i in firsts if (m := _BOLD_LABEL.match(lines[i].strip()))]
    if len(labelled) < 2 or len(labelled) * 3 < len(firsts) * 2 \
            or sum(is_part_heading(name) for _, name in labelled) * 2 >= len(labelled):
        return None
    spans = [Span(firsts[0], "section", clean_title(lines[firsts[0]])[:80], date, context)] \
        if firsts[0] < labelled[0][0] else []
    return spans + [Span(i, "item", name, date, context) for i, name in labelled]
