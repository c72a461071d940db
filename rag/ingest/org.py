"""Org-mode notes (Emacs), read as the Markdown they would be, line for line.

Researchers who live in Emacs keep papers as ``* DONE Title :tag:`` headings with ``:PROPERTIES:``
drawers (``:AUTHORS:``, ``:YEAR:``) under ``#+TITLE:`` and ``#+FILETAGS:`` keywords, often saved as
``.txt``. Everything the segmenter knows is Markdown, so an Org note is rewritten into it before
segmentation: headings keep their level (``**`` → ``##``) without their TODO keyword, priority
and trailing tags (which become ``#tags``); file keywords become page properties (``title:: …``);
drawer fields become ``key:: value`` lines; blocks become fences; Org comments (``# …``) are
blanked so they are not read as titles. One line in, one line out, so every entry's line numbers
are the file's own. Org is recognised by its content (keywords, drawers, TODO headings), never by
the file's name: a Markdown note's ``* bullet`` stays a bullet.
"""

from __future__ import annotations

import re

_KEYWORD = re.compile(r"^#\+([A-Za-z_]+):\s*(.*)$")
_DRAWER_EDGE = re.compile(r"^\s*:(?:PROPERTIES|END|LOGBOOK):\s*$", re.I)
_DRAWER_FIELD = re.compile(r"^\s*:([A-Za-z][\w-]*):\s*(.*)$")
_HEADING = re.compile(r"^(\*+)[ \t]+(.*)$")
_PRIORITY = re.compile(r"^\[#[A-Z]\]\s*")
_TAGS_WORD = re.compile(r":(?:[\w@#%]++:)++")
_BLOCK = re.compile(r"^\s*#\+(BEGIN|END)_(\w+)", re.I)
_COMMENT = re.compile(r"^#(?:\s|$)")
#: Bounded and possessive, as in :mod:`.markup`: a line of "[[[[…" costs linear time.
_LINK = re.compile(r"\[\[([^\]\n]{1,500}+)\]\[([^\]\n]{1,500}+)\]\]")
_BARE_LINK = re.compile(r"\[\[((?:https?|file|doi):[^\]\n]{1,500}+)\]\]")
#: TODO keywords every Org setup knows; a note declares its own with ``#+TODO:`` / ``#+SEQ_TODO:``.
DEFAULT_KEYWORDS = frozenset({"TODO", "DONE", "NEXT", "WAITING", "HOLD", "CANCELLED", "CANCELED", "STARTED"})
#: File keywords that are a note's page properties, under the names the segmenter reads.
_PAGE_KEYS = {"title": "title", "filetags": "tags", "date": "date", "author": "written-by"}
_TODO_HEADING = re.compile(r"^\*+\s+(?:TODO|DONE)\s")


def is_structure(line: str) -> bool:
    """An Org heading (``** Core idea``, ``* DONE Title``) or a drawer's edge: a line that
    arranges a note, not one that says something to quote. One star without a TODO keyword may be
    a Markdown bullet, so it is not taken for a heading here."""
    if _DRAWER_EDGE.match(line) or line.startswith("** "):
        return True
    m = _HEADING.match(line)
    return bool(m) and m.group(2).partition(" ")[0] in DEFAULT_KEYWORDS


def is_org(lines: list[str]) -> bool:
    """Org keywords (``#+TITLE:``), a property drawer, or two TODO/DONE headings: Org, not Markdown."""
    if any(_KEYWORD.match(line) for line in lines[:40]):
        return True
    edges = [line.strip().upper() for line in lines if _DRAWER_EDGE.match(line)]
    if ":PROPERTIES:" in edges and ":END:" in edges:
        return True
    return sum(bool(_TODO_HEADING.match(line)) for line in lines) >= 2


def _todo_keywords(lines: list[str]) -> set[str]:
    keywords = set(DEFAULT_KEYWORDS)
    for line in lines:
        if (m := _KEYWORD.match(line)) and m.group(1).lower() in ("todo", "seq_todo", "typ_todo"):
            keywords |= {w for w in m.group(2).split() if w != "|"}
    return keywords


def todo_states(lines: list[str]) -> dict[int, str]:
    """Each heading's TODO keyword by line (``** READING Soft Actor-Critic`` → READING): where a
    reader keeps a paper's status."""
    keywords = _todo_keywords(lines)
    return {i: first for i, line in enumerate(lines)
            if (h := _HEADING.match(line)) and (first := h.group(2).split(" ", 1)[0]) in keywords}


def as_markdown(lines: list[str]) -> list[str]:
    """The note's lines in Markdown, as many as it has."""
    keywords = _todo_keywords(lines)
    out: list[str] = []
    in_drawer = False
    for line in lines:
        if _DRAWER_EDGE.match(line):
            in_drawer = line.strip().upper() != ":END:"
            out.append("")
        elif in_drawer and not _HEADING.match(line):  # a heading ends a drawer left open
            field = _DRAWER_FIELD.match(line)
            out.append(f"  {field.group(1).lower()}:: {field.group(2)}" if field else line)
        elif block := _BLOCK.match(line):
            verbatim = block.group(2).lower() in ("src", "example")
            out.append("```" if verbatim else "")
        elif keyword := _KEYWORD.match(line):
            out.append(_page_property(keyword.group(1).lower(), keyword.group(2)))
        elif heading := _HEADING.match(line):
            in_drawer = False
            out.append("#" * len(heading.group(1)) + " " + _title(heading.group(2), keywords))
        elif _COMMENT.match(line):
            out.append("")
        else:
            out.append(_links(line))
    return out


def _page_property(key: str, value: str) -> str:
    """``#+TITLE: X`` → ``title:: X``; ``#+FILETAGS: :a:b:`` → ``tags:: a, b``; a setting
    (``#+STARTUP:``) stays a property the metadata ignores, so the block of them stays one block."""
    name = _PAGE_KEYS.get(key, key)
    if name == "tags":
        value = ", ".join(t for t in value.strip().strip(":").split(":") if t)
    return f"{name}:: {value.strip()}"


def _title(text: str, keywords: set[str]) -> str:
    """A heading's text without its TODO keyword and priority; its ``:a:b:`` tags as ``#a #b``."""
    text = text.rstrip()
    first, _, rest = text.partition(" ")
    if first in keywords:
        text = rest
    text = _PRIORITY.sub("", text)
    tags = ""
    head, _, last = text.rpartition(" ")  # the tags are the heading's last word, read in code: a regex
    if head and _TAGS_WORD.fullmatch(last):  # searched from every space costs a padded heading dearly
        tags = " " + " ".join(f"#{t}" for t in last.split(":") if t)
        text = head
    return _links(text.strip()) + tags


def _links(line: str) -> str:
    """``[[url][text]]`` → ``[text](url)``; a bare ``[[https://…]]`` → the URL."""
    return _BARE_LINK.sub(r"\1", _LINK.sub(r"[\2](\1)", line))
