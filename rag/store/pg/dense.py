"""Dense search in PostgreSQL: pgvector's HNSW index, queried per question.

The vector table is shared by the live generation and the one it replaced, so an HNSW scan
over-fetches by their ratio (``spread``) and keeps this generation's rows. A filter that leaves
few chunks is searched exactly over those rows instead: an HNSW scan filters only after the fact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from rag.store.base import IndexUnavailable
from rag.store.dense import DenseIndex

#: pgvector returns at most ``hnsw.ef_search`` (≤ 1000) rows from an HNSW scan.
MAX_EF_SEARCH = 1000
#: A filter that leaves at most this many chunks is searched exactly.
EXACT_SUBSET = 20_000

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


def vectors_ready(conn: psycopg.Connection) -> None:
    """Teach a connection the ``vector`` type (once per connection; the extension must exist)."""
    if conn.adapters.types.get("vector") is None:
        register_vector(conn)


class PgDense(DenseIndex):
    """pgvector's HNSW index, queried per question; ``vectors`` fetches rows of this generation."""

    def __init__(self, connect: Connect, generation: int, table: str, dim: int, size: int, spread: float,
                 ef_search: int) -> None:
        self.connect, self.generation, self.table, self.dim = connect, generation, table, dim
        self._size, self.spread, self.ef_search = size, spread, ef_search

    @property
    def size(self) -> int:
        return self._size

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = min(n, self._size)
        subset = np.flatnonzero(allowed) if allowed is not None else None
        if n <= 0 or (subset is not None and not len(subset)):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = np.asarray(query, dtype=np.float32)
        join = (f"FROM rag_generation_chunks g JOIN {self.table} v ON v.key = g.vkey WHERE g.generation = %s")
        with self.connect() as conn, conn.transaction():
            vectors_ready(conn)
            if subset is not None and len(subset) <= EXACT_SUBSET:
                found = conn.execute(f"SELECT g.position, v.embedding <#> %s AS d {join} AND g.position = ANY(%s) "
                                     "ORDER BY d, g.position LIMIT %s", (q, self.generation, subset.tolist(), n)
                                     ).fetchall()
            else:
                wanted = n * self.spread * (self._size / len(subset) if subset is not None else 1)
                found = self._near(conn, q, n, math.ceil(wanted) + n, allowed)
        ids = np.array([p for p, _ in found], dtype=np.int64)
        return ids, -np.array([d for _, d in found], dtype=np.float32)

    def _near(self, conn: psycopg.Connection, q: np.ndarray, n: int, limit: int,
              allowed: np.ndarray | None) -> list[tuple[int, float]]:
        """The ``n`` best rows of this generation: an HNSW scan of ``limit`` rows, widened while the
        other generation's rows (or the filter) leave fewer than ``n``."""
        total = self.spread * self._size
        while True:
            limit = min(MAX_EF_SEARCH, limit)
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(max(self.ef_search, limit)),))
            rows = conn.execute(
                f"WITH near AS MATERIALIZED (SELECT key, embedding <#> %s AS d FROM {self.table} "
                f"ORDER BY embedding <#> %s LIMIT %s) SELECT g.position, near.d FROM near JOIN "
                "rag_generation_chunks g ON g.vkey = near.key AND g.generation = %s ORDER BY near.d, g.position",
                (q, q, limit, self.generation)).fetchall()
            found = [(p, d) for p, d in rows if allowed is None or allowed[p]]
            if len(found) >= n or limit >= min(MAX_EF_SEARCH, total):
                return found[:n]
            limit *= 2

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        with self.connect() as conn:
            vectors_ready(conn)
            rows = dict(conn.execute(f"SELECT g.position, v.embedding FROM rag_generation_chunks g JOIN {self.table} v "
                                     "ON v.key = g.vkey WHERE g.generation = %s AND g.position = ANY(%s)",
                                     (self.generation, ids.tolist())).fetchall())
        if len(rows) < len(set(ids.tolist())):
            raise IndexUnavailable(f"generation {self.generation} is gone from the index database: ask again")
        out = np.zeros((len(ids), self.dim), np.float32)
        for row, i in enumerate(ids):
            out[row] = rows[int(i)].to_numpy()
        return out
