"""The notes a question names ("二月份 digest 里…", "my long-context table", "组会上讲过…"), ranked.

People ask about a note by what it is called: its file name ("reading-log.txt",
"组会-2025-04.md") or the heading over its items ("Paper digest — February 2025", "长上下文方法对比").
A question word names a note when the note's name holds it and most chunks that use the word are
that note's own: "digest" names daily/2025-02-digest.md, but 注意力 does not name "高效注意力与推理服务",
as most notes write it. The named notes' chunks, ranked by BM25 and fused like any other ranking,
lift the entries of the note the user means above look-alikes elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

import numpy as np

from rag.ingest.notes import Entry
from rag.store.bm25 import Bm25
from rag.text import lexical

from .query import Query
from .retrievers import BM25Retriever

NOTE = "note"
#: A note's name is in its title chunk, not all over its text: a word in more of its chunks than
#: this is what the note is about (方法 in a table's header row), not what it is called.
NAME_CHUNKS = 2


def note_names(entries: Sequence[Entry]) -> dict[str, set[str]]:
    """Each note's name tokens: its path without the extension, and the heading over its items
    when it opens with one (a section entry first), not a one-paper note's title (that is content)."""
    first: dict[str, Entry] = {}
    for entry in entries:
        if entry.file not in first or entry.line_start < first[entry.file].line_start:
            first[entry.file] = entry
    names = {}
    for file, entry in first.items():
        name = str(PurePosixPath(file).with_suffix("")).replace("/", " ")
        if entry.kind == "section":
            name += " " + entry.title
        names[file] = {t for t in lexical.tokenize(name) if not t.replace(".", "").isdigit()}
    return names


class NoteRetriever(BM25Retriever):
    """BM25 within the notes the question names; nothing when it names none."""

    name = NOTE

    def __init__(self, bm25: Bm25 | None, entries: Sequence[Entry], chunk_entry: np.ndarray) -> None:
        super().__init__(bm25)
        files = sorted({e.file for e in entries})
        number = {file: i for i, file in enumerate(files)}
        self.chunk_file = np.array([number[e.file] for e in entries], dtype=np.int64)[chunk_entry] \
            if len(chunk_entry) else np.zeros(0, np.int64)
        self.items = np.array([e.kind != "section" for e in entries], dtype=bool)[chunk_entry] \
            if len(chunk_entry) else np.zeros(0, bool)
        self.named_by: dict[str, list[int]] = {}
        for file, tokens in note_names(entries).items():
            for token in tokens:
                self.named_by.setdefault(token, []).append(number[file])

    def named(self, query: Query) -> tuple[np.ndarray, tuple[str, ...]] | None:
        """The chunks of the notes the question names (bool per chunk) and the words naming them."""
        if self.bm25 is None:
            return None
        inside = np.zeros(len(self.chunk_file), dtype=bool)
        naming: list[str] = []
        for token in dict.fromkeys(query.tokens):
            if not (files := self.named_by.get(token)):
                continue
            theirs = np.isin(self.chunk_file, files)
            holding = self._bm25((token,)) > 0
            own = int((holding & theirs).sum())
            if own <= NAME_CHUNKS * len(files) and 2 * own >= int(holding.sum()):
                inside |= theirs
                naming.append(token)
        return (inside, tuple(naming)) if naming else None

    def _scores(self, query: Query) -> np.ndarray | None:
        """BM25 of the question's other words in the named notes' items: the name says where to
        look, not which entry answers, and the heading that holds it is no answer either."""
        found = self.named(query)
        if found is None:
            return None
        inside, naming = found
        tokens = tuple(t for t in self._tokens(query) if t not in naming)
        if not tokens:
            return None
        return np.where(inside & self.items, self._bm25(tokens), 0.0).astype(np.float32)
