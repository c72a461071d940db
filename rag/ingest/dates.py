"""Dates as notes write them (2025-04-08, 2025.4.8, 2025年4月8日, a bare year), to ISO."""

from __future__ import annotations

import re
from datetime import date

FULL_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})[-./年](\d{1,2})[-./月](\d{1,2})(?!\d)")
COMPACT_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")
YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")
#: A line that starts with a full date: "2024-10-14 — Title (Venue)", "2025-04-08 张三：…", a chat
#: export's "[2023-10-09 10:02] kevin: …" (its time and bracket go with it).
DATE_LEAD = re.compile(r"^\W*((?:19|20)\d{2})[-./年](\d{1,2})[-./月](\d{1,2})日?(?!\d)"
                       r"(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?[\])）】]?\s*(?:[—–\-:：|·,，]\s*)?")
#: What may follow a date on its line and say no more than the date: "星期一", "周三", "(Tue)", "10:02".
WEEKDAY_ONLY = re.compile(r"^\W*+(?:(?:星期|周|礼拜)[一二三四五六日天]|(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*+\.?"
                          r"|\d{1,2}:\d{2})?\W*+$", re.I)


_MONTHS = {m: n for n, names in enumerate((
    "jan january", "feb february", "mar march", "apr april", "may", "jun june", "jul july", "aug august",
    "sep sept september", "oct october", "nov november", "dec december"), start=1) for m in names.split()}
_MONTH = "(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
#: A date written in words, as an English day page titles itself: "Thursday, March 14, 2024",
#: "14 March 2024", "Mar 14 2024".
WORD_DATE = re.compile(r"^\W*(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+)?(?:" + _MONTH
                       + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?|(?P<day2>\d{1,2})(?:st|nd|rd|th)?\s+"
                       + _MONTH.replace("month", "month2") + r"),?\s+(?P<year>(?:19|20)\d{2})(?!\d)", re.I)


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
    """The date a line starts with, if it starts with one: in digits, or in words."""
    if m := DATE_LEAD.match(text):
        return valid_date(*map(int, m.groups()))
    if m := WORD_DATE.match(text):
        month = _MONTHS[(m.group("month") or m.group("month2")).lower()]
        return valid_date(int(m.group("year")), month, int(m.group("day") or m.group("day2")))
    return None


#: A heading that is only a day: "2025-04-08", "4.8", "1月12日" (a log's days, the year often left out).
_DATE_HEADING = re.compile(r"^(?:(?P<y>(?:19|20)\d{2})[-./年])?(?P<m>\d{1,2})[-./月](?P<d>\d{1,2})日?$")


def date_heading(title: str) -> tuple[int | None, int, int] | None:
    """(year or None, month, day) of a cleaned heading that is only a date, else None."""
    m = _DATE_HEADING.match(title.strip())
    if not m:
        return None
    month, day = int(m.group("m")), int(m.group("d"))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return (int(m.group("y")) if m.group("y") else None), month, day
