"""What the coverage gate (:mod:`rag.answer.gate`) weighs: do the retrieved entries plausibly answer
the question, or are they the "best of nothing"?

Fused RRF scores are ranks, not relevance, so they cannot tell a match from the least bad of
unrelated entries. :class:`Evidence` gathers what can, all from the :class:`RetrievalResult`
(nothing is re-read from the index or re-embedded): the share of the question's rarity-weighted
terms that the top entries contain, the best raw dense similarity per embedder, and the named
things in the question that the notes never mention. Extractive answers reuse its term weights,
per-line similarity and the terms' dictionary translations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from rag.retrieve.fields import asked_fields
from rag.retrieve.names import question_names, spells_out
from rag.retrieve.retrievers import BM25
from rag.retrieve.searcher import Hit, RetrievalResult
from rag.store import Lexicon
from rag.text import lexical

_NAME_PARTS = re.compile(r"[-./+]")
#: How high the top entry must stand in each of BM25 and the dense rankings for them to agree
#: (chosen on ``tune`` of both canned collections: it saved 2 of 58 answerable questions of
#: the second one from refusal and let no uncovered question through, eval/README.md).
AGREE_RANK = 3
#: Chunks a name may appear in and still single out the entry named by it (or a twentieth of them).
RARE_NAME_CHUNKS = 3
MIN_CODE_CHARS = 6  # "2025-05-02", "v1.2.3": a code, not "90" or a year
#: How close the words of a multi-word name must stand in an entry for it to write that name.
NEAR_CHARS = 40


@dataclass(frozen=True)
class Evidence:
    """How well the retrieved entries match the question, beyond their fused rank."""

    coverage: float  # share of the question's term weight found in the top entries (0..1)
    similarity: dict[str, float]  # best raw dense similarity of a top-entry chunk, per embedder
    standout: dict[str, float]  # the best chunk's z-score against the question's similarity to the notes
    line_similarity: dict[tuple[str, int], float]  # (entry id, line) → normalised chunk similarity
    weights: dict[str, float]  # question term → rarity weight
    names: list[str] = field(default_factory=list)  # named things in the question (TabPFN, ROME)
    missing_names: list[str] = field(default_factory=list)  # those the notes never mention
    #: BM25 and every embedder put the top entry among their first AGREE_RANK: rankings that share
    #: no signal agree, which holds on any collection (a raw score's scale does not).
    consensus: bool = False
    question: str = ""  # as searched (a follow-up made standalone): what the extractive answer reads
    lexicon: Lexicon | None = None  # the notes' document frequencies: how rare a name is
    #: question term → its dictionary translations (学科 → subject, subjects): how a sentence in
    #: the other language says it
    translations: dict[str, frozenset[str]] = field(default_factory=dict)
    #: The rare name by which the question calls the top entry (its title or an alias: "QLoRA 说 65B
    #: …", "DPO 那篇 note 打了哪些 tags"): the question is about that entry, whatever words it shares.
    names_top: str | None = None
    #: The note field the question asks for ("who wrote", "status") that the top entry, which the
    #: question names (a common name too: "DPO"), holds: its answer is that field.
    field_held: str | None = None
    #: The question's exact terms (a date, an id, a number with its unit) that the top entries hold
    #: and few chunks do: "read on 2025-05-02" is about the entries that say so, however unlike
    #: any chunk its wording is.
    exact_held: tuple[str, ...] = ()


def term_overlap(tokens: set[str], weights: Mapping[str, float]) -> float:
    """Share of the question's term weight that ``tokens`` contain (0..1)."""
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in tokens) / total if total else 0.0


def mentioned(name: str, lexicon: Lexicon) -> bool:
    """Whether the notes use a name; compounds (``GRPO-style``) count by their named parts."""
    # a part counts when it is a name itself: "GRPO-style" by GRPO, but "Mamba-2" only whole, and
    # "Self-RAG" too: a capitalised word beside the name makes a name of its own, not RAG
    pieces = _NAME_PARTS.split(name)
    own_name = any(p[:1].isupper() and not lexical.is_name(p) for p in pieces)
    parts = [] if own_name else [p for p in pieces if lexical.is_name(p)]
    parts = parts or [name]

    def known(part: str) -> bool:  # the whole word, not its pieces: "Min-K%" is not "min"
        words = (lexical.tokenize(p)[:1] for p in (part, part.rstrip("sS")))  # GPUs → gpu
        return any(not w or lexicon.knows(w[0]) for w in words)  # a bare stopword is no name

    return all(known(p) for p in parts)


def phrase_mentioned(name: str, result: RetrievalResult) -> bool:
    """Whether the notes mention a capitalised name: one word when the notes use it or its
    Chinese (Xiaomi → 小米); a run of words when one retrieved entry writes it, in either language
    word by word ("Toyota Research" → 丰田 … 研究). A name the notes hold is one that search finds."""
    words = name.split()
    if len(words) == 1:
        return mentioned(name, result.lexicon) or any(
            all(result.lexicon.knows(t) for t in lexical.tokenize(zh)) for zh in _translations(name, result))
    phrase = lexical.plain(name)
    forms = [[w.lower(), *_translations(w, result)] for w in words]
    for hit in result.hits:
        text = lexical.plain(_hit_text(hit))
        if phrase in text or _near(text, forms):
            return True
    return False


def _near(text: str, forms: list[list[str]]) -> bool:
    """Whether one form of every word stands within NEAR_CHARS of the others (丰田 … 研究 for
    "Toyota Research"); words scattered over an entry do not make its name."""
    places = [[m.start() for alt in alts if alt for m in re.finditer(re.escape(alt), text)] for alts in forms]
    starts = sorted(p for found in places for p in found)
    return all(places) and any(all(any(start <= p <= start + NEAR_CHARS for p in found) for found in places)
                               for start in starts)


def _written_apart(name: str, result: RetrievalResult) -> bool:
    """A compound a retrieved entry writes with spaces ("Self RAG" for Self-RAG)."""
    phrase = lexical.plain(name)
    return " " in phrase and any(phrase in lexical.plain(_hit_text(hit)) for hit in result.hits)


def _spelled_out(name: str, result: RetrievalResult) -> bool:
    """An acronym the notes never write but a retrieved entry spells out (DPO: Direct Preference …,
    CFG: classifier-free guidance)."""
    return any(spells_out(name, _hit_text(hit), any_case=True) for hit in result.hits)


def _hit_text(hit: Hit) -> str:
    return f"{hit.entry.title}\n{hit.entry.text}"


def _translations(word: str, result: RetrievalResult) -> tuple[str, ...]:
    return result.dictionary.lookup(word.lower()) if result.dictionary else ()


def _line_similarity(result: RetrievalResult) -> dict[tuple[str, int], float]:
    """Each line of each hit's chunks → its best chunk's similarity (language-neutral where the
    notes mix languages), min-max normalised over all the hits' chunks per embedder and averaged
    over embedders (0..1)."""
    matches = [m for hit in result.hits for m in hit.chunks]
    if not matches:
        return {}
    embedders = list(dict.fromkeys(name for m in matches for name in m.similarity))
    chunk_sim = np.zeros(len(matches), dtype=np.float32)
    for name in embedders:
        cos = np.array([m.neutral.get(name, m.similarity.get(name, 0.0)) for m in matches], dtype=np.float32)
        spread = float(cos.max() - cos.min())
        chunk_sim += (cos - cos.min()) / spread if spread > 0 else np.ones_like(cos)
    if embedders:
        chunk_sim /= len(embedders)
    lines: dict[tuple[str, int], float] = {}
    for m, sim in zip(matches, chunk_sim.tolist(), strict=True):
        for line in range(m.chunk.line_start, m.chunk.line_end + 1):
            key = (m.chunk.entry_id, line)
            lines[key] = max(lines.get(key, 0.0), sim)
    return lines


def gather_evidence(result: RetrievalResult, top_entries: int) -> Evidence:
    """Term coverage and dense similarity of the ``top_entries`` best hits, plus per-line similarity."""
    weights = result.term_weights()
    top = result.hits[:top_entries]
    tokens = {t for hit in top for m in hit.chunks for t in lexical.tokenize(m.chunk.embed_text)}
    tokens |= {t for hit in top for t in lexical.tokenize(hit.entry.title)}
    similarity: dict[str, float] = {}
    for m in (m for hit in top for m in hit.chunks):
        for name, sim in m.similarity.items():
            similarity[name] = max(similarity.get(name, sim), sim)
    names = question_names(result.query.text)
    missing = [n for n in names if not mentioned(n, result.lexicon) and not _spelled_out(n, result)
               and not _written_apart(n, result)]
    for name in result.query.names:
        if not any(name.lower() in n.lower() for n in names):  # "Constitutional AI" is more than "AI"
            names.append(name)
            if not phrase_mentioned(name, result):
                missing.append(name)
    translations = _translations_of(weights, result)
    tokens |= {term for term, forms in translations.items() if not forms.isdisjoint(tokens)}
    return Evidence(term_overlap(tokens, weights), similarity, dict(result.standout), _line_similarity(result),
                    weights, names, missing, _consensus(result), result.query.text, result.lexicon,
                    translations, _names_top(result, names), _field_held(result, names),
                    tuple(t for t in dict.fromkeys((*result.query.exact, *_dated(result.query.tokens)))
                          if t in tokens and _rare(t, result.lexicon)))


def _field_held(result: RetrievalResult, names: list[str]) -> str | None:
    """The asked field the top entry holds, when the question names that entry (its title or an alias)."""
    if not (asked := asked_fields(result.query.text)) or not _calling_top(result, names):
        return None
    return next((key for key, _ in result.hits[0].entry.properties if key in asked), None)


def _names_top(result: RetrievalResult, names: list[str]) -> str | None:
    """The question's name that the top entry's title or aliases write and few chunks use
    (:data:`RARE_NAME_CHUNKS`, or a twentieth of them): "LLMs" in a title names nothing in particular."""
    return next((name for name in _calling_top(result, names) if (tokens := lexical.tokenize(name))
                 and all(_rare(t, result.lexicon) for t in tokens)), None)


def _calling_top(result: RetrievalResult, names: list[str]) -> list[str]:
    """The question's names that the top entry's title or aliases write."""
    if not result.hits:
        return []
    entry = result.hits[0].entry
    called = " ".join((entry.title, *entry.aliases)).lower()
    return [name for name in names if name.lower() in called]


def _dated(tokens: tuple[str, ...]) -> list[str]:
    """Tokens that are a date or a code (2025-05-02, 2305.14314): exact, though no name or unit."""
    return [t for t in tokens if len(t) >= MIN_CODE_CHARS and any(c.isdigit() for c in t) and not t.isdigit()]


def _rare(token: str, lexicon: Lexicon) -> bool:
    """In at most :data:`RARE_NAME_CHUNKS` chunks, or a twentieth of them: it singles entries out."""
    return lexicon.doc_freq.get(token, 0) <= max(RARE_NAME_CHUNKS, lexicon.n_chunks / 20)


def _translations_of(weights: Mapping[str, float], result: RetrievalResult) -> dict[str, frozenset[str]]:
    """Each question term's tokens in the other language (:meth:`Dictionary.tokens_of`)."""
    if result.dictionary is None:
        return {}
    return {term: frozenset(forms) for term in weights if (forms := result.dictionary.tokens_of(term))}


def _consensus(result: RetrievalResult) -> bool:
    if not result.hits:
        return False
    ranks = result.hits[0].sources
    rankings = [BM25, *result.standout]
    return len(rankings) > 1 and all(name in ranks and ranks[name].rank <= AGREE_RANK for name in rankings)
