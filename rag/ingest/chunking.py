"""Entries → chunks, sized in the embedder's tokens, never crossing an entry boundary.

Each chunk is indexed (BM25 and embedders) with its context in front: where the entry sits, its
title and the heading path inside it ("HyDE: Precise Zero-Shot … › Key results"), its tags, and
for the entry's first chunk its aliases and authors. So a "Key results" chunk from the middle of
a one-paper note still says which paper it is about, and front matter is searchable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .blocks import PATH_SEP
from .markup import clean_title, parse_heading
from .notes import Entry
from .sections import is_part_heading

#: Paragraphs, lines, table-cell breaks, then sentence ends (Chinese first), then clauses.
SEPARATORS = ["\n\n", "\n", "<br>", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", ", ", " ", ""]
MIN_BODY_TOKENS = 48
_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class Chunk:
    """A piece of one entry; its line span is its own, within the entry's."""

    entry_id: str
    file: str
    line_start: int
    line_end: int
    text: str  # the raw slice of the entry
    context: str  # what a reader needs in front of the slice: title › heading path, tags

    @property
    def embed_text(self) -> str:
        """What embedders and BM25 see: the context, then the text."""
        return f"{self.context}\n{self.text}"

    @property
    def hash(self) -> str:
        return hashlib.sha1(self.embed_text.encode("utf-8")).hexdigest()


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate (CJK char ≈ 1 token, Latin word ≈ 1.3) for lexical-only setups."""
    cjk = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff")
    return cjk + int(len(text[cjk:].split()) * 1.3) if cjk < len(text) else cjk


def own_tokens(count_tokens: Callable[[str], int]) -> Callable[[str], int]:
    """``count_tokens`` without what it charges every call (special tokens, a prompt prefix).

    The splitter measures each piece and each separator on its own; e5 charges 5 tokens for ""
    so every join cost 5 phantom tokens, and text with no separators came out in 25-character chunks.
    A non-empty piece is at least one token (e5 also charges 5 for "a": its "" has a stray "▁").
    """
    fixed = count_tokens("")
    return lambda text: max(1, count_tokens(text) - fixed) if text else 0


def section_contexts(entry: Entry) -> list[tuple[int, str]]:
    """(character offset, context) from where each heading inside the entry starts.

    A context is the entry's title (a table row's also its table: section and header row, which
    say what its cells are), the part heading above that point (Key results, 实验), and the
    entry's tags. Chosen on ``tune`` of both canned collections: a row's table gained a question
    on each; the whole heading path and a note's place (report title › …) in every chunk lost
    three bundled questions and gained none.
    """
    base = PATH_SEP.join(p for p in (entry.context if entry.kind == "row" else "", entry.title) if p)
    tags = " ".join(f"#{t}" for t in entry.tags)
    contexts: list[tuple[int, str]] = []
    offset = 0
    for n, line in enumerate(entry.text.split("\n")):
        heading = parse_heading(line) if n else None  # the entry's own first heading is its title
        if n == 0 or heading:
            part = clean_title(heading[1]) if heading and is_part_heading(heading[1]) else None
            path = PATH_SEP.join(p for p in (base, part) if p)
            contexts.append((offset, f"{path}\n{tags}" if tags else path))
        offset += len(line) + 1
    return contexts


def first_context(entry: Entry, context: str) -> str:
    """The first chunk's context also names the entry's aliases and authors (front matter)."""
    extra = "; ".join(p for p in (", ".join(entry.aliases), ", ".join(entry.authors)) if p)
    return f"{context}\n{extra}" if extra else context


def _budget(contexts: list[str], max_tokens: int, count_tokens: Callable[[str], int]) -> int:
    """Tokens left for the text once the longest context (and the fixed cost, counted once) is in."""
    return max(MIN_BODY_TOKENS, max_tokens - max(map(count_tokens, contexts)) - 2)


def chunk_entry(entry: Entry, max_tokens: int, overlap: int,
                count_tokens: Callable[[str], int]) -> list[Chunk]:
    """Split one entry; budgets the context's tokens so context + chunk fits ``max_tokens``."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter  # slow import: only when chunking

    contexts = section_contexts(entry)
    budget = _budget([first_context(entry, contexts[0][1]), *(c for _, c in contexts)], max_tokens, count_tokens)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=budget,
        chunk_overlap=min(overlap, budget // 4),
        length_function=own_tokens(count_tokens),
        separators=SEPARATORS,
        keep_separator="end",
        add_start_index=True,
        strip_whitespace=True,
    )
    chunks = []
    for doc in splitter.create_documents([entry.text]):
        if not _WORD.search(doc.page_content):  # a lone "=====" separator says nothing
            continue
        start = doc.metadata["start_index"]
        if start < 0:  # the splitter could not locate it (whitespace stripped): search again
            start = max(0, entry.text.find(doc.page_content[:50]))
        first = entry.line_start + entry.text.count("\n", 0, start)
        last = first + doc.page_content.count("\n")
        context = next(c for offset, c in reversed(contexts) if offset <= start)
        chunks.append(Chunk(entry_id=entry.id, file=entry.file, line_start=first,
                            line_end=min(last, entry.line_end), text=doc.page_content,
                            context=first_context(entry, context) if not chunks else context))
    return chunks


def chunk_entries(entries: Iterable[Entry], max_tokens: int, overlap: int,
                  count_tokens: Callable[[str], int]) -> list[Chunk]:
    """Chunks of one note's entries, in order (the builder keeps the first ``max_chunks_per_note``)."""
    return [c for e in entries for c in chunk_entry(e, max_tokens, overlap, count_tokens)]
