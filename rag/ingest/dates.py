"""Dates as notes write them (2025-04-08, 2025.4.8, 2025年4月8日, a bare year), to ISO."""

from __future__ import annotations

import re
from datetime import date

FULL_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})[-./年](\d{1,2})[-./月](\d{1,2})(?!\d)")
COMPACT_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")
YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")
#: A line that starts with a full date: "2024-10-14 — Title (Venue)", "2025-04-08 张三：…".
DATE_LEAD = re.compile(r"^\W*((?:19|20)\d{2})[-./年](\d{1,2})[-./月](\d{1,2})日?(?!\d)\s*(?:[—–\-:：|·,，]\s*)?")


def valid_date(y: int, m: int, d: int) -> str | None:
    """ISO date, or None for a day the calendar does not have (2025-02-30)."""
    try:
        return date(y, m, d).isoformat()
    except ValueError:
        return None


def first_date(text: str) -> str | None:
    """The first valid full date written in ``text``."""
    for m in FULL_DATE.finditer(text):
        if found := valid_date(*map(int, m.groups())):
            return found
    return None


def leading_date(text: str) -> str | None:
    """The date a line starts with, if it starts with one."""
    m = DATE_LEAD.match(text)
    return valid_date(*map(int, m.groups())) if m else None
