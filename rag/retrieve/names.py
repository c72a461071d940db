"""What a question names: MEMIT, TabPFN, Qwen2.5; and in capitalised words Sora, Medusa,
Constitutional AI, the Xiaomi paper.

A word with two capitals or a digit is a name wherever it stands; a word with one capital is a
name only by where it stands, so that part reads the question's sentences. Retrieval ranks
entries that write these names (rag.retrieve.retrievers.ExactRetriever), and the coverage gate refuses a
question whose names the notes never mention (rag.answer.gate).
"""

from __future__ import annotations

import re

from rag.text import language, lexical
from rag.text.dictionary import ENGLISH_STOPWORDS

_WORD = re.compile(r"(?<![\w-])[A-Za-z][\w%+.-]*")
_PARTS = re.compile(r"[-./+]")
#: A capitalised word or run of them ("Sora", "Constitutional AI", "Diffusion Forcing"), joined
#: by "of" too ("Tree of Thoughts", "Mixture of Experts").
_CAPITALISED = re.compile(r"(?<![\w-])[A-Z][a-z][\w-]*(?: +(?:of +)?[A-Z][\w-]*)*")
_SENTENCE_END = re.compile(r"(?:^|[.?!:;。？！：；\"'“‘(（]\s*)$")
#: Capitalised words that name no method or paper: dates, languages, nationalities, stop words.
NOT_NAMES = frozenset(
    """january february march april may june july august september october november december jan feb
    mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday
    chinese english american european japanese korean french german i""".split()
) | ENGLISH_STOPWORDS | lexical.STOPWORDS
#: Where notes are kept and in what format ("in my Notion table", "那个 CSV 书单", "Logseq 里记的"):
#: a question names them to say where to look, not what it asks about.
NOTE_PLACES = frozenset(
    """notion obsidian logseq roam zotero mendeley bear evernote onenote dendron jupyter ipynb colab xmind
    github gitlab readme wiki csv tsv json jsonl yaml toml markdown md txt pdf html docx xlsx excel""".split()
)
_NOT_ASKED = NOT_NAMES | NOTE_PLACES
#: A negation cue earlier in the same clause: "完全不用 RL", "with no SFT step", "without PPO".
#: "有没有" asks whether there is one, "not only X" asks about X too; "、" and the clause's stops end
#: what a cue reaches ("不用 PPO、改用 SAC").
_NEGATED = re.compile(r"(?:不用|不需要|无需|无须|(?<!有)没有|不做|不走|不依赖|不靠|"
                      r"\bwithout\b|\bno\b|\bnot\b(?!\s+(?:only|just)\b)|\bnever\b|\binstead of\b)"
                      r"[^，。、,.;；？?!！]{0,12}$", re.I)
#: How far before a term its negation cue may stand (the cue and the words between).
NEGATION_REACH = 30


def question_names(question: str) -> list[str]:
    """The words of a question that are names by their shape (:func:`rag.text.lexical.is_name`),
    once each; "N-by-N" has the shape but no part that names anything, so it is no name, and a name
    the question rules out ("without TabPFN", :func:`negated`) is none it asks about."""
    words = (m.group(0).rstrip(".-") for m in _WORD.finditer(question))
    return list(dict.fromkeys(w for w in words if lexical.is_name(w) and _names_something(w)
                              and w.lower() not in NOTE_PLACES and not negated(question, w)))


def negated(question: str, term: str) -> bool:
    """Whether the question writes ``term`` only where it says it is not used ("完全不用 RL",
    "without a reward model"): such a name says what the answer is not, so it singles out no entry."""
    places = [m.start() for m in re.finditer(rf"(?<![A-Za-z0-9]){re.escape(term)}(?![A-Za-z0-9])", question, re.I)]
    return bool(places) and all(_NEGATED.search(question[max(0, p - NEGATION_REACH):p]) for p in places)


def _names_something(word: str) -> bool:
    parts = _PARTS.split(word)
    return len(parts) == 1 or any(len(p) > 1 and (lexical.is_name(p) or p[:1].isupper()) for p in parts)


#: An acronym as a question or a sentence writes it: DPO, RLHF (not ViT, not a word's capitals).
ACRONYM = re.compile(r"(?<![\w-])[A-Z]{2,6}(?![\w-])")


def spelled_phrase(acronym: str, text: str, any_case: bool = False) -> str | None:
    """The words of ``text`` that an acronym stands for (:func:`spells_out`), or None."""
    if not (2 <= len(acronym) <= 6 and acronym.isalpha() and acronym.isupper()):
        return None
    words = (r"(?:[\s-]+\w+)?[\s-]+" if any_case else r"[\s-]+").join(rf"{c}[\w]*" for c in acronym)
    m = re.search(rf"(?<![\w]){words}", text, re.I if any_case else 0)
    return m.group(0) if m else None


def spells_out(acronym: str, text: str, any_case: bool = False) -> bool:
    """Whether ``text`` writes the words an acronym stands for: DPO in "Direct Preference
    Optimization", so a question asking for DPO is about a note that only spells it out. With
    ``any_case``, loosely: in running text too, one word allowed between two of its words
    ("classifier-free guidance" and "Classifier-Free Diffusion Guidance" for CFG)."""
    return spelled_phrase(acronym, text, any_case) is not None


def capitalised_names(question: str) -> list[str]:
    """Capitalised words and runs of them, which in a question are names (Sora, Medusa,
    Constitutional AI), except a sentence's first word in an English question and dates/languages.

    A Chinese question has no sentence-initial capitals: there every capitalised word is a name.
    A name the question rules out (:func:`negated`) is none it asks about.
    """
    english = language(question) == "en"
    names = []
    for m in _CAPITALISED.finditer(question):
        words = m.group(0).split()
        if english and _SENTENCE_END.search(question[:m.start()]):
            words = words[1:]  # "Which Xiaomi paper": the run starts with the sentence
        while words and words[0].lower() in _NOT_ASKED:
            words = words[1:]
        words = [w for w in words if w.lower() not in _NOT_ASKED or w == "of"]
        if words and not negated(question, name := " ".join(words)):
            names.append(name)
    return names
