"""Tables in notes: a markdown table that lists things (a link in a row, or a first column that
names them), or a CSV or TSV reading list saved as text, gives an entry per row, its header as the
row's context, and each cell under its column's name as the row's fields (a Notion database's
Status, Authors, Added)."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .blocks import PATH_SEP, TABLE_ROW, Span
from .markup import clean_inline, first_url, has_link
from .meta import NoteMeta, meta_from_mapping

#: A table's |---|:---:| rule; no two optional runs of blanks touch, so a long line cannot backtrack.
TABLE_RULE = re.compile(r"^[ \t]*(?:\|[ \t]*)?:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*(?:\|[ \t]*)?$")
#: First-column headers that say a table lists things, a row each.
NAME_COLUMNS = frozenset("""method methods model models paper papers name title work system approach benchmark
    dataset 方法 模型 论文 名称 名字 工作 标题 系统 数据集""".split())


def cells(line: str) -> list[str]:
    return TABLE_ROW.match(line).group(1).split("|")  # type: ignore[union-attr]


@dataclass(frozen=True)
class TableHeader:
    """A markdown table's header row: its columns name each row's fields, and its text is each row's
    context ("Method | Bits | Key idea")."""

    columns: tuple[str, ...] = ()

    @classmethod
    def of(cls, line: str) -> TableHeader:
        return cls(tuple(cells(line)))

    @property
    def text(self) -> str:
        return " | ".join(clean_inline(c) for c in self.columns if c.strip())

    @property
    def named(self) -> bool:
        """Whether its first column names the rows, so that every row is a thing of its own."""
        return bool(self.columns) and clean_inline(self.columns[0]).strip().lower() in NAME_COLUMNS

    def is_row(self, line: str) -> bool:
        return is_row(line, self.named)

    def row(self, i: int, line: str, date: str | None, context: str) -> Span:
        """Line ``i``, a row of this table, as its entry's span: titled by its first cell, under the
        table's ``context`` and this header, its cells as fields."""
        return Span(i, "row", row_title(line), date, PATH_SEP.join(filter(None, (context, self.text))),
                    row_meta(self.columns, cells(line)))


def is_row(line: str, named: bool) -> bool:
    """A row that is an entry: one with a link, or any row of a table whose first column names them."""
    if not TABLE_ROW.match(line) or TABLE_RULE.match(line):
        return False
    row = cells(line)
    return any(has_link(c) for c in row) or (named and bool(clean_inline(row[0]).strip()))


def row_title(line: str) -> str:
    first_cell = cells(line)[0]
    return clean_inline(first_cell) or (first_url(first_cell) or "row")


def table_spans(lines: list[str], start: int, stop: int, fenced: list[bool], date: str | None,
                context: str) -> list[Span] | None:
    """The rows of the markdown tables in lines ``start`` to ``stop`` that list things (a heading's
    "Methods at a glance" table), each with its table's header; None when fewer than two."""
    spans: list[Span] = []
    header = TableHeader()
    for i in range(start + 1, stop):
        if fenced[i]:
            continue
        if TABLE_RULE.match(lines[i]) and TABLE_ROW.match(lines[i - 1]):
            header = TableHeader.of(lines[i - 1])
        elif header.text and header.is_row(lines[i]):
            spans.append(header.row(i, lines[i], date, context))
    return spans if len(spans) >= 2 else None


def row_meta(columns: Sequence[str], row: Sequence[str]) -> NoteMeta:
    """A row's cells under their columns' names, read as a note's fields: "Authors" gives its
    authors, "Tags" its tags, "Status" and "Added" are kept as written."""
    named = {name: value for c, v in zip(columns, row, strict=False)
             if (name := clean_inline(c)) and (value := clean_inline(v))}
    return meta_from_mapping(named)


#: Rows (after the header) of the same width that make delimited text a table.
MIN_DELIMITED_ROWS = 2
#: Header names of the column that says what a row is, best first.
TITLE_COLUMNS = ("title", "paper", "name", "标题", "论文", "名称", "method", "model")


def delimited_spans(lines: list[str], start: int, note_date: str | None) -> list[Span] | None:
    """A CSV or TSV table (a header line, then rows as wide, nearly all on one line each): a row
    per entry, titled by its title column, with the header as context; None for other text."""
    body = [i for i in range(start, len(lines)) if lines[i].strip()]
    if len(body) <= MIN_DELIMITED_ROWS:
        return None
    for delimiter in ("\t", ","):
        header = _fields(lines[body[0]], delimiter)
        if len(header) < 3:
            continue
        rows = [(i, _fields(lines[i], delimiter)) for i in body[1:]]
        if sum(len(row) == len(header) for _, row in rows) * 10 < len(rows) * 9:
            continue
        names = [h.strip().lower() for h in header]
        column = next((names.index(t) for t in TITLE_COLUMNS if t in names), 0)
        context = " | ".join(h.strip() for h in header)
        return [Span(body[0], "section", context[:80], note_date)] + [
            Span(i, "row", clean_inline(row[column]) if column < len(row) else clean_inline(lines[i])[:80],
                 note_date, context, row_meta(header, row)) for i, row in rows]
    return None


def _fields(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def delimited_cells(line: str) -> list[str] | None:
    """A CSV or TSV row's fields (quoted commas, or tabs; three or more), None for other text:
    an answer quotes a reading list's cells, not its quotes and commas."""
    for delimiter, sign in (("\t", "\t"), (",", '","')):
        if sign in line and len(fields := _fields(line, delimiter)) >= 3:
            return fields
    return None
