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
from dataclasses import dataclass, field
from pathlib import Path

from .corpus import decode_note, find_notes, read_bytes
from .notes import clean_inline, normalized_title, split_entries, split_lines

#: Sentence ends, Chinese and Latin; a line break also ends a sentence.
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|(?<=\.)\s+")
_MARKUP = re.compile(r"^[\s#>*+|\-\d.)、]+|[|#]|https?://\S+")
MIN_SENTENCE_CHARS = 12
MAX_SENTENCE_CHARS = 200
ENTRIES_PER_NOTE = 1000


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


def harvest(corpus: Path) -> tuple[list[Sentence], list[str]]:
    """The real notes' sentences (markup stripped, with their source line) and entry titles."""
    sentences: list[Sentence] = []
    titles: list[str] = []
    notes, _ = find_notes(corpus)
    for note in notes:
        text = decode_note(read_bytes(note, 1 << 30))
        for entry in split_entries(text, note.rel):
            titles.append(entry.title)
            for offset, line in enumerate(split_lines(entry.text)):
                plain = _MARKUP.sub(" ", clean_inline(line)).strip()
                for part in _SENTENCE_END.split(plain):
                    part = part.strip()
                    if MIN_SENTENCE_CHARS <= len(part) <= MAX_SENTENCE_CHARS and re.search(r"\w{2}", part):
                        sentences.append(Sentence(part, note.rel, entry.line_start + offset))
    return sentences, [t for t in titles if len(normalized_title(t)) >= 4]


def _title(rng: random.Random, titles: list[str]) -> str:
    a, b = rng.sample(titles, 2)
    return f"{a[: max(8, len(a) // 2)].strip()} × {b[len(b) // 2:].strip()}"


def generate(corpus: Path, n_entries: int, seed: int = 0, per_note: int = ENTRIES_PER_NOTE,
             sentences_per_entry: tuple[int, int] = (2, 4)) -> SynthCorpus:
    """``n_entries`` entries in notes of ``per_note`` entries each, from ``corpus``'s sentences."""
    sentences, titles = harvest(corpus)
    if len(sentences) < 10 or len(titles) < 2:
        raise ValueError(f"{corpus} has too little text to recombine")
    rng = random.Random(seed)
    out = SynthCorpus(seed=seed)
    for first in range(0, n_entries, per_note):
        name = f"synth_{seed}_{first // per_note:05d}.md"
        lines: list[str] = []
        seen: set[str] = set()
        for i in range(first, min(first + per_note, n_entries)):
            title = _title(rng, titles)
            while normalized_title(title) in seen:  # the segmenter wants distinct item headings
                title = _title(rng, titles)
            seen.add(normalized_title(title))
            picked = tuple(rng.sample(sentences, rng.randint(*sentences_per_entry)))
            out.entries.append(SynthEntry(name, len(lines) + 1, title, picked))
            lines += [f"## {title}", f"[source](https://example.org/synth/{seed}/{i})",
                      " ".join(s.text for s in picked), ""]
        out.notes[name] = "\n".join(lines)
    return out
