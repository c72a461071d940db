"""Entries of a block of lines with no headings of its own (a whole note, or one heading's
body): a flashcard deck's cards, an outline's top-level bullets (as Logseq writes them), plain
text's paragraphs (a reading log); and the :class:`Span` every segmenting rule produces."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .dates import DATE_LEAD, WEEKDAY_ONLY, leading_date
from .markup import clean_inline, clean_title, first_url, strip_urls
from .meta import NoteMeta, is_property, meta_from_mapping, properties

MIN_OUTLINE_ITEMS = 2  # top-level bullets with children that make a note an outline
MIN_PARAGRAPHS = 3  # blank-line separated blocks that make plain text a list of entries
MIN_CARDS = 3  # answered questions that make a flashcard deck
PATH_SEP = " › "  # between the headings an entry sits under: "Digest › 2025-02-03"

BULLET = re.compile(r"^(?:[-*+]|\d{1,3}[.)])[ \t]+(\S.*)$")
TABLE_ROW = re.compile(r"^\s*\|(.*)\|?\s*$")
#: A flashcard's question and answer lines ("Q: …" / "A: …", "问：" / "答：").
CARD_Q = re.compile(r"^(?:Q|问|Question)\s*[:：]\s*(\S.*)$", re.IGNORECASE)
CARD_A = re.compile(r"^(?:A|答|Answer)\s*[:：]", re.IGNORECASE)
_SENTENCE_END = ("。", ".", "！", "!", "？", "?", "；", ";", "：", ":", "，", ",")
#: A paragraph that opens with a paper's name and its citation, a thread's "2/" before it:
#: "2/ DPR — Dense Passage Retrieval … (Karpukhin et al., EMNLP 2020). Two BERT encoders …".
_CITED_OPEN = re.compile(r"^(?:\d{1,3}/\d{0,3}\s+)?([^\s.:;?!(（][^.:;?!(（]{0,100}?\s*[(（]([^)）\n]{1,300}+)[)）])")
#: The bracket cites: authors ("et al", "&") or a year, not a date ("(posted 2024-04-02)").
_CITATION = re.compile(r"et al|&|(?<![\d./-])(?:19|20)\d{2}(?![\d./年-])")


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


#: A bullet that opens with a link to what it is about, after a star or an emoji: "⭐ [Toolformer: …](url)
#: - Schick et al. …" (an awesome list), "[[InstructGPT]] — *Training …*" (a day's reading); not a
#: table of contents' "[Tool Use](#tool-use)".
LINK_LED = re.compile(r"^[^\w\[]{0,4}\[(?:(?P<wiki>\[[^\]\n]+\]\])|[^\]\n]+\]\((?!#))")
_MD_LINK_TEXT = re.compile(r"^[^\w\[]{0,4}\[([^\]\n]+)\]\(")
#: Characters beyond the link that make a link-led bullet describe its paper, not just point at it.
MIN_DESCRIBED = 20


def link_list_spans(lines: list[str], start: int, stop: int, fenced: list[bool], date: str | None,
                    context: str) -> list[Span] | None:
    """A list of link-led bullets that each describe what they link to (an awesome list, a day's
    reading): an entry per such bullet, with its children; None when the lines are no such list.
    A [[wikilink]] bullet describes its paper only with notes under it: a topic page's "[[HyDE]] —
    one line" points at the paper's own note."""
    described = []
    for i in range(start, stop):
        if fenced[i] or not (m := BULLET.match(lines[i])) or not (link := LINK_LED.match(m.group(1))):
            continue
        if has_children(lines, i) or (not link.group("wiki")
                                      and len(clean_inline(strip_urls(m.group(1)))) >= MIN_DESCRIBED):
            described.append(i)
    return [Span(i, "item", _link_title(lines, i), date, context) for i in described] or None


def _link_title(lines: list[str], i: int) -> str:
    """A markdown link's text is the paper's title ("Toolformer: Language Models Can Teach …"); a
    wikilink bullet's title is the bullet ("InstructGPT — Training language models …")."""
    link = _MD_LINK_TEXT.match(BULLET.match(lines[i]).group(1))  # type: ignore[union-attr]
    return clean_inline(link.group(1)) if link else bullet_title(lines, i)


#: A line that only draws a rule between blocks: "---", "***", "━━━━━━", "———", "═══".
RULE_LINE = re.compile(r"^\s*([-*_=~━─—═·•])(?:\s*\1){2,}\s*$")
#: The number in front of a block's first line: "1️⃣ DPR｜…", "② …", "3. …".
_ITEM_NUMBER = re.compile(r"^\s*(?:\d\ufe0f?\u20e3\s*|[\u2460-\u2473]\s*|\d{1,2}(?:[.)]\s+|、\s*))")


def ruled_spans(lines: list[str], start: int, stop: int, fenced: list[bool], date: str | None,
                context: str) -> list[Span] | None:
    """Blocks drawn apart by rule lines (a 小红书 or WeChat post's "━━━━" between its papers): an
    entry per block after the first rule, titled by its first line, and what comes before the
    first rule a section; None when there are fewer than two blocks. A rule right under a line of
    text is that line's heading underline, not a rule."""
    rules = [i for i in range(start, stop) if not fenced[i] and RULE_LINE.match(lines[i])
             and (i == start or not lines[i - 1].strip())]
    spans = []
    for n, rule in enumerate(rules):
        end = rules[n + 1] if n + 1 < len(rules) else stop
        first = next((i for i in range(rule + 1, end) if lines[i].strip()), None)
        if first is not None:
            title = clean_title(_ITEM_NUMBER.sub("", lines[first]))[:120]
            spans.append(Span(first, "item", title, leading_date(title) or date, context))
    if len(spans) < 2:
        return None
    if (lead := next((i for i in range(start, rules[0]) if lines[i].strip()), None)) is not None:
        spans.insert(0, Span(lead, "section", clean_title(lines[lead])[:80], date, context))  # the post's opening
    return spans


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


def _opening(lines: list[str], block: list[int]) -> str:
    """A paragraph's first line that says something: a rule above "my own notes after posting:"
    draws the block apart and titles nothing."""
    return next((lines[i].strip() for i in block if not RULE_LINE.match(lines[i])), lines[block[0]].strip())


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
    blocks = [b for b in blocks if b and not all(RULE_LINE.match(lines[i]) for i in b)]  # a lone rule holds nothing
    listish = sum(1 for b in blocks for i in b if BULLET.match(lines[i].strip()) or TABLE_ROW.match(lines[i]))
    if len(blocks) < MIN_PARAGRAPHS or listish * 3 > sum(map(len, blocks)):
        return None
    firsts = {block[0]: _opening(lines, block) for block in blocks}
    cited = {start: m for start, first in firsts.items() if not leading_date(first)
             and (m := _CITED_OPEN.match(clean_inline(first))) and _CITATION.search(m.group(2))}
    spans: list[Span] = []
    for block in blocks:
        first = firsts[block[0]]
        when = leading_date(first)
        ruled = bool(RULE_LINE.match(lines[block[0]]))  # a rule above it starts a part of its own
        titled = when or ruled or (len(block) > 1 and len(first) <= 120 and not first.endswith(_SENTENCE_END))
        if len(cited) >= 2 and (m := cited.get(block[0])):
            spans.append(Span(block[0], "item", m.group(1), note_date, note_title or ""))
        elif titled:
            rest = clean_title(DATE_LEAD.sub("", first)).rstrip(":：").strip()
            title = first if WEEKDAY_ONLY.match(rest) else rest  # "2024年3月4日 星期一" says more than "星期一"
            spans.append(Span(block[0], "item", title, when or note_date, note_title or ""))
        elif len(cited) >= 2 and spans and spans[-1].start in cited:
            continue  # "3/ Headline: beats BM25 by 9–19%" goes on about the paper "2/" opened
        else:
            spans.append(Span(block[0], "section", clean_inline(first)[:80], note_date, note_title or ""))
    papers = [b for b in blocks if b[0] in cited or leading_date(firsts[b[0]])]
    if len(papers) >= 2 and blocks[0] not in papers:
        spans[0].kind = "section"  # "读论文日记 · 扩散模型专题" above its days introduces the note
    return spans
