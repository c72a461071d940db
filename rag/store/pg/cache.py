"""The PostgreSQL store's vector cache: a build's vectors go straight into the embedder's vector
table (the one its generations read), one committed INSERT per batch.

So a killed build, or a lost connection, loses no batch that :meth:`PgVectorCache.put` returned
from, and its commit later writes no vector twice. The rows are safe from garbage collection while
the build runs: no commit happens before its first, and a staged build's first commit already
lists every chunk it embeds (collection keeps rows whose chunk hash a generation lists).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager

import numpy as np
import psycopg

from rag.store.base import VectorCache

from .dense import vectors_ready
from .schema import vector_table
from .write import table_for

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


class PgVectorCache(VectorCache):
    def __init__(self, connect: Connect, embedder_id: str) -> None:
        self.connect = connect
        self.embedder_id = embedder_id

    def get(self, hashes: Collection[str]) -> dict[str, np.ndarray]:
        rows = self._select("key, embedding", hashes)
        return {key: vector.to_numpy().astype(np.float32) for key, vector in rows}

    def missing(self, hashes: Collection[str]) -> set[str]:
        return set(hashes) - {key for (key,) in self._select("key", hashes)}

    def _select(self, columns: str, hashes: Collection[str]) -> list[tuple]:
        """``columns`` of the embedder's table for the rows among ``hashes``."""
        with self.connect() as conn:
            vectors_ready(conn)
            row = conn.execute("SELECT id FROM rag_vector_tables WHERE embedder_id = %s",
                               (self.embedder_id,)).fetchone()
            if row is None or not hashes:
                return []
            return conn.cursor(binary=True).execute(f"SELECT {columns} FROM {vector_table(row[0])} "
                                                    "WHERE key = ANY(%s)", (list(set(hashes)),)).fetchall()

    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        if not len(hashes):
            return
        rows = np.asarray(vectors, dtype=np.float32)
        with self.connect() as conn, conn.transaction():
            vectors_ready(conn)
            table = table_for(conn, self.embedder_id, int(rows.shape[1]))
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} (key, embedding) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                                list(zip(hashes, rows, strict=True)))

    def flush(self) -> None:
        """Nothing to do: every :meth:`put` is committed before it returns."""
