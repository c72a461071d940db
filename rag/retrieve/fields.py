"""Entries by the field values a question writes whole: "which of my papers are NeurIPS 2023",
"状态是 READING", "read on 2025-05-02" ask for the entries whose fields say so (``venue:: NeurIPS
2023``, an Org ``READING`` heading, ``read-on:: 2025-05-02``), which their text may never write.

A value counts when the question holds it as a whole (not "2023" inside "20231"), it is at least
:data:`MIN_CHARS` long, and few entries share it (:data:`MAX_SHARE`): "paper" or a tag every note
carries says which notes are papers, not which one is asked about. List values ("a, b") count
item by item, so "Shunyu Yao" finds an author list that names him. A value in capitals (an Org
state, READING) is read in capitals: "my reading list" asks for no state.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.text import lexical

MIN_CHARS = 3
MAX_SHARE = 0.25  # of the entries: a value more of them hold singles none out
MAX_VALUE_CHARS = 60  # longer values are prose, not something a question repeats
#: Fields whose values other rankings already read (titles, aliases), topics BM25 weighs as words
#: (tags: "alignment", "agents"), or that are not asked by value (links, ids).
SKIPPED = frozenset("""title name aliases alias aka url link pdf source arxiv doi id code tags tag keywords
    topics type""".split())


class FieldValues:
    """Each short field value of the entries, found from its first token."""

    def __init__(self, properties: Sequence[Sequence[tuple[str, str]]]) -> None:
        holders: dict[str, set[int]] = {}
        for entry, fields in enumerate(properties):
            for key, value in fields:
                if key in SKIPPED:
                    continue
                for item in value.split(", "):
                    item = item.strip() if item.strip().isupper() else item.strip().lower()
                    if MIN_CHARS <= len(item) <= MAX_VALUE_CHARS:
                        holders.setdefault(item, set()).add(entry)
        limit = max(1, int(MAX_SHARE * len(properties)))
        self._by_token: dict[str, list[tuple[str, list[int]]]] = {}
        for item, entries in holders.items():
            tokens = lexical.tokenize(item.lower())
            if tokens and len(entries) <= limit:
                self._by_token.setdefault(tokens[0], []).append((item, sorted(entries)))

    def matches(self, question: str, tokens: Sequence[str]) -> dict[int, list[str]]:
        """Entry → the values of its fields that ``question`` writes whole."""
        lowered = question.lower()
        found: dict[int, list[str]] = {}
        for token in dict.fromkeys(tokens):
            for item, entries in self._by_token.get(token, ()):
                asked = question if item.isupper() else lowered  # READING the state, not "reading list"
                if re.search(rf"(?<![\w.-]){re.escape(item)}(?![\w-])", asked):
                    for entry in entries:
                        found.setdefault(entry, []).append(item)
        return found
