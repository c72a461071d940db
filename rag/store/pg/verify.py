"""Checking the live generation of a PostgreSQL store against its manifest.

The folder store checks every file's sha256 before a build trusts it; this is the same for the
tables: the membership rows against the manifest's digests, each embedder's vectors (their table,
column and one row per chunk), the BM25 blob against its sha256, and the extension and tables
themselves. A build that finds a problem rebuilds; ``rag index --check`` lists them.
"""

from __future__ import annotations

import psycopg

from rag.store.manifest import Manifest

from .schema import structure_problem, vector_table
from .write import digest


def generation_problems(conn: psycopg.Connection, generation: int, manifest: Manifest) -> list[str]:
    """What is wrong with ``generation`` (one line each; [] when it is whole). Call in one snapshot."""
    if problem := structure_problem(conn):
        return [problem]
    problems = []
    for kind in ("entries", "chunks"):
        keys = [k for (k,) in conn.execute(f"SELECT key FROM rag_generation_{kind} WHERE generation = %s "
                                           "ORDER BY position", (generation,))]
        (present,) = conn.execute(f"SELECT count(*) FROM rag_generation_{kind} g JOIN rag_{kind} t ON t.key = g.key "
                                  "WHERE g.generation = %s", (generation,)).fetchone()
        if manifest.checksums.get(f"rag_{kind}") != digest(keys) or present != len(keys):
            problems.append(f"{kind} rows are missing or altered (rag_generation_{kind}, rag_{kind})")
    chunks = manifest.counts.chunks
    for name in manifest.dense:
        row = conn.execute("SELECT id FROM rag_vector_tables WHERE embedder_id = %s",
                           (manifest.embedder_ids.get(name),)).fetchone()
        if row is None:
            problems.append(f"the vectors of {name} are missing (rag_vector_tables)")
            continue
        (found,) = conn.execute(f"SELECT count(*) FROM rag_generation_chunks g JOIN {vector_table(row[0])} v "
                                "ON v.key = g.vkey WHERE g.generation = %s", (generation,)).fetchone()
        if found != chunks:
            problems.append(f"{chunks - found} of {chunks} vectors of {name} are missing ({vector_table(row[0])})")
    stored, present = conn.execute("SELECT encode(sha256(bm25), 'hex'), bm25 IS NOT NULL FROM rag_generations "
                                   "WHERE id = %s", (generation,)).fetchone()
    expected = manifest.checksums.get("bm25")
    if (expected is not None and stored != expected) or (chunks and not present):
        problems.append("the BM25 index is corrupt (rag_generations.bm25 does not match its checksum)")
    return problems
