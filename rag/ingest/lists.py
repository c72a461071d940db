"""A heading's own text that lists things: a table of them, an outline of them (described by
``key:: value`` fields or not), links, a flashcard deck. Each is an entry under the heading, as if
the note held only that body; the heading becomes a section.
"""

from __future__ import annotations

from .blocks import PATH_SEP, Span, card_spans, link_list_spans, outline_spans, ruled_spans
from .markup import clean_title
from .sections import is_part_heading
from .tables import table_spans


def listed_things(spans: list[Span], lines: list[str], fenced: list[bool], headings: dict[int, tuple[int, str]]
                   ) -> list[Span]:
    """A heading's section whose body is a flashcard deck, or an outline of things (top-level
    bullets with children that are not one thing's Summary / Method parts), is those things: an
    entry each under the heading, as if the note held only that body. A reading log kept as
    "* **MMLU**: …" blocks under one title is then an entry per paper, not one."""
    out: list[Span] = []
    for n, span in enumerate(spans):
        out.append(span)
        if span.start not in headings or is_part_heading(span.title):
            continue
        stop = spans[n + 1].start if n + 1 < len(spans) else len(lines)
        context = PATH_SEP.join(filter(None, (span.context, span.title)))
        own_end = min((i for i in headings if span.start < i < stop), default=stop)  # a part heading's text is no list
        linked = link_list_spans(lines, span.start + 1, own_end, fenced, span.date, context)
        if linked:  # "### Tool Use" over "- ⭐ [Toolformer: …](…) - Schick et al. …": the papers it lists
            span.kind = "section"
            out += linked
            if own_end < stop:  # a heading after the list ("## Contributing") is not the last paper's
                out.append(Span(own_end, "section", clean_title(headings[own_end][1]), span.date, context))
            continue
        if span.kind != "section":
            if rows := table_spans(lines, span.start, own_end, fenced, span.date, context):
                span.kind = "section"  # a heading over a table of things: its rows are the things
                out += rows
            elif described := described_bullets(lines, span.start + 1, own_end, fenced, span.date, context):
                span.kind = "section"  # "## Foundations" over "- **REALM** …" with "venue:: ICML 2020"
                out += described
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
