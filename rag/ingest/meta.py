"""What a note says about itself: front matter (YAML ``---``, TOML ``+++``), Logseq / Dataview
``key:: value`` properties and inline ``#tags``, as one typed :class:`NoteMeta`.

Front matter is parsed with kept libraries (PyYAML's safe loader, ``tomllib``), never by hand, and
cheaply refused when it could cost more than it says: over :data:`MAX_FRONT_MATTER` bytes, or YAML
with anchors and aliases (the "billion laughs" bomb). A refused or malformed block is read as text,
and :attr:`NoteMeta.problem` says why in one line: a note is never lost to its header.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from itertools import chain

from .dates import YEAR, first_date

MAX_FRONT_MATTER = 64 * 1024  # bytes of a front-matter block
MAX_FRONT_LINES = 400
MAX_FIELDS = 40  # fields an entry keeps as written
MAX_FIELD_CHARS = 300  # of one field's value

_PROPERTY = re.compile(r"^\s*(?:[-*+]\s+)?([A-Za-z][\w-]*)::(.*)$")
#: ``#tag`` and ``#nested/tag``: not a heading (``# Title``), not ``C#``, not a URL fragment or colour.
_INLINE_TAG = re.compile(r"(?<![\w#&/])#([A-Za-z\u4e00-\u9fff][\w\u4e00-\u9fff/-]*)")
#: The first line of a front matter names a key: ``title: …``, ``"tags" = […]``, ``date = 2024``.
#: A ``Key: value`` line of a property block (:func:`key_value_block`).
_KEY_VALUE = re.compile(r"^([A-Z][A-Za-z]*(?: [A-Za-z]+){0,2})\s*:\s+(\S.*)$")
MIN_KEY_LINES = 2
_KEY_LINE = re.compile(r"^\s*[\"']?[\w.-]+[\"']?\s*[:=]")
_ARXIV = re.compile(r"(?<![\d.])(\d{4}\.\d{4,5})(?:v\d+)?(?![\d])")
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"'<>]+)")

#: Field names as note tools spell them → our field.
_KEYS = {
    "title": "title", "name": "title",
    "aliases": "aliases", "alias": "aliases", "aka": "aliases", "short": "aliases", "shortname": "aliases",
    "nickname": "aliases",
    "tags": "tags", "tag": "tags", "keywords": "tags", "topics": "tags",
    "authors": "authors", "author": "authors", "by": "authors",
    "date": "date", "created": "date", "published": "date", "period": "date", "month": "date",
    "year": "year",
    "url": "url", "link": "url", "source": "url", "paper": "url", "pdf": "url",
    "arxiv": "ids", "doi": "ids", "id": "ids",
}
#: Fields that make a note *about one paper* (a title, tags or a date also fit a topic note).
_PAPER_FIELDS = ("authors", "ids", "url")


@dataclass(frozen=True)
class NoteMeta:
    """A note's (or an outline block's) own description of itself; empty fields when it gives none."""

    title: str | None = None
    aliases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    date: str | None = None  # ISO YYYY-MM-DD
    year: int | None = None
    url: str | None = None
    ids: tuple[str, ...] = ()  # arXiv ids and DOIs
    kind: str | None = None  # ``type:: paper`` and the like
    problem: str | None = None  # why a front matter was read as text
    #: Every field as the note writes it (lower-cased key, value as text): what the typed fields do
    #: not keep (status, venue, created, a rating) is still there to answer "what did I mark it".
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def about_a_paper(self) -> bool:
        """Authors, an id or a link: the note describes one work, whatever its headings."""
        return any(getattr(self, f) for f in _PAPER_FIELDS) or (self.kind or "").lower() in ("paper", "article")

    def merged(self, other: NoteMeta) -> NoteMeta:
        """This meta with ``other``'s fields filled in where this one has none; tags are united."""
        return replace(
            self, title=self.title or other.title, aliases=self.aliases or other.aliases,
            tags=tuple(dict.fromkeys((*self.tags, *other.tags))), authors=self.authors or other.authors,
            date=self.date or other.date, year=self.year or other.year, url=self.url or other.url,
            ids=self.ids or other.ids, kind=self.kind or other.kind, problem=self.problem or other.problem,
            fields=merge_fields(self.fields, other.fields))


def merge_fields(*groups: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The fields of all ``groups``, a key's first value winning, at most :data:`MAX_FIELDS`."""
    found: dict[str, str] = {}
    for key, value in chain.from_iterable(groups):
        if len(found) >= MAX_FIELDS:
            break
        found.setdefault(key, value)
    return tuple(found.items())


def front_matter(lines: list[str]) -> tuple[int, NoteMeta]:
    """(index of the first body line, the meta) for a leading ``---`` YAML or ``+++`` TOML block.

    A block that cannot be read counts as body text (index 0) and says why in ``problem``.
    """
    if not lines or lines[0].strip() not in ("---", "+++"):
        return 0, NoteMeta()
    fence = lines[0].strip()
    closers = ("---", "...") if fence == "---" else ("+++",)
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in closers), None)
    if end is None:
        return 0, NoteMeta()  # a lone rule at the top, not front matter
    if not _KEY_LINE.match(next((line for line in lines[1:end] if line.strip()), "")):
        return 0, NoteMeta()  # a rule over prose, not a header of keys: nothing to say about it
    block = "\n".join(lines[1:end])
    if len(block.encode("utf-8")) > MAX_FRONT_MATTER:
        return 0, NoteMeta(problem=f"front matter over {MAX_FRONT_MATTER // 1024} KB, read as text")
    if end > MAX_FRONT_LINES:
        return 0, NoteMeta(problem=f"front matter over {MAX_FRONT_LINES} lines, read as text")
    data, problem = _parse_toml(block) if fence == "+++" else _parse_yaml(block)
    if problem:
        return 0, NoteMeta(problem=f"front matter {problem}, read as text")
    return end + 1, meta_from_mapping(data)


def _parse_yaml(block: str) -> tuple[Mapping, str | None]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(block, Loader=loader)):
            return {}, "uses YAML aliases (refused: they can multiply without end)"
        data = yaml.load(block, Loader=loader)
    except (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError):
        return {}, "is not valid YAML"
    if data is None:
        return {}, None
    return (data, None) if isinstance(data, Mapping) else ({}, "is not a YAML mapping of keys to values")


def _parse_toml(block: str) -> tuple[Mapping, str | None]:
    try:
        return tomllib.loads(block), None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        return {}, f"is not valid TOML ({str(exc).splitlines()[0][:80]})"


def properties(lines: Iterable[str]) -> dict[str, str]:
    """``key:: value`` lines (Logseq page or block properties, Dataview inline fields)."""
    found: dict[str, str] = {}
    for line in lines:
        if m := _PROPERTY.match(line):
            found.setdefault(m.group(1).lower(), m.group(2).strip())
    return found


def property_fields(lines: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The ``key:: value`` lines among ``lines`` as fields; a key written with no value says nothing."""
    return merge_fields((k, v[:MAX_FIELD_CHARS]) for k, v in properties(lines).items() if v)


def key_value_block(lines: list[str], title: int) -> NoteMeta:
    """Tags and a date from a property block under a note's title line, as a Notion export writes
    it ("Status: Read", "Tags: rl, agents", "Created: 2024-03-12"): two or more ``Key: value``
    lines right after it, one of them a field we know. Only tags and the date are taken: a URL or
    authors there may be one paper's of several on the page."""
    i = title + 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    found: dict[str, str] = {}
    while i < len(lines) and (m := _KEY_VALUE.match(lines[i])):
        found.setdefault(m.group(1).lower(), m.group(2).strip())
        i += 1
    if len(found) < MIN_KEY_LINES or not any(_KEYS.get(k.replace(" ", "")) for k in found):
        return NoteMeta()
    meta = meta_from_mapping(found)
    return NoteMeta(tags=meta.tags, date=meta.date, year=meta.year)


def is_property(line: str) -> bool:
    return bool(_PROPERTY.match(line))


def inline_tags(text: str) -> tuple[str, ...]:
    """``#tags`` written in the text, in order, without the ``#``."""
    return tuple(dict.fromkeys(t.rstrip("/-") for t in _INLINE_TAG.findall(text)))


def meta_from_mapping(data: Mapping) -> NoteMeta:
    """A parsed front matter or property set → NoteMeta; unknown keys are ignored, odd values skipped."""
    fields: dict[str, list[str]] = {}
    written: list[tuple[str, str]] = []
    kind = None
    for key, value in data.items():
        if (text := " ".join(", ".join(_strings(value)).split())) and str(key).strip():  # one line
            written.append((str(key).strip().lower(), text[:MAX_FIELD_CHARS]))
        name = _KEYS.get(str(key).strip().lower().replace("_", ""))
        if str(key).strip().lower() == "type":
            kind = _strings(value)[0] if _strings(value) else None
        if name:
            fields.setdefault(name, []).extend(_strings(value, split=name in ("tags", "authors", "aliases")))
    date, year = _date_and_year(fields.get("date", []) + fields.get("year", []))
    urls = [u for u in fields.get("url", []) if u.startswith(("http://", "https://"))]
    ids = [i for v in fields.get("ids", []) + urls for i in _ids(v)]
    titles = fields.get("title", [])
    return NoteMeta(
        title=titles[0] if titles else None,
        aliases=_unique(fields.get("aliases", [])),
        tags=_unique(t.lstrip("#") for t in fields.get("tags", [])),
        authors=_unique(fields.get("authors", [])),
        date=date, year=year, url=urls[0] if urls else None, ids=_unique(ids), kind=kind,
        fields=merge_fields(written))


def _strings(value: object, split: bool = False) -> list[str]:
    """Scalars and lists as trimmed strings; ``"a, b"`` split for list-like fields."""
    if isinstance(value, Mapping):
        return []
    items = list(value) if isinstance(value, list | tuple | set) else [value]
    out: list[str] = []
    for item in items:
        if item is None or isinstance(item, Mapping | list | tuple):
            continue
        text = item.isoformat() if isinstance(item, dt.date) else str(item)
        text = text.strip().strip('"').strip("[]").strip()
        parts = re.split(r"\s*[,，;；]\s*", text) if split else [text]
        out.extend(p.strip() for p in parts if p.strip())
    return out


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def _date_and_year(values: list[str]) -> tuple[str | None, int | None]:
    date = year = None
    for value in values:
        date = date or first_date(value)
        if year is None and (m := YEAR.search(value)):
            year = int(m.group(1))
    return date, year or (int(date[:4]) if date else None)


def _ids(value: str) -> list[str]:
    return [f"arXiv:{m}" for m in _ARXIV.findall(value)] + _DOI.findall(value)
