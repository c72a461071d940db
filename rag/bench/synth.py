"""A deterministic synthetic corpus made of the notes' own sentences, for scale benchmarks.

Growing the five real notes a hundredfold needs text that looks like them to the segmenter, the
chunker, jieba and BM25 (same vocabulary, same sentence lengths, same mix of Chinese and English)
without repeating whole entries, which would make BM25 postings and dense neighbours degenerate.
So every synthetic entry is a fresh title (two real titles spliced) over a few real sentences
drawn at random; a fixed seed gives the same corpus byte for byte. Each entry remembers where its
sentences came from, so the benchmark can give it a vector derived from the real ones.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rag.answer.extractive import split_sentences
from rag.ingest.markup import normalized_title
from rag.ingest.notes import split_entries

MIN_SENTENCE_CHARS = 12
MAX_SENTENCE_CHARS = 200
ENTRIES_PER_NOTE = 1000
_WORDISH = re.compile(r"\w{2}")
_MARKUP = re.compile(r"<[A-Za-z/]|https?://")


@dataclass(frozen=True)
class Sentence:
    text: str
    file: str  # the real note it comes from
    line: int  # 1-based line in that note


@dataclass(frozen=True)
class SynthEntry:
    file: str  # synthetic note name
    line_start: int  # 1-based line of its heading
    title: str
    sources: tuple[Sentence, ...]


@dataclass
class SynthCorpus:
    seed: int
    notes: dict[str, str] = field(default_factory=dict)  # name → text
    entries: list[SynthEntry] = field(default_factory=list)

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in self.notes.items():
            (directory / name).write_text(text, encoding="utf-8")

    def by_title(self) -> dict[str, SynthEntry]:
        """Each entry under the title the segmenter gives it (what a chunk's embed text starts with)."""
        origin = {(e.file, e.line_start): e for e in self.entries}
        out: dict[str, SynthEntry] = {}
        for name, text in self.notes.items():
            for entry in split_entries(text, name):
                if (name, entry.line_start) in origin:
                    out.setdefault(entry.title, origin[(name, entry.line_start)])
        return out


def harvest(texts: Mapping[str, str]) -> tuple[list[Sentence], list[str]]:
    """The real notes' sentences (as the extractive answerer cuts them, with their line) and titles;
    not lines of markup (an ``<img src=…>``, a bare link), which a generated note would cut into
    a broken tag or a table cell whose link is not the row's."""
    sentences: list[Sentence] = []
    titles: list[str] = []
    for rel, text in texts.items():
        for entry in split_entries(text, rel):
            titles.append(entry.title)
            sentences += [Sentence(part, rel, line) for line, part in split_sentences(entry.text, entry.line_start)
                          if MIN_SENTENCE_CHARS <= len(part) <= MAX_SENTENCE_CHARS and _WORDISH.search(part)
                          and not _MARKUP.search(part)]
    return sentences, [t for t in titles if len(normalized_title(t)) >= 4]


def spliced_title(rng: random.Random, titles: list[str]) -> str:
    """The head of one real title and the tail of another, cut at random points (a few hundred
    real titles give millions of distinct splices)."""
    a, b = rng.sample(titles, 2)
    head = rng.randint(max(4, len(a) // 3), max(4, 2 * len(a) // 3))
    tail = rng.randint(len(b) // 3, 2 * len(b) // 3)
    return f"{a[:head].strip()} × {b[tail:].strip()}"


def generate(texts: Mapping[str, str], n_entries: int, seed: int = 0, per_note: int = ENTRIES_PER_NOTE,
             sentences_per_entry: tuple[int, int] = (2, 4)) -> SynthCorpus:
    """``n_entries`` entries with distinct titles, in notes of ``per_note`` entries each, recombined
    from the sentences and titles of ``texts`` (rel → note text, see :func:`rag.ingest.corpus.read_corpus`)."""
    sentences, titles = harvest(texts)
    if len(sentences) < 10 or len(titles) < 2:
        raise ValueError("the corpus has too little text to recombine")
    rng = random.Random(seed)
    out = SynthCorpus(seed=seed)
    seen: set[str] = set()
    for first in range(0, n_entries, per_note):
        name = f"synth_{seed}_{first // per_note:05d}.md"
        lines: list[str] = []
        for i in range(first, min(first + per_note, n_entries)):
            for _ in range(1000):  # distinct titles: the segmenter wants them, and proxies find entries by them
                title = spliced_title(rng, titles)
                if normalized_title(title) not in seen:
                    break
            else:
                raise ValueError(f"the corpus has too few titles for {n_entries} distinct ones")
            seen.add(normalized_title(title))
            picked = tuple(rng.sample(sentences, rng.randint(*sentences_per_entry)))
            out.entries.append(SynthEntry(name, len(lines) + 1, title, picked))
            lines += [f"## {title}", f"[source](https://example.org/synth/{seed}/{i})",
                      " ".join(s.text for s in picked), ""]
        out.notes[name] = "\n".join(lines)
    return out
