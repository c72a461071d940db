"""A deterministic vault of N notes in the styles researchers keep, for `rag bench --vault N`.

The scale bench (:mod:`rag.bench.synth`) grows the five bundled notes into a few huge files; a
real vault is thousands of small ones, in several styles at once. This one mixes, in a fixed
rotation: Obsidian one-paper notes (YAML front matter with title, tags, authors and year; sections
Summary / Method / Results / My take; a [[wikilink]] to another paper), Logseq pages (``key::
value`` properties, one top bullet per paper), plain-text reading logs (a dated paragraph per
paper), comparison tables with a link column, and group-meeting notes under dated headings. Every
title and sentence comes from the bundled notes (spliced titles, real sentences) drawn by a seeded
generator, so the same seed gives the same vault byte for byte.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .synth import harvest, spliced_title

#: One rotation of styles: half the notes are one-paper notes, as in most vaults; the first five
#: notes already hold every style.
ROTATION = ("obsidian", "logseq", "reading-log", "table", "meeting", "obsidian", "obsidian", "logseq", "obsidian",
            "obsidian")
STYLES = tuple(dict.fromkeys(ROTATION))
SECTIONS = ("Summary", "Method", "Results", "My take")
FIRST = ("Wei", "Lin", "Anna", "Marco", "Yuki", "Priya", "Omar", "Sara", "Jun", "Elena", "Tomás", "Hana")
LAST = ("Zhang", "Chen", "Müller", "Rossi", "Tanaka", "Patel", "Haddad", "Berg", "Kim", "Novak", "Silva", "Wang")
PEOPLE = ("张三", "李四", "王五", "赵六", "Alice", "Bob")
_UNSAFE = re.compile(r"\[\[|\]\]|\||::|\s+")
_LEAD = re.compile(r"^[\s#>*+\-\d.]+")


@dataclass(frozen=True)
class VaultNote:
    name: str  # path in the vault
    style: str
    text: str
    papers: int  # entries of its kind the segmenter should find (items, table rows)


@dataclass(frozen=True)
class Vault:
    seed: int
    notes: tuple[VaultNote, ...]

    def write(self, directory: Path) -> None:
        for note in self.notes:
            path = directory / note.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(note.text, encoding="utf-8")


def _clean(text: str) -> str:
    """One line that no style's markup can misread: no table bars, wikilinks, ``::`` or bullets."""
    return _LEAD.sub("", _UNSAFE.sub(lambda m: " " if m.group().isspace() else "/", text)).strip()


class _Words:
    """The bundled notes' sentences and titles, drawn by one seeded generator."""

    def __init__(self, texts: Mapping[str, str], seed: int) -> None:
        sentences, self.titles = harvest(texts)
        self.sentences = [s for s in (_clean(x.text) for x in sentences) if len(s) >= 12]
        if len(self.sentences) < 10 or len(self.titles) < 2:
            raise ValueError("the bundled notes have too little text to draw a vault from")
        self.tags = sorted({w.lower() for t in self.titles for w in re.findall(r"[A-Za-z][A-Za-z-]{3,}", t)})[:200] \
            or ["notes"]
        self.rng = random.Random(seed)

    def title(self) -> str:
        return _clean(spliced_title(self.rng, self.titles)) or "Untitled"

    def text(self, low: int = 1, high: int = 3) -> str:
        return " ".join(self.rng.sample(self.sentences, self.rng.randint(low, high)))

    def authors(self) -> list[str]:
        return [f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}" for _ in range(self.rng.randint(1, 3))]

    def date(self) -> str:
        return f"{self.rng.randint(2019, 2026)}-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"


def _obsidian(w: _Words, i: int, n_papers: int) -> VaultNote:
    title, year = w.title(), w.rng.randint(2018, 2026)
    tags = w.rng.sample(w.tags, min(2, len(w.tags)))
    link = f"paper-{w.rng.randrange(n_papers):05d}" if n_papers else f"paper-{i:05d}"
    lines = ["---", f"title: {json.dumps(title, ensure_ascii=False)}",
             f"tags: [{', '.join(tags)}]", "authors:", *(f"  - {a}" for a in w.authors()), f"year: {year}", "---"]
    for section in SECTIONS:
        body = w.text() + (f" See also [[{link}]]." if section == "My take" else "")
        lines += ["", f"## {section}", body]
    return VaultNote(f"papers/paper-{i:05d}.md", "obsidian", "\n".join(lines) + "\n", 1)


def _logseq(w: _Words, i: int) -> VaultNote:
    lines = [f"title:: {w.title()}", f"tags:: {', '.join(w.rng.sample(w.tags, min(2, len(w.tags))))}", ""]
    papers = w.rng.randint(2, 4)
    for _ in range(papers):
        lines += [f"- {w.title()}", "  type:: paper", f"  authors:: {', '.join(w.authors())}",
                  f"  year:: {w.rng.randint(2018, 2026)}", *(f"\t- {w.text(1, 1)}" for _ in range(w.rng.randint(1, 3)))]
    return VaultNote(f"pages/topic-{i:05d}.md", "logseq", "\n".join(lines) + "\n", papers)


def _reading_log(w: _Words, i: int) -> VaultNote:
    papers = w.rng.randint(3, 6)
    paragraphs = [f"{d} — {w.title()} (arXiv {d[:4]})\n{w.text()}" for d in sorted(w.date() for _ in range(papers))]
    return VaultNote(f"logs/reading-{i:05d}.txt", "reading-log", "\n\n".join(paragraphs) + "\n", papers)


def _table(w: _Words, i: int) -> VaultNote:
    papers = w.rng.randint(3, 6)
    rows = [f"| {w.title()[:40].strip()} | {w.text(1, 1)[:120].strip()} | {w.rng.randint(4, 2048)}K | "
            f"[arXiv](https://example.org/vault/{w.rng.randrange(10**6):06d}) |" for _ in range(papers)]
    lines = [f"# {w.title()}", "", "| 方法 | 思路 | 最长 context | 链接 |", "|---|---|---|---|", *rows, "",
             f"结论：{w.text(1, 1)}"]
    return VaultNote(f"tables/compare-{i:05d}.md", "table", "\n".join(lines) + "\n", papers)


def _meeting(w: _Words, i: int) -> VaultNote:
    papers = w.rng.randint(4, 6)  # fewer headings alike are read as sections, not as a list of items
    lines = [f"# 组会 {i}"]
    for d in sorted(w.date() for _ in range(papers)):
        lines += ["", f"## {d} {w.rng.choice(PEOPLE)}：{w.title()}", w.text()]
    return VaultNote(f"meetings/group-{i:05d}.md", "meeting", "\n".join(lines) + "\n", papers)


def generate_vault(texts: Mapping[str, str], n: int, seed: int = 0) -> Vault:
    """``n`` notes in the rotation of :data:`ROTATION`, from the bundled notes' ``texts`` (rel → text)."""
    if n < 1:
        raise ValueError("a vault has at least one note")
    words = _Words(texts, seed)
    n_papers = sum(ROTATION[i % len(ROTATION)] == "obsidian" for i in range(n))
    notes, paper = [], 0
    for i in range(n):
        style = ROTATION[i % len(ROTATION)]
        if style == "obsidian":
            notes.append(_obsidian(words, paper, n_papers))
            paper += 1
        else:
            notes.append({"logseq": _logseq, "reading-log": _reading_log, "table": _table,
                          "meeting": _meeting}[style](words, i))
    return Vault(seed, tuple(notes))
