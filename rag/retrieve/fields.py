"""Entries by the field values a question writes whole: "which of my papers are NeurIPS 2023",
"状态是 READING", "read on 2025-05-02" ask for the entries whose fields say so (``venue:: NeurIPS
2023``, an Org ``READING`` heading, ``read-on:: 2025-05-02``), which their text may never write.

A value counts when the question holds it as a whole (not "2023" inside "20231"), it is at least
:data:`MIN_CHARS` long, and few entries share it (:data:`MAX_SHARE`): "paper" or a tag every note
carries says which notes are papers, not which one is asked about. List values ("a, b") count
item by item, so "Shunyu Yao" finds an author list that names him. A value in capitals (an Org
state, READING) is read in capitals, and a plain word ("reading", "Microsoft") only when the
question asks for its field (:func:`asked_fields`): "my reading list" asks for no state, "the
Microsoft model that clones a voice" for no organisation.
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


#: A note field a question asks for: the keys notes write it under, and the question's wording. A
#: content question's "作者是怎么解释", "参数更新" or "偏好标签" asks about the paper, not the note's fields.
_FIELDS: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = tuple(
    (frozenset(keys.split()), re.compile(pattern, re.I)) for keys, pattern in (
        ("authors author by", r"\bauthors? (?:of|are|is|list)\b|\bwho (?:wrote|are (?:the|its|their) authors)\b|"
                              r"\bits authors\b|\bwritten by\b|"
                              r"作者(?:是谁|有谁|有哪些|列表|名单|里|中|都有)|谁写"),
        ("year", r"\b(?:which|what) year\b|\bwhen was (?:it|the \w+) (?:published|released)\b|哪一?年|年份"),
        ("venue booktitle journal conference published publication",
         r"\bvenue\b|\bpublished\b|\bconference\b|\bjournal\b|会议|期刊|发在|发表在|发表于|发表的|哪个会"),
        ("status state progress", r"\bstatus\b|状态|读完了?吗|\bfinished reading\b"),
        ("aliases alias aka nickname short", r"\balias(?:es|ed)?\b|别名|简称"),
        ("tags tag keywords topics", r"\btag(?:s|ged)?\b|打了?(?:哪些|什么|几个)?标签|(?:哪些|什么)标签"),
        ("created added date-added date", r"\bcreated\b|\badded\b|哪天建|什么时候建|建的|创建|加进来|添加的"),
        ("updated modified last-modified", r"\blast updated\b|\bupdated (?:on|at)\b|\bwhen was \w+ updated\b|"
                                           r"\bmodified\b|最近一次更新|最后更新|更新(?:于|时间|日期)|什么时候更新"),
        ("rating rated stars score", r"\brating\b|\brated\b|评分|打了?几分|几[星颗]"),
        ("read read-on date-read date", r"哪天读|什么时候读|\bwhen did i read\b|\bread (?:it )?on\b"),
    ))


def asked_fields(question: str) -> frozenset[str]:
    """The keys of the note fields the question asks for ("who wrote …" → authors, "我标的状态" →
    status): an answer shows those fields of the entries it quotes."""
    return frozenset(key for keys, pattern in _FIELDS if pattern.search(question) for key in keys)


class FieldValues:
    """Each short field value of the entries, found from its first token; a question is checked only
    against the values all of whose words it has, so a value shared by many (a venue's name) costs
    a set test, not a pattern."""

    def __init__(self, properties: Sequence[Sequence[tuple[str, str]]]) -> None:
        holders: dict[str, dict[int, str]] = {}  # value → entry → the key it is held under
        for entry, fields in enumerate(properties):
            for key, value in fields:
                if key in SKIPPED:
                    continue
                for item in value.split(", "):
                    item = item.strip() if item.strip().isupper() else item.strip().lower()
                    if MIN_CHARS <= len(item) <= MAX_VALUE_CHARS:
                        holders.setdefault(item, {}).setdefault(entry, key)
        limit = max(1, int(MAX_SHARE * len(properties)))
        self._by_token: dict[str, list[tuple[str, frozenset[str], dict[int, str]]]] = {}
        for item, entries in holders.items():
            tokens = lexical.tokenize(item.lower())
            if tokens and len(entries) <= limit:
                self._by_token.setdefault(tokens[0], []).append((item, frozenset(tokens), entries))

    def matches(self, question: str, tokens: Sequence[str]) -> dict[int, dict[str, str]]:
        """Entry → its fields whose value ``question`` writes whole: key → the value written."""
        lowered, asked, held = question.lower(), asked_fields(question), set(tokens)
        found: dict[int, dict[str, str]] = {}
        for token in held:
            for item, words, entries in self._by_token.get(token, ()):
                written = question if item.isupper() else lowered  # READING the state, not "reading list"
                if not words <= held or not re.search(rf"(?<![\w.-]){re.escape(item)}(?![\w-])", written):
                    continue  # every word of it first (a set test), then the whole of it, in order
                plain = item.isalpha() and not item.isupper()  # a word, not "NeurIPS 2023", "2025-05-02"
                for entry, key in entries.items():
                    if not plain or key in asked:
                        found.setdefault(entry, {})[key] = item
        return found
