"""The index store in PostgreSQL + pgvector: one index shared by a team and several app processes.

A build writes its generation in one transaction (only rows the database lacks: see
:mod:`rag.store.pg.schema`) and switches ``rag_current`` at commit, so readers never see half an index
and a killed build leaves the previous generation serving. Readers hold a small connection pool
and ask for the live generation's id once per question (:class:`~rag.store.IndexHandle`).

Lexical search stays in memory: BM25 over our jieba-aware tokens (Postgres full-text search cannot
segment Chinese), built at commit and stored with the generation; the tokens themselves are kept
per chunk for the next incremental build. Dense search below the HNSW threshold
is exact over the vectors fetched into numpy (the same ranking as the folder store); at or above
it, pgvector's HNSW index answers in the database.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import zipfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import astuple, fields, replace

import numpy as np
import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from rag.dsn import check_dsn, mask_dsn
from rag.ingest.chunking import Chunk
from rag.ingest.notes import Entry
from rag.store.base import (
    GenerationData,
    IndexDamaged,
    IndexStore,
    IndexUnavailable,
    Lexicon,
    LoadedIndex,
    PreviousGeneration,
)
from rag.store.bm25 import Bm25
from rag.store.dense import DenseIndex, ExactDense
from rag.store.manifest import Manifest, ManifestError
from rag.store.terms import Terms

from .cache import PgVectorCache
from .dense import PgDense, vectors_ready
from .schema import BUILD_LOCK, check_version, ensure_schema, stored_version, unavailable, vector_table
from .verify import generation_problems
from .write import check_shapes, collect_garbage, content_key, digest, put_rows, put_vectors

#: The pool retries a lost server in the background; its warnings are not for the user's terminal.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())
ENTRY_COLUMNS = tuple(f.name for f in fields(Entry))
CHUNK_COLUMNS = tuple(f.name for f in fields(Chunk))
#: Seconds to wait for a pooled connection before opening one of our own (which also says at once
#: when the server is gone, instead of after the pool's timeout).
QUICK_WAIT = 1.0


def _sql_row(entry: Entry) -> tuple:
    """An entry's fields as COPY takes them: tag and link tuples as lists (Postgres arrays), its
    (key, value) properties as a two-column array."""
    return tuple([list(p) if isinstance(p, tuple) else p for p in v] if isinstance(v, tuple) else v
                 for v in astuple(entry))


class PgStore(IndexStore):
    """Generations in a PostgreSQL database; ``location`` is the DSN with its password masked."""

    def __init__(self, dsn: str, hnsw_threshold: int = 50_000, ef_search: int = 256, pool_size: int = 4,
                 connect_timeout: int = 10) -> None:
        try:
            check_dsn(dsn)
        except ValueError as exc:
            raise IndexUnavailable(f"index store {exc}") from None
        self._dsn = dsn
        self.location = mask_dsn(dsn)
        self.hnsw_threshold = hnsw_threshold
        self.ef_search = ef_search
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        #: The connection holding this store's build lock while :meth:`lock` runs; a commit checks it lives.
        self._lock_conn: psycopg.Connection | None = None

    def __repr__(self) -> str:
        return f"PgStore({self.location})"

    # ------------------------------------------------------------------------------ connections

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise unavailable(exc, self.location, connected=True) from None

    def _connect(self) -> psycopg.Connection:
        """A connection of its own (a build's transaction, the build lock)."""
        try:
            return psycopg.connect(self._dsn, autocommit=True, connect_timeout=self.connect_timeout,
                                   application_name="notes-rag")
        except psycopg.Error as exc:
            raise unavailable(exc, self.location, connected=False) from None

    @contextmanager
    def _reader(self) -> Iterator[psycopg.Connection]:
        """A pooled connection: the app's request threads share a few, checked before each use."""
        with self._pool_lock:
            if self._pool is None:
                self._connect().close()  # a precise error now, not a pool timeout later
                pool = ConnectionPool(self._dsn, min_size=1, max_size=self.pool_size, open=False,
                                      kwargs={"autocommit": True, "connect_timeout": self.connect_timeout,
                                              "application_name": "notes-rag"},
                                      check=ConnectionPool.check_connection, timeout=self.connect_timeout,
                                      name="notes-rag")
                with self._errors():
                    pool.open(wait=True, timeout=self.connect_timeout)
                self._pool = pool
        pool = self._pool
        try:
            conn, pooled = pool.getconn(timeout=QUICK_WAIT), True
        except PoolTimeout:  # busy, or reconnecting after an outage: a connection of our own (or why not)
            conn, pooled = self._connect(), False
        try:
            with self._errors():
                yield conn
        finally:
            if pooled:
                pool.putconn(conn)
            else:
                conn.close()

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    # ---------------------------------------------------------------------------------- reading

    def _head(self, conn: psycopg.Connection) -> int | None:
        """The live generation's id after checking the tables' version; None before the first build."""
        version = stored_version(conn, self.location)
        if version is None:
            return None
        check_version(version, self.location)
        try:
            return conn.execute("SELECT (SELECT generation FROM rag_current)").fetchone()[0]
        except errors.UndefinedTable:
            raise IndexDamaged(f"the notes-rag tables in {self.location} are incomplete (rag_current is missing)") \
                from None

    def _live(self, conn: psycopg.Connection) -> tuple[int, Manifest]:
        generation = self._head(conn)
        if generation is None:
            raise IndexUnavailable(f"no index in {self.location}: run `rag index` first")
        (data,) = conn.execute("SELECT manifest FROM rag_generations WHERE id = %s", (generation,)).fetchone()
        try:
            return generation, Manifest.from_json(data)
        except ManifestError as exc:
            raise IndexDamaged(f"index in {self.location} is unreadable ({exc})") from None

    def current(self) -> str | None:
        with self._reader() as conn:
            generation = self._head(conn)
        return None if generation is None else str(generation)

    def manifest(self) -> Manifest:
        """The live manifest, its generation checked against it (rows, vectors, BM25, tables)."""
        with self._snapshot() as conn:
            generation, manifest = self._live(conn)
            if problems := generation_problems(conn, generation, manifest):
                raise IndexDamaged(f"index in {self.location} is damaged ({problems[0]})")
        return manifest

    def check(self) -> list[str]:
        try:
            with self._snapshot() as conn:
                generation, manifest = self._live(conn)
                return generation_problems(conn, generation, manifest)
        except IndexDamaged as exc:
            return [exc.problem]

    def _read(self, conn: psycopg.Connection, generation: int, manifest: Manifest, with_tokens: bool
              ) -> tuple[list[Entry], list[Chunk], list[list[str]]]:
        """Entries and chunks in order, checked against the manifest; tokens only for a builder."""
        cols = ", ".join(f"t.{c}" for c in ENTRY_COLUMNS)
        rows = conn.execute(f"SELECT t.key, {cols} FROM rag_generation_entries g JOIN rag_entries t ON t.key = g.key "
                            "WHERE g.generation = %s ORDER BY g.position", (generation,)).fetchall()
        entries = [Entry(*row[1:]) for row in rows]
        entry_keys = [row[0] for row in rows]
        cols = ", ".join(f"t.{c}" for c in CHUNK_COLUMNS)
        tokens_column = "t.tokens" if with_tokens else "NULL"
        rows = conn.execute(f"SELECT t.key, {tokens_column}, {cols} FROM rag_generation_chunks g JOIN rag_chunks t "
                            "ON t.key = g.key WHERE g.generation = %s ORDER BY g.position", (generation,)).fetchall()
        chunks = [Chunk(*row[2:]) for row in rows]
        tokens = [row[1] for row in rows] if with_tokens else []
        if (manifest.checksums.get("rag_entries") != digest(entry_keys)
                or manifest.checksums.get("rag_chunks") != digest([row[0] for row in rows])):
            raise IndexDamaged(f"index in {self.location} is damaged (rows missing)")
        return entries, chunks, tokens

    def _tables(self, conn: psycopg.Connection, manifest: Manifest) -> dict[str, tuple[str, int]]:
        """Embedder name → (its vector table, dimension)."""
        out = {}
        for name in manifest.dense:
            row = conn.execute("SELECT id, dim FROM rag_vector_tables WHERE embedder_id = %s",
                               (manifest.embedder_ids.get(name),)).fetchone()
            if row is None:
                raise IndexDamaged(f"index in {self.location} lacks the vectors of {name}")
            out[name] = (vector_table(row[0]), row[1])
        return out

    def _matrix(self, conn: psycopg.Connection, generation: int, table: str, dim: int, rows: int) -> np.ndarray:
        vectors_ready(conn)
        cur = conn.cursor(binary=True)
        cur.execute(f"SELECT v.embedding FROM rag_generation_chunks g JOIN {table} v ON v.key = g.vkey "
                    "WHERE g.generation = %s ORDER BY g.position", (generation,))
        vectors = cur.fetchall()
        if len(vectors) != rows:
            raise IndexDamaged(f"index in {self.location} is damaged (vectors missing)")
        return np.stack([v.to_numpy() for (v,) in vectors]) if rows else np.zeros((0, dim), np.float32)

    @contextmanager
    def _snapshot(self) -> Iterator[psycopg.Connection]:
        """One consistent view: a build's garbage collection cannot remove rows mid-load."""
        with self._reader() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield conn

    def load(self) -> LoadedIndex:
        with self._snapshot() as conn:
            generation, manifest = self._live(conn)
            entries, chunks, _ = self._read(conn, generation, manifest, with_tokens=False)
            lexicon = Lexicon(dict(conn.execute("SELECT token, df FROM rag_lexicon WHERE generation = %s",
                                                (generation,)).fetchall()), len(chunks))
            (blob,) = conn.cursor(binary=True).execute("SELECT bm25 FROM rag_generations WHERE id = %s",
                                                       (generation,)).fetchone()
            dense: dict[str, DenseIndex] = {}
            for name, (table, dim) in self._tables(conn, manifest).items():
                if len(chunks) >= self.hnsw_threshold:
                    dense[name] = PgDense(self._reader, generation, table, dim, len(chunks),
                                          self._spread(conn, table, generation), self.ef_search)
                else:
                    dense[name] = ExactDense(self._matrix(conn, generation, table, dim, len(chunks)))
        try:
            bm25 = Bm25.from_bytes(blob) if blob is not None else None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise IndexDamaged(f"the BM25 index in {self.location} is unreadable ({exc.__class__.__name__})") \
                from None
        return LoadedIndex(str(generation), manifest, entries, chunks, lexicon, bm25, dense)

    def _spread(self, conn: psycopg.Connection, table: str, generation: int) -> float:
        """Rows in the table per row of this generation: how much an HNSW scan must over-fetch
        (the table also holds the previous generation's vectors)."""
        total, mine = conn.execute(
            f"SELECT (SELECT count(*) FROM {table}), "
            "(SELECT count(DISTINCT vkey) FROM rag_generation_chunks WHERE generation = %s)", (generation,)).fetchone()
        return max(1.0, total / max(mine, 1))

    def previous(self) -> PreviousGeneration | None:
        try:
            with self._snapshot() as conn:
                generation, manifest = self._live(conn)
                entries, chunks, tokens = self._read(conn, generation, manifest, with_tokens=True)
                vectors = {name: self._matrix(conn, generation, table, dim, len(chunks))
                           for name, (table, dim) in self._tables(conn, manifest).items()}
        except IndexUnavailable:
            return None  # nothing usable: the build starts from scratch (check_writable reports why it can't)
        return PreviousGeneration(manifest, entries, chunks, Terms.of(tokens), vectors)

    # ---------------------------------------------------------------------------------- writing

    @contextmanager
    def lock(self, wait: bool = True) -> Iterator[None]:
        """A session advisory lock: released when the build's connection closes, even on kill -9."""
        with closing(self._connect()) as conn:
            with self._errors():
                if not conn.execute("SELECT pg_try_advisory_lock(%s)", (BUILD_LOCK,)).fetchone()[0]:
                    if not wait:
                        raise IndexUnavailable(f"another build of {self.location} is running: try again when it "
                                               "has finished")
                    print(f"waiting for another build of {self.location} to finish…", file=sys.stderr, flush=True)
                    conn.execute("SELECT pg_advisory_lock(%s)", (BUILD_LOCK,))
            self._lock_conn = conn
            try:
                yield
            finally:
                self._lock_conn = None

    def _check_lock(self, conn: psycopg.Connection) -> None:
        """Inside a commit: the build lock's session still holds it (a server restart or a killed
        backend ends it, and a second builder may then be running)."""
        if self._lock_conn is None:
            return  # a commit outside a build (tests, the benchmarks)
        try:
            pid = self._lock_conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        except psycopg.Error:
            pid = None
        held = pid is not None and conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s AND "
            "classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1",
            (pid, BUILD_LOCK >> 32, BUILD_LOCK & 0xFFFF_FFFF)).fetchone()[0]
        if not held:
            raise IndexUnavailable(f"the build lock on {self.location} was lost (did the server restart?): nothing "
                                   "was committed; run `rag index` again")

    def vector_cache(self, embedder_id: str) -> PgVectorCache:
        """Batches go straight into the embedder's vector table, committed one by one (:mod:`.cache`)."""
        return PgVectorCache(self._reader, embedder_id)

    def check_writable(self) -> None:
        with closing(self._connect()) as conn, self._errors(), conn.transaction():
            if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                raise IndexUnavailable(f"{self.location} is a read-only replica: build against the primary server")
            ensure_schema(conn, self.location)
            allowed = conn.execute(
                "SELECT bool_and(has_table_privilege(t, p)) AND has_schema_privilege(current_schema(), 'CREATE') "
                "FROM unnest(array['rag_generations', 'rag_current', 'rag_entries', 'rag_chunks', "
                "'rag_generation_entries', 'rag_generation_chunks', 'rag_vector_tables']) t, "
                "unnest(array['INSERT', 'UPDATE', 'DELETE']) p").fetchone()[0]
            if not allowed:
                raise IndexUnavailable(f"user lacks write privileges on the notes-rag tables in {self.location}: "
                                       "grant them, or build as the tables' owner")

    def commit(self, data: GenerationData) -> str:
        check_shapes(data)
        entry_keys = [content_key(astuple(e)) for e in data.entries]
        tokens = data.terms.bags()
        chunk_keys = [content_key([*astuple(c), t]) for c, t in zip(data.chunks, tokens, strict=True)]
        vkeys = [c.hash for c in data.chunks]
        lexicon = Lexicon.of(data.terms)
        bm25 = Bm25.of(data.terms).to_bytes() if data.chunks else None
        checksums = {"rag_entries": digest(entry_keys), "rag_chunks": digest(chunk_keys)}
        if bm25 is not None:
            checksums["bm25"] = hashlib.sha256(bm25).hexdigest()
        manifest = replace(data.manifest, checksums=checksums)
        with closing(self._connect()) as conn, self._errors():
            with conn.transaction():
                ensure_schema(conn, self.location)  # also serialises commits (a transaction lock)
                vectors_ready(conn)
                (old,) = conn.execute("SELECT (SELECT generation FROM rag_current)").fetchone()
                (generation,) = conn.execute("INSERT INTO rag_generations (manifest, bm25) VALUES (%s, %s) "
                                             "RETURNING id", (Jsonb(manifest.to_json()), bm25)).fetchone()
                with conn.cursor().copy("COPY rag_lexicon (generation, token, df) FROM STDIN") as copy:
                    for token, df in lexicon.doc_freq.items():
                        copy.write_row((generation, token, df))
                put_rows(conn, "entries", generation, entry_keys, None,
                          lambda i: _sql_row(data.entries[i]), ENTRY_COLUMNS)
                put_rows(conn, "chunks", generation, chunk_keys, vkeys,
                          lambda i: (*astuple(data.chunks[i]), tokens[i], vkeys[i]),
                          (*CHUNK_COLUMNS, "tokens", "vkey"))
                for name, matrix in data.vectors.items():
                    put_vectors(conn, manifest.embedder_ids[name], matrix, vkeys,
                                 approximate=len(data.chunks) >= self.hnsw_threshold)
                self._check_lock(conn)
                conn.execute("INSERT INTO rag_current (generation) VALUES (%s) ON CONFLICT (singleton) "
                             "DO UPDATE SET generation = EXCLUDED.generation", (generation,))
            with conn.transaction():
                collect_garbage(conn, keep=[g for g in (generation, old) if g is not None])
        return str(generation)
