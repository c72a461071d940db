"""What people call an entry's paper when its title does not say it.

A which-paper question is answered by a name ("CBU", "TRIT", "CLIP"), and notes often title an
entry with the paper's full title ("Judging What We Cannot Solve: …") or a topic ("开源模型
IOI金牌") while the name the question expects sits in the body. Notes introduce that name in a
few recurring ways, which are read here in order of how surely they mean "this paper is X": the
paper's own title as the first line ("TiDAR: Think in Diffusion, …" under "## TiDR 5"); a
front-matter alias; an acronym spelled out right before it ("Consequence-Based Utility, CBU"); a
name after "提出了 / 名为 / called / we propose" or quoted as 'the "Chinchilla" paper'; an opening
line that is only a name ("OpenAI 的 CLIP。", as reading logs start); the rarest name the entry
keeps repeating; else a name in its project link.

The other way round, :func:`called` and :func:`name_spans` read what a title calls its subject, so
that a question naming two entries side by side ("Flamingo and BLIP-2") is seen to ask about both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.ingest.markup import clean_inline, title_head, untagged
from rag.ingest.notes import Entry
from rag.ingest.sections import is_part_heading
from rag.retrieve.names import spells_out
from rag.store import Lexicon
from rag.text import CJK, lexical

MAX_NAME_CHARS = 40

_NAME = re.compile(r"(?<![\w-])[A-Za-z][\w+-]*[\w+]")
#: "Integrated Training (TRIT)" and "(Consequence-Based Utility, CBU)": an acronym after its words.
#: Words are tried from a word's start, and hyphens only part them: a long word is read once, not
#: split every way (seconds for 20 000 letters before).
_WORDS = r"(?<![A-Za-z0-9_-])([A-Za-z]\w*+(?:[\s-]+[A-Za-z]\w*+){1,8})"
_ACR = r"([A-Z][A-Za-z0-9-]*[A-Z0-9])"
_ACRONYMS = (re.compile(_WORDS + r"\s*[(（]\s*" + _ACR + r"\s*[)）]"),
             re.compile(r"[(（]\s*" + _WORDS + r"\s*[,，]\s*" + _ACR + r"\s*[)）]"))
_CALLING = r"名为|叫做?|称为|called|named|dubbed"
_PROPOSING = r"提出了?|推出了?|propose[sd]?|introduce[sd]?|present[s]?"
#: The name a sentence introduces: a capitalised word right after "名为 / called", a name after "提出了 / we propose".
_CALLED = re.compile(rf"(?:{_CALLING})\s*[“\"「『]?([A-Z][\w+-]*[\w+])", re.I)
_PROPOSED = re.compile(rf"(?:{_PROPOSING})\s*(?:了|一种|一个|an?\s|the\s)?\s*[“\"「『]?([A-Za-z][\w+-]*[\w+])", re.I)
#: A name quoted as the paper's: 'The "Chinchilla" paper.', '“Chinchilla” 论文'.
_QUOTED_PAPER = re.compile(r"[“\"「『]([A-Z][\w+-]*[\w+])[”\"」』]\s*(?:paper|论文|那篇)")
#: An acronym is the paper's own when the clause before it says so, not a term it merely defines (RLVR).
_INTRODUCING = re.compile(rf"{_CALLING}|{_PROPOSING}", re.I)
INTRO_REACH = 30
#: A note line that is only a key:: value property says nothing about the name.
_PROPERTY = re.compile(r"^\s*+(?:[-*]\s*+)?[\w-]+::")
#: An opening sentence that only names the thing: "CLIP." or "OpenAI 的 CLIP。" / "OpenAI's CLIP."
_NAMING_LINE = re.compile(r"^(?:[\w-]+\s*(?:的|'s)\s*)?([A-Za-z][\w+-]*[\w+])\s*[。.!！]?$")
#: What in a bracket cites a paper: its authors ("et al") or a year.
_CITES = r"(?:et al|\b(?:19|20)\d{2}\b)"
#: A title that is a short name then its citation: "DPO（Rafailov et al., 2023）", "Constitutional AI
#: (Bai et al.)"; not a paper's full title with its venue ("Robust Speech Recognition via … (ICML 2023)").
_CITED = re.compile(r"^[^\s:：(（]+(?:\s+[^\s:：(（]+){0,2}\s*[(（][^)）]*" + _CITES)
#: "**DeepSeekMath**（Shao et al. …）": a line that opens with a bold name.
_BOLD_LEAD = re.compile(r"^\s*(?:[-*+]\s+)?\*\*([A-Za-z][\w+-]*[\w+])\*\*")
#: "**Let's Verify Step by Step**（Lightman et al. · OpenAI · 2023）": a line that introduces a
#: paper, its bold title then its citation, as a group-meeting note does for each paper presented.
_CITED_LEAD = re.compile(r"^\s*(?:[-*+]\s+)?\*\*([A-Za-z][^*\n]{1,80})\*\*\s*[(（][^)）]*" + _CITES)
#: A name cited where it is mentioned: "the PagedAttention paper (Kwon et al., SOSP 2023)",
#: "QLoRA (Dettmers et al. 2023)"; the paper an entry reads, when nothing says so more plainly.
_CITED_NAME = re.compile(r"(?<![\w-])([A-Z][\w+-]*[\w+])(?:\s+paper)?\s*[(（][^()（）]{0,60}?" + _CITES)
#: What a paper introduces besides itself: "introduces the CounterFact dataset" names no paper.
_BY_PRODUCT = re.compile(r"\s*+(?:dataset|benchmark|数据集|基准)", re.I)
_LATIN_WORD = re.compile(r"[A-Za-z][\w'-]*")
_SUBTITLE = re.compile(r"(?<!\s)\s*+[:：]|\s[—–-]\s")


#: A paper's own title as a line: a name, a colon, then words ("TiDAR: Think in Diffusion, …").
_TITLE_LINE = re.compile(r"^([A-Za-z][\w+.-]*[\w+](?:\s+[A-Z][\w+-]*){0,3})\s*[:：]\s*[A-Z][\w-]*(?:\s+[\w-]+){2,}")
_URLS = re.compile(r"https?://[^\s)\]>]+")
_URL_WORDS = frozenset({"github", "io", "com", "www", "html", "pdf", "abs", "arxiv", "org", "http", "https"})


def _spells(words: str, acronym: str) -> bool:
    """Are the acronym's capitals the words' initials, in order, the last one last ("Multi-head
    Latent Attention" → MLA)?"""
    letters = [c for c in acronym if c.isupper()]
    initials = [part[0].upper() for part in re.split(r"[\s-]+", words) if part]
    rest = iter(initials)
    return len(letters) >= 2 and letters[-1] == initials[-1] and all(c in rest for c in letters)


def _opening_name(entry: Entry) -> str | None:
    """The name an entry's first line after its title opens with in bold ("**DeepSeekMath**（Shao
    et al.）") or consists of ("OpenAI 的 CLIP。")."""
    title = clean_inline(entry.title).lower()
    for raw in entry.text.split("\n"):
        line = clean_inline(raw).strip()
        if not line or (title and title in line.lower()) or _PROPERTY.match(raw):
            continue
        if bold := _BOLD_LEAD.match(raw):
            return bold.group(1)
        first = re.split(r"(?<=[。！？!?])|(?<=\.)\s", line, maxsplit=1)[0].strip()
        named = _NAMING_LINE.match(first)
        return named.group(1) if named else None
    return None


def introduced_name(entry: Entry) -> str | None:
    """The first name the entry's text introduces as its own, by the patterns above."""
    text, title = clean_inline(entry.text), entry.title.lower()

    def own(m: re.Match[str]) -> bool:
        return _spells(m.group(1), m.group(2)) and (
            m.group(1).lower() in title or bool(_INTRODUCING.search(text[max(0, m.start() - INTRO_REACH):m.start()])))

    found: list[tuple[int, str]] = []
    for pattern in _ACRONYMS:
        found += [(m.start(2), m.group(2)) for m in pattern.finditer(text) if own(m)]
    found += [(m.start(1), m.group(1)) for m in _CALLED.finditer(text) if m.group(1)[0].isupper()]
    found += [(m.start(1), m.group(1)) for m in _QUOTED_PAPER.finditer(text)]
    for m in _PROPOSED.finditer(text):
        if lexical.is_name(m.group(1)) and not _BY_PRODUCT.match(text, m.end(1)):
            found.append((m.start(1), m.group(1)))
    if found:
        return min(found)[1]
    if cited := next((m.group(1) for m in _CITED_NAME.finditer(text) if lexical.is_name(m.group(1))), None):
        return cited
    return _opening_name(entry)


def _leads_with_name(title: str) -> bool:
    """Does the title start with a name of its own ("HySparse", "ProGRPO — …"), not a topic
    ("开源模型 IOI金牌") or a sentence ("Back to Basics")? A title that is a name and its citation
    ("Constitutional AI（Bai et al., Anthropic, 2022）") does, whatever the name's words."""
    if _CITED.match(clean_inline(title)):
        return True
    head = title_head(title)  # one word, unless a chat handle ("kevin.zhang: serving q: …")
    return (" " not in head and not head.islower()) or any(_names_itself(w) for w in head.split())


def _names_itself(word: str) -> bool:
    """A name on its own (HySparse, GRPO, Qwen2.5), not a title-cased compound ("Self-Improving")
    or a term beside Chinese ("IOI金牌")."""
    title_cased = all(part[:1].isupper() and part[1:].islower() for part in word.split("-"))
    return lexical.is_name(word) and word.isascii() and not title_cased


def short_name(entry: Entry, question: str, lexicon: Lexicon | None, lines: Sequence[int] = ()) -> str | None:
    """The name of the entry's paper — of the ones ``lines`` are about, when the entry presents
    several — where its title does not say it; never a name the title or the question already
    holds (repeating it answers nothing)."""
    title, asked = entry.title.lower(), question.lower()

    def fresh(name: str) -> bool:
        return len(name) <= MAX_NAME_CHARS and name.lower() not in title and name.lower() not in asked

    if presented := [name for line in lines if (name := presented_name(entry, line))]:
        # "Math-Shepherd" for a line under "**Math-Shepherd**（Peiyi Wang et al. · 2023）"
        return " / ".join(name for name in dict.fromkeys(presented) if fresh(name)) or None
    if (line_name := _title_line_name(entry)) and fresh(line_name):
        return line_name  # "## TiDR 5" over "TiDAR: Think in Diffusion, …": the paper is TiDAR
    if _leads_with_name(entry.title):
        return None
    alias = next((a for a in entry.aliases if fresh(a)), None)
    if alias:
        return alias
    introduced = introduced_name(entry)
    if introduced and fresh(introduced):
        return introduced
    counts: dict[str, int] = {}
    for word in _NAME.findall(entry.text):
        if lexical.is_name(word):
            counts[word] = counts.get(word, 0) + 1

    def rarity(word: str) -> float:
        token = (lexical.tokenize(word) or [word.lower()])[0]
        return lexicon.weight(token) if lexicon is not None else 1.0

    names = [(count * rarity(w), w) for w, count in counts.items() if count >= 2 and fresh(w)]
    if _paper_title(entry.title):  # "Attention Is All You Need" names its paper, a term it repeats (BLEU)
        head = title_head(entry.title)  # does not; a coined name (ProGRPO) or the title's initials (GEA) do
        return next((w for _, w in sorted(names, reverse=True) if _coined(w) or spells_out(w, head)), None)
    if names:
        return max(names)[1]
    return next((w for w in _url_names(entry) if fresh(w)), None)


def _paper_title(title: str) -> bool:
    """A paper's own title, in Latin script, four words or more: "Training language models to
    follow instructions with human feedback", not a topic ("开源模型 IOI金牌") or a name."""
    return len(_LATIN_WORD.findall(untagged(clean_inline(title)))) >= 4 and not CJK.search(title)


def _coined(word: str) -> bool:
    """A made-up name, capitals inside a word (ProGRPO, LoRA), not a term (BLEU, CoT, GPT-4, Low-Probability)."""
    return len(word) >= 4 and word.isalpha() and any(c.islower() for c in word) and sum(c.isupper() for c in word) >= 2


def presented_name(entry: Entry, line: int) -> str | None:
    """The paper whose block holds the entry's ``line`` when the entry presents papers one after
    another, each block its bold title and citation then its lines: "Math-Shepherd" of
    "**Math-Shepherd**（Peiyi Wang et al. · 2023 · arXiv …）", "AWQ" of "**AWQ: Activation-aware
    Weight Quantization**（Ji Lin …）". A blank line ends a block: the discussion after it is the
    whole meeting's."""
    for raw in reversed(entry.text.split("\n")[:max(0, line - entry.line_start + 1)]):
        if lead := _CITED_LEAD.match(raw):
            return _SUBTITLE.split(clean_inline(lead.group(1)), maxsplit=1)[0].strip()
        if not raw.strip():
            return None
    return None


def _title_line_name(entry: Entry) -> str | None:
    """The name of a paper's title written as the entry's first line: "TiDAR: Think in Diffusion, …",
    "First Try Matters: Revisiting …" (a few capitalised words; not a part's label, "Key Results: …")."""
    lines = [line for line in entry.text.split("\n")[1:] if line.strip()]
    m = _TITLE_LINE.match(clean_inline(lines[0]).strip()) if lines else None
    if not m:
        return None
    head = m.group(1)
    return head if (" " in head or lexical.is_name(head)) and not is_part_heading(head) else None


def _url_names(entry: Entry) -> list[str]:
    """Names in the entry's project link, the last resort: ReVidgen of "dagroup-pku.github.io/ReVidgen.github.io"."""
    return [w for url in _URLS.findall(entry.text) for w in _NAME.findall(url.split("://", 1)[-1])
            if lexical.is_name(w) and w.lower() not in _URL_WORDS]


#: A run of spaces is tried from its start only (``(?<!\s)``): tried from each space, a long run costs
#: its length squared.
_HEAD_END = re.compile(r"(?<!\s)\s*+[:：(（—–|]|\s-\s")
_AND = re.compile(r"(?<!\s)\s*+[&/]\s*+|(?<!\s)\s++(?:与|和|and)\s++")
#: "(LLaVA)" names the paper; "(Kwon et al., SOSP 2023)" and "(ICML 2023)" cite it.
_BRACKETED = re.compile(r"[(（]([A-Za-z][^)）,，]{1,30})[)）]")
_CITATION = re.compile(r"\bet al\b|\b(?:19|20)\d{2}\b")


def called(entry: Entry) -> set[str]:
    """The Latin names the entry's title calls its subject by, lowercased with hyphens as spaces:
    its short head ("flamingo" of "Flamingo: a Visual …", "mt bench" and "chatbot arena" of
    "MT-Bench & Chatbot Arena: …"), a first word that is a name ("chain of thought" of
    "Chain-of-Thought Prompting …"), a name in brackets ("llava" of "Visual Instruction Tuning
    (LLaVA)"), its aliases."""
    title = untagged(clean_inline(entry.title))
    head = _HEAD_END.split(title, maxsplit=1)[0].strip()
    names = [p for p in _AND.split(head) if len(p.split()) <= 3] if head != title or " " not in title else []
    names += [b for b in _BRACKETED.findall(title) if len(b.split()) <= 3] + list(entry.aliases)
    first = head.split()[0] if head else ""
    if lexical.is_name(first):
        names.append(first)
    plain = {lexical.plain(n) for n in names if len(n) >= 3 and n[:1].isascii() and n[:1].isalpha()
             and not _CITATION.search(n)}
    return plain | _acronyms(plain, entry.text)


def _acronyms(names: set[str], text: str) -> set[str]:
    """The initials of a name of three words or more, when the entry itself writes them: "cot" for
    "chain of thought" in a note saying "PaLM + CoT"; "vit" is no name of "visual instruction
    tuning" in a note that never writes ViT."""
    written = lexical.plain(text)
    initials = {"".join(w[0] for w in n.split()) for n in names if len(n.split()) >= 3}
    return {a for a in initials if re.search(rf"(?<![a-z0-9]){a}(?![a-z0-9])", written)}


def name_spans(question: str, entry: Entry) -> list[tuple[int, int]]:
    """Where the question names the entry by what its title calls it, as (start, end) in the
    question lowercased with hyphens as spaces (:func:`rag.text.lexical.plain`)."""
    asked = lexical.plain(question)
    return sorted(m.span() for name in called(entry) for m in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", asked))
