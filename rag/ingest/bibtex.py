"""BibTeX records as entries: a Zotero / Better BibTeX or JabRef export, often with the reader's
comments between the records (``% my take: …``).

Each ``@inproceedings{key, title = {…}, author = {A and B}, …}`` and the lines after it up to the
next record is an item titled by its ``title`` field, with its authors ("Hu, Edward J." read as
"Edward J. Hu"), year, venue (``booktitle`` / ``journal``) and link as its metadata; text before the
first record is a section. Fields are read with one bounded pattern, never by evaluating anything:
a record is at most :data:`MAX_RECORD_LINES` lines, and a brace left open ends at the next record.
"""

from __future__ import annotations

import re

from .blocks import Span
from .meta import meta_from_mapping

MAX_RECORD_LINES = 60
#: A record's first line: ``@article{key,``, fields may follow (not ``@string``, ``@comment``, ``@preamble``).
_RECORD = re.compile(r"^@(?!(?:string|comment|preamble)\b)([A-Za-z]++)\s*+\{\s*+([^,\s{}]*+)\s*+(?:,|$)", re.I)
#: ``name = {value}`` (one level of nested braces), ``name = "value"`` or ``name = 2022``; a name is
#: read from its first letter only, so a long word is one try, not one per letter.
_FIELD = re.compile(r"(?<![\w-])([A-Za-z][\w-]*+)\s*+=\s*+(?:\{((?:[^{}]++|\{[^{}]*+\})*+)\}|\"([^\"]*+)\"|(\w++))")
_BRACES = re.compile(r"[{}]")


def bibtex_spans(lines: list[str], start: int, note_date: str | None) -> list[Span] | None:
    """Each BibTeX record from ``start`` on, with what follows it; None when the text has none."""
    records = [i for i in range(start, len(lines)) if _RECORD.match(lines[i])]
    if not records:
        return None
    spans = []
    if any(line.strip() for line in lines[start:records[0]]):
        first = next(i for i in range(start, records[0]) if lines[i].strip())
        spans.append(Span(first, "section", lines[first].strip(" %#")[:80], note_date))
    for n, i in enumerate(records):
        stop = min(records[n + 1] if n + 1 < len(records) else len(lines), i + MAX_RECORD_LINES)
        fields = record_fields(lines[i:stop])
        meta = meta_from_mapping(fields)
        title = meta.title or _RECORD.match(lines[i]).group(2) or lines[i].strip()  # type: ignore[union-attr]
        spans.append(Span(i, "item", title, note_date, "", meta))
    return spans


def record_fields(lines: list[str]) -> dict[str, str | list[str]]:
    """A record's fields by name, braces dropped, ``author`` as a list of "First Last" names. The
    record ends where its braces close."""
    depth, kept = 0, []
    for line in lines:
        kept.append(line)
        depth += line.count("{") - line.count("}")
        if depth <= 0:
            break
    record = "\n".join(kept)
    fields: dict[str, str | list[str]] = {}
    for m in _FIELD.finditer(record, record.find(",") + 1 if "," in kept[0] else len(kept[0])):
        value = " ".join(_BRACES.sub("", next(v for v in m.groups()[1:] if v is not None)).split())
        fields.setdefault(m.group(1).lower(), value)
    if isinstance(author := fields.get("author"), str):
        fields["author"] = [_first_last(name) for name in re.split(r"\s+and\s+", author) if name.strip()]
    return fields


def _first_last(name: str) -> str:
    """"Hu, Edward J." → "Edward J. Hu"; a name written first-last stays as it is."""
    last, comma, first = name.partition(",")
    return f"{first.strip()} {last.strip()}" if comma and first.strip() else name.strip()
