"""Markdown tables and number formatting shared by the eval and bench reports.

One renderer for both reports, so a table looks the same wherever a number is quoted.
"""

from __future__ import annotations

from collections.abc import Sequence

DASH = "–"  # what a table shows for "not measured" or "not applicable"


def fmt(value: float | None, digits: int = 3) -> str:
    """A number to ``digits`` places, or a dash for None."""
    return DASH if value is None else f"{value:.{digits}f}"


def cell(value: object) -> str:
    """One table cell: None as a dash, floats in their shortest form, anything else as text."""
    if value is None:
        return DASH
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured table, columns padded so it also reads well on a terminal."""
    text = [[cell(c) for c in headers], *([cell(c) for c in row] for row in rows)]
    if any(len(row) != len(headers) for row in text):
        raise ValueError("every row needs one cell per header")
    widths = [max(len(row[i]) for row in text) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(text[0]), rule, *(line(row) for row in text[1:])])
