"""A real PostgreSQL 16 + pgvector for tests (:class:`rag.store.pg.local.LocalPostgres`), plus small
synthetic generations, which the tests' subprocesses build too.

The superuser's password is fixed here so every test can check that it never shows.
"""

from __future__ import annotations

import itertools
import os

from rag.embed.embedding import HashEmbedder
from rag.ingest.chunking import Chunk
from rag.ingest.notes import Entry
from rag.store import GenerationData
from rag.store.manifest import Counts, Manifest, NoteRecord, index_fingerprint
from rag.store.pg.local import LocalPostgres
from rag.store.terms import Terms
from rag.text.lexical import tokenize

SUPERUSER_PASSWORD = "pg-Secret-4711"  # must never appear in any output
_databases = itertools.count()


class PgCluster(LocalPostgres):
    """The tests' cluster: ``PgCluster.running(password=SUPERUSER_PASSWORD)``; a database per test."""

    def new_database(self) -> str:
        name = f"rag_test_{os.getpid()}_{next(_databases)}"
        self.admin(f"CREATE DATABASE {name}")
        return name


def make_generation(version: int, entries: int = 6, changed: tuple[int, ...] = ()) -> GenerationData:
    """A small synthetic generation: ``entries`` papers of two chunks each, hash-embedded.

    Every title carries ``v{version}`` only for the entries in ``changed`` (the rest are the same in
    every version, so an incremental commit can reuse them); ``manifest.corpus`` is ``v{version}``.
    """
    embedder = HashEmbedder()
    papers, chunks = [], []
    for i in range(entries):
        tag = f" v{version}" if i in changed else ""
        text = f"Paper {i}{tag} studies 注意力 机制 topic{i % 3} and kv-cache {i}.\nResults on 长上下文 bench{i}."
        entry = Entry(file=f"note{i % 2}.md", title=f"Paper {i}{tag}", line_start=10 * i + 1,
                      line_end=10 * i + 2, url=f"https://arxiv.org/abs/2601.{i:05d}", date=f"2026-01-0{i % 9 + 1}",
                      text=text)
        papers.append(entry)
        for j, line in enumerate(text.split("\n")):
            chunks.append(Chunk(entry_id=entry.id, file=entry.file, line_start=entry.line_start + j,
                                line_end=entry.line_start + j, text=line, context=entry.title))
    terms = Terms.of(tokenize(c.embed_text) for c in chunks)
    vectors = {"hash": embedder.embed_passages([c.embed_text for c in chunks])}
    notes = {name: NoteRecord(sha256=f"{version}-{name}", entries=sum(1 for e in papers if e.file == name),
                              chunks=sum(1 for c in chunks if c.file == name)) for name in ("note0.md", "note1.md")}
    manifest = Manifest(fingerprint=index_fingerprint(("hash",), 256, 32), embedder_ids={"hash": embedder.id},
                        notes=notes, counts=Counts(notes=2, entries=len(papers), chunks=len(chunks)),
                        built_at="2026-01-01T00:00:00", corpus=f"v{version}")
    return GenerationData(manifest, papers, chunks, terms, vectors)
