"""The offline answerer: the best sentences of the retrieved entries, quoted with [n] citations.

No model and no network: the entries are cut into sentences (Chinese 。！？； and English
punctuation, table cells, bullets), each sentence is scored against the question by weighted
query-term overlap plus the dense similarity of the chunk it sits in (vectors already in the
index, so nothing is embedded per sentence and the answer stays fast), and the few best are
written in source order. Deterministic for a given index and question. A note's own bracketed
numbers (``[21]``) are neutralised in the quotes, so every ``[n]`` of the answer is a citation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from rag.ingest import org
from rag.ingest.markup import clean_inline, normalized_title, parse_heading
from rag.ingest.notes import Entry
from rag.ingest.tables import delimited_cells
from rag.retrieve.fields import asked_fields
from rag.retrieve.names import ACRONYM, spelled_phrase
from rag.retrieve.searcher import Hit
from rag.text import lexical

from . import prompts
from .citations import neutralise
from .evidence import Evidence, term_overlap
from .intent import BUDGETS, Intent, asks_quantity, asks_reference, intent_of
from .paper_name import name_spans, short_name

MAX_SENTENCE_CHARS = 240
MIN_SENTENCE_CHARS = 6
#: Weight of the chunk's dense similarity against the lexical overlap (0..1 each).
DENSE_WEIGHT = 0.6
#: Share of the lexical score that the sentence's own words (not its entry's title) must earn.
OWN_WEIGHT = 0.15
#: How many top entries are read.
READ_ENTRIES = 4
#: Letters of a name or a label ("BabyVision", "lr trick in RL") that, inside the title, only repeat it.
SHORT_REPEAT = 40
#: A label longer than this is a bullet's text standing in for its title.
MAX_LABEL_CHARS = 100
#: A quoted sentence that ends with a colon brings this many of the sentences after it (tune:
#: bundled keywords 0.808 → 0.824 at 3; 0.816 at 2; no more at 5).
FOLLOWERS = 3
#: A question that asks how much: sentences stating a quantity (80%, 6.7×, 1.5B, 3 倍) score this much more.
QUANTITY_BONUS = 0.25

#: A number with its unit; the unit may run on into Chinese ("906M规模"), where ``\b`` sees no edge.
#: A run of digits is read from its start only.
_QUANTITY = re.compile(r"(?<![\d.])\d++(?:\.\d+)?+\s*+"
                       r"(?:%|％|×|x(?![A-Za-z])|倍|[BMKk](?![A-Za-z])|万|亿|小时|hours?|tokens?|个|层|步|bit|pp|分)")

#: Any number at all, in figures, Chinese numerals or English words: what a how-much answer must hold.
_NUMBER = re.compile(r"\d|[一二两三四五六七八九十百千半]+(?:倍|成|万|亿|分之)|百分之|"
                     r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                     r"(?:thir|four|fif|six|seven|eigh|nine)teen|(?:twen|thir|for|fif|six|seven|eigh|nine)ty|"
                     r"hundred|thousand|million|billion|trillion|half|twice|double|triple)\b", re.I)

#: Sentence ends: after 。！？； always, after "." or ":" before a capital, a digit or Chinese. Not
#: after an initial ("Carlos E. Jimenez"), a usual abbreviation ("et al. 2023", "e.g. BERT") or a
#: property's "::" ("year:: 2022"), which would leave a fragment too short to quote.
_SPLIT = re.compile(r"(?<=[。！？；!?;])|(?<=[.:：])(?<!::)(?<!\b[A-Z]\.)(?<!\bal\.)(?<!\bvs\.)(?<!\be\.g\.)"
                    r"(?<!\bi\.e\.)(?<!\bcf\.)(?<!\bFig\.)(?<!\bEq\.)(?<!\bNo\.)\s+(?=[A-Z0-9\u4e00-\u9fff*])")
_BULLET = re.compile(r"^(?:[-*+•%]|\d{1,3}[.)、])\s+")  # "%": a comment under a BibTeX record
_RULE = re.compile(r"^\s*+(?:[-=*_]{3,}|\|?\s*:?-{3,}.*|`{3,}.*|~{3,}.*)$")
_LABEL_ONLY = re.compile(r"^[^：:]{1,16}[：:]$")
_URL = re.compile(r"https?://\S+")
_LABEL_END = re.compile(r"(?<!\s)\s++[—–]\s|[。.;；]\s*+")
_LEAD_IN = re.compile(r"[:：]$")
_ARXIV_ID = re.compile(r"(?<![\d.])\d{4}\.\d{4,5}(?:v\d+)?(?![\d.])")
#: What stands between two names asked about together: "X 和 Y", "X and Y", "X/Y", "X vs Y".
_JOINED = re.compile(r"\s*+(?:和|与|及|以及|跟|同|对比|and|&|vs\.?|versus|or|或|、|/|,|，)\s*+")


@dataclass(frozen=True)
class Sentence:
    n: int  # the source number of its entry
    line: int  # 1-based line in the note
    text: str
    order: int = 0  # its place among its entry's sentences


def split_sentences(text: str, first_line: int = 1) -> list[tuple[int, str]]:
    """(line, sentence) pairs of an entry's text: bullets, table cells and sentences apart."""
    out: list[tuple[int, str]] = []
    for offset, raw in enumerate(text.split("\n")):
        line = raw.strip()
        if not line or parse_heading(line) or _RULE.match(line) or org.is_structure(raw):
            continue
        cells = [c for c in line.strip("|").split("|")] if line.startswith("|") else delimited_cells(line) or [line]
        for cell in cells:
            plain = clean_inline(_BULLET.sub("", cell.strip()))
            for part in _clauses(plain):
                part = part.strip()
                bare = _URL.sub("", part).strip()  # "链接: https://…" says nothing to quote
                if len(bare) < MIN_SENTENCE_CHARS or _LABEL_ONLY.match(bare):
                    continue
                if len(part) > MAX_SENTENCE_CHARS:
                    part = part[:MAX_SENTENCE_CHARS].rstrip() + "…"
                out.append((first_line + offset, part))
    return out


def _clauses(text: str) -> list[str]:
    """The text cut at sentence ends, but not inside brackets: "(the closed-book setting; 56.1%)"
    stays whole, or its number would be lost as a fragment too short to quote. A bracket left open
    holds at most a quotable sentence's length together."""
    out: list[str] = []
    for part in _SPLIT.split(text):
        if out and _open_brackets(out[-1]) > 0 and len(out[-1]) < MAX_SENTENCE_CHARS:  # a stray "(" ends
            out[-1] += (" " if out[-1].endswith((".", ":")) else "") + part  # the cut took that space
        else:
            out.append(part)
    return out


def _open_brackets(text: str) -> int:
    return text.count("(") + text.count("（") - text.count(")") - text.count("）")


def _scored(hits: Sequence[Hit], evidence: Evidence, read: int,
            rank_decay: float = 0.0) -> list[tuple[float, int, int, Sentence]]:
    """(score, n, line, sentence) for every sentence of the first ``read`` entries, best first.

    Scored by the evidence's question-term weights and the dense similarity (0..1) of the
    best chunk covering the sentence's line; a question asking how much prefers sentences that
    state a quantity.
    """
    weights, line_similarity = evidence.weights, evidence.line_similarity
    quantity = asks_quantity(evidence.question)
    spelled: dict[str, set[str]] = {}  # "RM" in a sentence → the question's "reward model"
    scored: list[tuple[float, int, int, Sentence]] = []
    for n, hit in enumerate(hits[:read], start=1):
        entry = hit.entry
        title_tokens = set(lexical.tokenize(entry.title))
        sentences = split_sentences(entry.text, entry.line_start)
        if len(sentences) > 1:
            title = normalized_title(entry.title)
            sentences = [s for s in sentences if not _repeats_title(entry, title, *s)] or sentences
        for order, (line, text) in enumerate(sentences):
            own = set(lexical.tokenize(text))
            own |= {term for term, forms in evidence.translations.items() if not forms.isdisjoint(own)}
            for acronym in ACRONYM.findall(text):
                if acronym not in spelled:
                    phrase = spelled_phrase(acronym, evidence.question, any_case=True)
                    spelled[acronym] = set(lexical.tokenize(phrase)) if phrase else set()
                own |= spelled[acronym]
            # the title says which paper; the sentence itself must carry the answer to win a tie
            lexical_score = (1 - OWN_WEIGHT) * term_overlap(own | title_tokens, weights) \
                + OWN_WEIGHT * term_overlap(own, weights)
            score = lexical_score + DENSE_WEIGHT * line_similarity.get((entry.id, line), 0.0)
            if quantity and _QUANTITY.search(text):
                score *= 1 + QUANTITY_BONUS
            score *= 1 - rank_decay * (n - 1)
            scored.append((score, n, line, Sentence(n, line, text, order)))
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    return scored


def _repeats_title(entry: Entry, title: str, line: int, text: str) -> bool:
    """Says nothing its label does not: a line that is the (normalised) ``title`` again, or a name
    or a label within it. A long sentence of a bullet that is its own title ("MoBA: … — MoE-style
    routing applied to attention: …" in a digest) is the entry's text, not a repeat."""
    words = normalized_title(text)
    if not words or words not in title:
        return False
    whole = normalized_title(entry.text.split("\n")[line - entry.line_start])
    return whole in title or len(words) <= SHORT_REPEAT


def pick_sentences(hits: Sequence[Hit], evidence: Evidence) -> list[Sentence]:
    """The few best sentences of the top entries, in source order; how many, and from how many
    entries, is what the question asks for (:mod:`rag.answer.intent`)."""
    intent = intent_of(evidence.question)
    budget = BUDGETS[intent]
    named = _named(hits, evidence.question) if intent is not Intent.NAME else []
    fielded = [n for n, hit in enumerate(hits, start=1)  # "which papers are NeurIPS 2023", not "the
               if hit.why.fields and intent is Intent.LIST]  # Microsoft model that …" (org: Microsoft)
    scored = _scored(hits, evidence, max([READ_ENTRIES, *named, *fielded]), budget.rank_decay)
    if named:  # "InstructGPT 和 DeepSeek-R1 分别…" asks about those two, and no other entry
        scored = [s for s in scored if s[1] in named]
    if not scored:
        return []
    best = scored[0][0]
    chosen: list[Sentence] = []
    per_entry: dict[int, int] = {}
    seen: set[str] = set()
    for score, n, _, sentence in scored:
        if len(chosen) >= budget.sentences or score < budget.keep_ratio * best:
            break
        if per_entry.get(n, 0) >= budget.per_entry or sentence.text in seen:
            continue
        if n not in per_entry and per_entry and score < budget.other_entry_ratio * best:
            continue
        chosen.append(sentence)
        per_entry[n] = per_entry.get(n, 0) + 1
        seen.add(sentence.text)
    for n in [*named, *fielded]:  # "Flamingo and BLIP-2 …": each one the question names says its part;
        if n not in per_entry:  # so does each whose fields hold the value it asks for
            chosen += [sentence for _, m, _, sentence in scored if m == n][:1]
            per_entry[n] = 1
    asked = asked_fields(evidence.question)  # "DINOv2 现在是什么状态": the top entry's status is the answer,
    if any(k in asked for k, _ in hits[0].entry.properties) and all(s.n != 1 for s in chosen):  # whatever
        chosen += [sentence for _, m, _, sentence in scored if m == 1][:1]  # sentence scores best
    for lead in [s for s in chosen if _LEAD_IN.search(s.text)]:  # "设计了三层奖励结构：" says what follows
        chosen += [s for _, m, _, s in scored if m == lead.n and lead.order < s.order <= lead.order + FOLLOWERS
                   and s not in chosen]
    return sorted(set(chosen), key=lambda s: (s.n, s.order))


def _named(hits: Sequence[Hit], question: str) -> list[int]:
    """The source numbers of the entries a question names side by side ("LLaVA and Voyager",
    "Chain-of-Thought 和 Self-Consistency", "MQA/GQA 和 PagedAttention"): each is asked about. A
    name beside no other ("Reflexion 在 HumanEval 上") is the question's subject or its setting."""
    spans = sorted((span, n) for n, hit in enumerate(hits, start=1) for span in name_spans(question, hit.entry))
    asked = lexical.plain(question)
    named: set[int] = set()
    for ((_, end), a), ((start, _), b) in pairwise(spans):
        if a != b and _JOINED.fullmatch(asked[end:start]):
            named |= {a, b}
    return sorted(named)


def best_sentences(hits: Sequence[Hit], evidence: Evidence, per_entry: int) -> dict[int, str]:
    """Source n → its ``per_entry`` best sentences in note order, for a model that should read
    less than whole entries (a small local one: shorter prompt, less to drift on)."""
    chosen: dict[int, list[Sentence]] = {}
    for _, n, _, sentence in _scored(hits, evidence, len(hits)):
        picked = chosen.setdefault(n, [])
        if len(picked) < per_entry and all(s.text != sentence.text for s in picked):
            picked.append(sentence)
    return {n: "\n".join(s.text for s in sorted(picked, key=lambda s: s.line)) for n, picked in chosen.items()}


def write_answer(sentences: Sequence[Sentence], hits: Sequence[Hit], evidence: Evidence, lang: str) -> str:
    """The quoted sentences under their entries' names, each entry's group ending with its [n]:
    the paper's short name first when its title does not say it, so "which paper" is answered; the
    note fields the question asks for after the quote ("(status: re-read)"), so "what did I mark
    it" is too."""
    sep = "：" if lang == "zh" else ": "
    asked = asked_fields(evidence.question)
    listing = intent_of(evidence.question) is Intent.LIST  # a list by a field value shows that field
    lines = [prompts.EXTRACTIVE_LEAD[lang]]
    for n in dict.fromkeys(s.n for s in sentences):
        entry = hits[n - 1].entry
        name = short_name(entry, evidence.question, evidence.lexicon, [s.line for s in sentences if s.n == n])
        title = _label(entry.title)
        label = f"{name} — {title}" if name else title
        quoted = _after_label(" ".join(s.text for s in sentences if s.n == n), title)
        reference = _reference(entry) if asks_reference(evidence.question) else None
        if reference and reference.split()[-1] not in quoted:
            quoted += f" ({reference})"
        shown = asked | (set(hits[n - 1].why.fields) if listing else set())
        if fields := [f"{k}: {v}" for k, v in entry.properties if k in shown and not _says(quoted, v)]:
            quoted += f" ({'; '.join(fields)})"
        lines.append(f"- {neutralise(label + sep + quoted)} [{n}]")
    return "\n".join(lines)


def _says(text: str, value: str) -> bool:
    """Does ``text`` already hold ``value`` as a whole ("5" is not said by "57%")?"""
    return re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", text, re.I) is not None


def _after_label(quoted: str, title: str) -> str:
    """A quote that opens by repeating its label without the repeat: a digest bullet that is its own
    title ("🟡 Speculative decoding (Leviathan …): 🟡 Speculative decoding (Leviathan …) a small
    draft model …"), or the part after the paper's name ("LIMO: Less is More …: Less is More … — only 817")."""
    if title.endswith("…"):  # a cut label: the quote is what the reader has of the rest
        return quoted
    for head in (title, *title.split(": ", 1)[1:]):
        if len(head) >= MIN_SENTENCE_CHARS and quoted.startswith(head):
            rest = quoted[len(head):].lstrip(" —–-:：,;|")
            if len(rest) >= MIN_SENTENCE_CHARS:
                return rest
    return quoted


def _label(title: str) -> str:
    """A title short enough to label a quote: a bullet that is its own title ("MoBA: Mixture of
    Block Attention (Moonshot AI) — MoE-style routing …") is cut where its name ends."""
    if len(title) <= MAX_LABEL_CHARS:
        return title
    ends = [m.start() for m in _LABEL_END.finditer(title, 8, MAX_LABEL_CHARS)
            if _open_brackets(title[:m.start()]) == 0]  # not inside "(Leviathan, Kalman, Matias — Google, …)"
    return title[:ends[0]].rstrip() if ends else title[:MAX_LABEL_CHARS].rstrip() + "…"


def _reference(entry: Entry) -> str | None:
    """Where the entry's paper is found: the arXiv id its text gives, else its link."""
    arxiv = _ARXIV_ID.search(entry.text)
    return f"arXiv {arxiv.group(0)}" if arxiv else entry.url


def extractive_answer(hits: Sequence[Hit], evidence: Evidence, lang: str) -> tuple[str, list[int]] | None:
    """The quoted answer and the source numbers it cites; None when no entry has a usable sentence,
    or when a question asking how much finds no number in any sentence worth quoting nor in the
    titles that label them: the notes name the thing but do not say it, and quoting them would
    look like an answer."""
    sentences = pick_sentences(hits, evidence)
    if not sentences:
        return None
    labels = [hits[n - 1].entry.title for n in {s.n for s in sentences}]  # each group's label shows its title
    shown = [s.text for s in sentences] + labels
    if intent_of(evidence.question) is Intent.QUANTITY and not any(_NUMBER.search(text) for text in shown):
        return None
    return write_answer(sentences, hits, evidence, lang), sorted({s.n for s in sentences})
