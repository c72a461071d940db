"""Entries → chunks, sized in the embedder's tokens, never crossing an entry boundary.

Each chunk is embedded with its entry's title in front, so a chunk from the middle of a long
entry still says which paper it is about.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .notes import Entry

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
    title: str

    @property
    def embed_text(self) -> str:
        """What embedders and BM25 see: the entry title as context, then the text."""
        return f"{self.title}\n{self.text}"

    @property
    def hash(self) -> str:
        return hashlib.sha1(self.embed_text.encode("utf-8")).hexdigest()


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate (CJK char ≈ 1 token, Latin word ≈ 1.3) for lexical-only setups."""
    cjk = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff")
    return cjk + int(len(text[cjk:].split()) * 1.3) if cjk < len(text) else cjk


def chunk_entry(entry: Entry, max_tokens: int, overlap: int,
                count_tokens: Callable[[str], int]) -> list[Chunk]:
    """Split one entry; budgets the title's tokens so title + chunk fits ``max_tokens``."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter  # slow import: only when chunking

    budget = max(MIN_BODY_TOKENS, max_tokens - count_tokens(entry.title) - 2)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=budget,
        chunk_overlap=min(overlap, budget // 4),
        length_function=count_tokens,
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
        chunks.append(Chunk(entry_id=entry.id, file=entry.file, line_start=first,
                            line_end=min(last, entry.line_end), text=doc.page_content,
                            title=entry.title))
    return chunks


def chunk_entries(entries: Iterable[Entry], max_tokens: int, overlap: int,
                  count_tokens: Callable[[str], int]) -> list[Chunk]:
    return [c for e in entries for c in chunk_entry(e, max_tokens, overlap, count_tokens)]
