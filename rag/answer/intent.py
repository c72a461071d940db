"""What a question asks for, read from its wording: a name, a quantity, a list, an explanation.

The offline answer quotes sentences, and how many it quotes from how many entries depends on
this: "which paper …" is answered by one entry's name, "which entries …" by a line from each,
"how does …" by its mechanism sentences, "how much …" by the sentence stating the number.
Patterns are Chinese and English, the two languages of the notes; a question that matches none
is ``OTHER`` and gets the default budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Intent(Enum):
    LIST = "list"  # several entries: "which entries / papers …", "哪些 / 分别 / 各自"
    NAME = "name"  # one entry's name: "which paper …", "哪篇 / 叫什么"
    QUANTITY = "quantity"  # a number: "how many / much", "多少 / 几倍"
    EXPLAIN = "explain"  # a mechanism or reason: "how does / why", "怎么 / 为什么"
    OTHER = "other"


_LIST = re.compile(r"哪些|哪几|几篇|几个(?:模型|工作|条目|方法)|分别|各自|都有|"
                   r"\bwhich (?:[\w-]+ ){0,2}(?:entries|papers|notes|works|methods|models|approaches|systems|ones|two|"
                   r"three)\b|"
                   r"\b(?:list|each (?:one|of them))\b", re.I)
_NAME = re.compile(r"哪(?:篇|个|项|款|一篇|一条|一项)|叫什么|叫啥|什么名字|是哪|有没有(?:一篇|一个|一项)|"
                   r"^\W*which\b|\bwhich (?:[\w-]+ ){0,2}(?:paper|work|study|method|model|approach|framework|system|"
                   r"note|entry|technique|benchmark)\b|^\W*(?:is there|there's|there is|i remember) an? |"
                   r"\bwhat(?:'s| is| was) the (?:[\w-]+ ){0,2}(?:paper|work|agent|model|method|system|approach|"
                   r"benchmark)\b|\bwhat(?:'s| is) (?:it|the \w+) called\b|\bname of\b", re.I)
#: Asking for a number outright ("多少", "how many") …
_QUANTITY = re.compile(r"多少|几[个倍成次位层步篇%]|多大|多快|多长|比例|占比|百分|"
                       r"\bhow (?:many|much|large|big|fast|long)\b|\bwhat (?:share|fraction|percentage|ratio|number)\b|"
                       r"\bby how\b", re.I)
#: … or naming a measured thing, which a "how does …" question names as its subject, not its answer
#: ("how does FlashAttention get its speedup" asks for the mechanism).
_MEASURE = re.compile(r"提升了?|倍|\bscore|\baccuracy\b|\bperplexity\b|\bspeed-?ups?\b|\bthroughput\b", re.I)
_EXPLAIN = re.compile(r"为什么|为何|怎么|如何|怎样|原理|机制|思路|\bhow (?:does|do|did|is|are|can|could)\b|\bwhy\b|"
                      r"\bwhat exactly\b|\bexplain", re.I)


_REFERENCE = re.compile(r"arxiv|编号|链接|网址|\blinks?\b|\burls?\b|\bdoi\b", re.I)


def asks_reference(question: str) -> bool:
    """Does the question ask where to find the paper (its arXiv id, link or DOI)?"""
    return bool(_REFERENCE.search(question))


def asks_quantity(question: str) -> bool:
    """Does the question ask for a number, whatever else it asks ("which paper … by how much")?"""
    return bool(_QUANTITY.search(question)) or (bool(_MEASURE.search(question)) and not _EXPLAIN.search(question))


def intent_of(question: str) -> Intent:
    """The first intent whose pattern the question matches, most specific first: a list question
    often also says "which paper" and "how"."""
    for intent, pattern in ((Intent.LIST, _LIST), (Intent.NAME, _NAME), (Intent.QUANTITY, _QUANTITY),
                            (Intent.EXPLAIN, _EXPLAIN), (Intent.QUANTITY, _MEASURE)):
        if pattern.search(question):
            return intent
    return Intent.OTHER


@dataclass(frozen=True)
class Budget:
    """How much an offline answer quotes: sentences in all and per entry; how close (as a share of
    the best sentence's score) a sentence must come to join, and another entry's best sentence."""

    sentences: int
    per_entry: int
    other_entry_ratio: float
    keep_ratio: float = 0.7
    #: Each rank down the fused list costs a sentence this share of its score: for one answer,
    #: retrieval's order (which weighs the whole entry) is the better judge of which entry it is.
    rank_decay: float = 0.15


#: Chosen on the ``tune`` split of the canned collections (eval/README.md); a which-paper answer
#: trusts retrieval's order more (rank_decay 0.3: eval/third keywords 0.784 → 0.802, precision 0.815 → 0.852);
#: an explanation quotes six sentences, five from one entry, and a quantity four from one (scripts/answer_grid.py,
#: all five collections: bundled keywords 0.880 → 0.884, third 0.877 → 0.883, sixth 0.714 → 0.725, precision same),
#: as may any other question (fifth 0.851 → 0.861).
BUDGETS: dict[Intent, Budget] = {
    Intent.LIST: Budget(sentences=5, per_entry=2, other_entry_ratio=0.7, keep_ratio=0.6, rank_decay=0.05),
    Intent.NAME: Budget(sentences=3, per_entry=2, other_entry_ratio=0.85, keep_ratio=0.5, rank_decay=0.3),
    Intent.QUANTITY: Budget(sentences=4, per_entry=4, other_entry_ratio=0.85, keep_ratio=0.5),
    Intent.EXPLAIN: Budget(sentences=6, per_entry=5, other_entry_ratio=0.9, keep_ratio=0.4),
    Intent.OTHER: Budget(sentences=4, per_entry=4, other_entry_ratio=0.9, keep_ratio=0.6),
}
