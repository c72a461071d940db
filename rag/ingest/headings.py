"""What a note's headings say about its structure: which of them are the items (repeated,
distinct titles, or the ones carrying a paper's properties), and the title of a note that is
about one thing (:mod:`rag.ingest.notes` segments with it)."""

from __future__ import annotations

from collections import defaultdict

from .dates import date_heading, leading_date
from .markup import clean_title, normalized_title, title_shape
from .meta import NoteMeta, is_property, meta_from_mapping, properties
from .sections import is_part_heading

MIN_ITEMS = 4  # fewer distinct headings than this is not a list of items
MIN_DISTINCT_RATIO = 0.7


def heading_properties(lines: list[str], headings: dict[int, tuple[int, str]]) -> dict[int, NoteMeta]:
    """Headings whose first lines are ``key:: value`` properties naming a paper (authors, an id, a
    link: an Org drawer, Logseq or Dataview fields), with what those say."""
    described = {}
    for i in headings:
        j = i + 1
        while j < len(lines) and j <= i + 2 and not lines[j].strip():
            j += 1
        block = []
        while j < len(lines) and is_property(lines[j]):
            block.append(lines[j])
            j += 1
        if block and (meta := meta_from_mapping(properties(block))).about_a_paper:
            described[i] = meta
    return described


def item_headings(headings: dict[int, tuple[int, str]], dated: set[int], described: set[int]) -> set[int]:
    """The heading lines of the repeated items, or an empty set when the note has none. Headings
    that carry a paper's properties are the items, however many titles their parts repeat."""
    groups: dict[tuple[int, str, bool], list[int]] = defaultdict(list)
    for i, (level, title) in headings.items():
        if i not in dated and not is_part_heading(title):
            groups[(level, *title_shape(title))].append(i)
    papers = max(groups.values(), key=lambda members: len(described.intersection(members)), default=[])
    if len(described.intersection(papers)) >= 2:
        return set(papers)
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


def one_thing_title(meta: NoteMeta, headings: dict[int, tuple[int, str]]) -> str | None:
    """The title of a note that is about one thing, or None when it holds several.

    Front matter naming a paper decides; else one top heading, first, whose direct sub-headings
    are mostly parts (a deep dive: ``# Mamba`` then ``## 背景``, ``## 实验``, ``## 我的想法``,
    whatever numbered steps sit deeper) unless it is a date (a day's page: its Todo and Notes hold
    whatever was read that day), or a front-matter title over nothing but parts.
    """
    top_title = None
    if headings:
        top = min(level for level, _ in headings.values())
        tops = [i for i, (level, _) in headings.items() if level == top]
        below = [level for level, _ in headings.values() if level != top]
        children = [title for level, title in headings.values() if below and level == min(below)]
        parts = sum(is_part_heading(t) for t in children)
        if len(tops) == 1 and tops[0] == min(headings):
            top_title = clean_title(headings[tops[0]][1])
            day_page = leading_date(top_title) is not None  # "Thursday, March 14, 2024": Todo, Reading, Notes
            if children and parts * 2 >= len(children) and not day_page \
                    and not any(date_heading(clean_title(t)) for t in children):
                return meta.title or top_title
        elif meta.title and all(is_part_heading(t) for _, t in headings.values()):
            return meta.title
    if meta.about_a_paper:
        return meta.title or top_title or (meta.aliases[0] if meta.aliases else None) or ""
    return None
