"""Entries most like a given one: its ``[[wikilinks]]`` both ways, then its nearest neighbours by
the vectors already in the index (no model runs, nothing is embedded).

An entry's vector is the normalised mean of its chunks' vectors, per embedder; each embedder ranks
the other entries by their best chunk, and the rankings are fused by reciprocal rank, as search
fuses its retrievers. Linked entries come first: the user drew those links.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from rag.ingest.notes import Entry
from rag.store import LoadedIndex

from .searcher import Filters

RRF_K = 5
#: Chunks each embedder looks at per wanted entry: several chunks of one entry may come first.
CHUNKS_PER_ENTRY = 8


@dataclass(frozen=True)
class Related:
    entry: Entry
    score: float  # fused reciprocal rank; linked entries carry 1 + that
    linked: bool  # a [[wikilink]] joins the two notes


def find_entry(index: LoadedIndex, file: str, line: int) -> Entry:
    """The entry of ``file`` that covers ``line``; LookupError (one line) when there is none."""
    entry = next((e for e in index.entries if e.file == file and e.line_start <= line <= e.line_end), None)
    if entry is None:
        raise LookupError(f"no entry of {file} covers line {line}" if file in index.manifest.notes
                          else f"{file} is not an indexed note (rag search shows the files)")
    return entry


def _names(entry: Entry, heads: set[str]) -> set[str]:
    """What a wikilink to this entry may say: its title, its aliases, and, for the first entry of
    its note (``heads``), the note's path from any folder down, as vaults link ("Papers/HyDE"
    for vault/Papers/HyDE.md): a link to a note lands on the note's top."""
    names = {entry.title, *entry.aliases}
    if entry.id in heads:
        parts = PurePosixPath(entry.file).with_suffix("").parts
        names |= {"/".join(parts[i:]) for i in range(len(parts))}
    return {n.lower() for n in names if n}


def _target(link: str) -> str:
    return link.strip().lower()


def _ids_by_file(index: LoadedIndex) -> dict[str, list[str]]:
    """Entry ids per note, in note order (the index keeps entries in file and line order)."""
    out: dict[str, list[str]] = {}
    for e in index.entries:
        out.setdefault(e.file, []).append(e.id)
    return out


def linked_entries(index: LoadedIndex, entry: Entry) -> set[str]:
    """Ids of the entries this one links to and of those that link to it (other notes only)."""
    heads = {entries[0] for entries in _ids_by_file(index).values()}
    mine = _names(entry, heads)
    wanted = {_target(link) for link in entry.links}
    out = set()
    for other in index.entries:
        if other.file == entry.file:
            continue
        if wanted & _names(other, heads) or mine & {_target(link) for link in other.links}:
            out.add(other.id)
    return out


def _similar(index: LoadedIndex, entry: Entry, k: int) -> dict[str, float]:
    """Other entries → fused reciprocal rank of their best chunk, over every embedder."""
    own = np.array(index.entry_chunks.get(entry.id, []), dtype=np.int64)
    if not len(own):
        return {}
    chunk_entry = index.chunk_entry
    fused: dict[str, float] = {}
    for dense in index.dense.values():
        vectors = dense.vectors(own).astype(np.float32)
        query = vectors.mean(axis=0)
        norm = float(np.linalg.norm(query))
        if not norm:
            continue
        ids, _ = dense.search(query / norm, min(dense.size, (k + 1) * CHUNKS_PER_ENTRY + len(own)))
        seen: list[str] = []
        for i in ids:
            other = index.entries[int(chunk_entry[int(i)])]
            if other.id != entry.id and other.id not in seen:
                seen.append(other.id)
        for rank, entry_id in enumerate(seen, start=1):
            fused[entry_id] = fused.get(entry_id, 0.0) + 1.0 / (RRF_K + rank)
    return fused


def related_entries(index: LoadedIndex, entry: Entry, k: int, filters: Filters | None = None) -> list[Related]:
    """Up to ``k`` entries related to ``entry`` (those ``filters`` allows): linked ones first, then
    the most similar."""
    linked = linked_entries(index, entry)
    similar = _similar(index, entry, k)
    by_id = index.entry_by_id
    scored = {i: similar.get(i, 0.0) + (1.0 if i in linked else 0.0) for i in linked | similar.keys()
              if filters is None or filters.allows(by_id[i])}
    best = sorted(scored, key=lambda i: (-scored[i], i))[:k]
    return [Related(by_id[i], round(scored[i], 4), i in linked) for i in best]
