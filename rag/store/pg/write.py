"""Writing a generation into PostgreSQL: rows the database lacks, membership rows for all, garbage
collection after the switch (see :mod:`rag.store.pg.schema` for the tables)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence

import numpy as np
import psycopg

from rag.store.base import GenerationData

from .schema import COMMIT_LOCK, vector_table

#: pgvector's HNSW graph, as FAISS's (rag.store.dense): same recall for the same ef_search (scripts/pg_bench.py).
HNSW_M, HNSW_EF_CONSTRUCTION = 32, 80


def content_key(values: Sequence[object]) -> str:
    return hashlib.sha256(json.dumps(values, ensure_ascii=False).encode("utf-8")).hexdigest()


def digest(keys: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode("ascii")).hexdigest()


def check_shapes(data: GenerationData) -> None:
    if len(data.terms) != len(data.chunks):
        raise ValueError("a generation needs one row of terms per chunk")
    for name, matrix in data.vectors.items():
        if matrix.ndim != 2 or len(matrix) != len(data.chunks) or name not in data.manifest.embedder_ids:
            raise ValueError(f"vectors of {name} do not match the chunks or the manifest")


def put_rows(conn: psycopg.Connection, kind: str, generation: int, keys: list[str], vkeys: list[str] | None,
              row: Callable[[int], tuple], columns: Sequence[str]) -> None:
    """Membership rows for every position; content rows only for keys the database lacks."""
    staged = f"rag_staged_{kind}"
    conn.execute(f"CREATE TEMP TABLE {staged} (position integer, key text, vkey text) ON COMMIT DROP")
    with conn.cursor().copy(f"COPY {staged} FROM STDIN") as copy:
        for i, key in enumerate(keys):
            copy.write_row((i, key, vkeys[i] if vkeys else None))
    missing = {k for (k,) in conn.execute(f"SELECT DISTINCT s.key FROM {staged} s WHERE NOT EXISTS "
                                          f"(SELECT 1 FROM rag_{kind} t WHERE t.key = s.key)")}
    with conn.cursor().copy(f"COPY rag_{kind} (key, {', '.join(columns)}) FROM STDIN") as copy:
        for i, key in enumerate(keys):
            if key in missing:
                missing.discard(key)
                copy.write_row((key, *row(i)))
    extra = ", vkey" if vkeys else ""
    conn.execute(f"INSERT INTO rag_generation_{kind} (generation, position, key{extra}) "
                 f"SELECT %s, position, key{extra} FROM {staged}", (generation,))


def table_for(conn: psycopg.Connection, embedder_id: str, dim: int) -> str:
    """The vector table of ``embedder_id``, created on first use. Call in a transaction."""
    row = conn.execute("SELECT id, dim FROM rag_vector_tables WHERE embedder_id = %s", (embedder_id,)).fetchone()
    if row is None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))  # one creator at a time
        row = conn.execute("SELECT id, dim FROM rag_vector_tables WHERE embedder_id = %s", (embedder_id,)).fetchone()
    if row is None:
        row = conn.execute("INSERT INTO rag_vector_tables (embedder_id, dim) VALUES (%s, %s) RETURNING id, dim",
                           (embedder_id, dim)).fetchone()
        conn.execute(f"CREATE TABLE {vector_table(row[0])} (key text PRIMARY KEY, embedding vector({dim}) NOT NULL)")
    if row[1] != dim:
        raise ValueError(f"embedder {embedder_id} changed its dimension ({row[1]} → {dim})")
    return vector_table(row[0])


def put_vectors(conn: psycopg.Connection, embedder_id: str, matrix: np.ndarray, vkeys: list[str],
                 approximate: bool) -> None:
    """The rows the table lacks (a build's cache has usually put them already: then none)."""
    table = table_for(conn, embedder_id, int(matrix.shape[1]))
    index = f"{table}_hnsw"
    missing = {k for (k,) in conn.execute(f"SELECT DISTINCT s.vkey FROM rag_staged_chunks s WHERE NOT EXISTS "
                                          f"(SELECT 1 FROM {table} t WHERE t.key = s.vkey)")}
    (rows,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    if len(missing) > rows and conn.execute("SELECT to_regclass(%s)", (index,)).fetchone()[0] is not None:
        conn.execute(f"DROP INDEX {index}")  # building the graph anew beats inserting most of it row by row
    with conn.cursor().copy(f"COPY {table} (key, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["text", "vector"])
        for i, key in enumerate(vkeys):
            if key in missing:
                missing.discard(key)
                copy.write_row((key, np.asarray(matrix[i], dtype=np.float32)))
    if approximate:
        conn.execute("SET LOCAL maintenance_work_mem = '1GB'")  # 284 s → 77 s for the graph at 100k × 384
        conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table} USING hnsw (embedding vector_ip_ops) "
                     f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})")


def collect_garbage(conn: psycopg.Connection, keep: list[int]) -> None:
    """Drop generations but the live one and the one it replaced (readers may still be loading it),
    then every row no generation uses."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))
    conn.execute("DELETE FROM rag_generations WHERE NOT (id = ANY(%s))", (keep,))
    for kind in ("entries", "chunks"):
        conn.execute(f"DELETE FROM rag_{kind} t WHERE NOT EXISTS "
                     f"(SELECT 1 FROM rag_generation_{kind} g WHERE g.key = t.key)")
    used = {v for (v,) in conn.execute("SELECT DISTINCT e.value FROM rag_generations, "
                                       "jsonb_each_text(manifest -> 'embedder_ids') e")}
    for table_id, embedder_id in conn.execute("SELECT id, embedder_id FROM rag_vector_tables").fetchall():
        if embedder_id in used:
            conn.execute(f"DELETE FROM {vector_table(table_id)} t WHERE NOT EXISTS "
                         "(SELECT 1 FROM rag_generation_chunks g WHERE g.vkey = t.key)")
        else:
            conn.execute(f"DROP TABLE {vector_table(table_id)}")
            conn.execute("DELETE FROM rag_vector_tables WHERE id = %s", (table_id,))
