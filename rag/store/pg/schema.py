"""The PostgreSQL store's tables, their version, and its errors as one line each.

Rows are content-addressed: an entry or chunk row (key = sha256 of its fields) and a vector row
(key = the chunk's text hash, one table per embedder model) are written once and shared by every
generation that contains them; a generation is its membership rows (generation, position, key).
So an incremental build writes only what changed, and a commit is one transaction that ends by
pointing ``rag_current`` at the new generation.

psycopg's own error text can quote the connection string, so it is never shown: every failure
becomes an :class:`~rag.store.IndexUnavailable` with a message written here, naming the masked DSN.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
from psycopg import errors

from rag.store import IndexUnavailable

#: Bump when the tables change; a store of another version says what to do (see :func:`check_version`).
SCHEMA_VERSION = 2
#: pg_advisory_lock keys: one builder per database; commits and garbage collection serialised.
BUILD_LOCK = 0x7261_6762_7569_6C64  # "ragbuild"
COMMIT_LOCK = 0x7261_6763_6F6D_6D74  # "ragcommt"
TABLES = ("rag_current", "rag_lexicon", "rag_generation_chunks", "rag_generation_entries", "rag_chunks", "rag_entries",
          "rag_generations", "rag_vector_tables", "rag_schema")

DDL = f"""
CREATE TABLE rag_schema (version integer NOT NULL);
INSERT INTO rag_schema VALUES ({SCHEMA_VERSION});
CREATE TABLE rag_generations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created timestamptz NOT NULL DEFAULT now(),
    manifest jsonb NOT NULL,
    bm25 bytea);
CREATE TABLE rag_current (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint NOT NULL REFERENCES rag_generations (id));
CREATE TABLE rag_entries (
    key text PRIMARY KEY, file text NOT NULL, title text NOT NULL, line_start integer NOT NULL,
    line_end integer NOT NULL, url text, date text, text text NOT NULL, kind text NOT NULL,
    tags text[] NOT NULL, aliases text[] NOT NULL, authors text[] NOT NULL, links text[] NOT NULL,
    context text NOT NULL);
CREATE TABLE rag_chunks (
    key text PRIMARY KEY, vkey text NOT NULL, entry_id text NOT NULL, file text NOT NULL,
    line_start integer NOT NULL, line_end integer NOT NULL, text text NOT NULL, context text NOT NULL,
    tokens text[] NOT NULL);
CREATE TABLE rag_generation_entries (
    generation bigint NOT NULL REFERENCES rag_generations (id) ON DELETE CASCADE,
    position integer NOT NULL, key text NOT NULL, PRIMARY KEY (generation, position));
CREATE INDEX ON rag_generation_entries (key);
CREATE TABLE rag_generation_chunks (
    generation bigint NOT NULL REFERENCES rag_generations (id) ON DELETE CASCADE,
    position integer NOT NULL, key text NOT NULL, vkey text NOT NULL, PRIMARY KEY (generation, position));
CREATE INDEX ON rag_generation_chunks (key);
CREATE INDEX ON rag_generation_chunks (vkey, generation);
CREATE TABLE rag_lexicon (
    generation bigint NOT NULL REFERENCES rag_generations (id) ON DELETE CASCADE,
    token text NOT NULL, df integer NOT NULL, PRIMARY KEY (generation, token));
CREATE TABLE rag_vector_tables (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, embedder_id text NOT NULL UNIQUE,
    dim integer NOT NULL);
"""


def vector_table(table_id: int) -> str:
    return f"rag_vectors_{int(table_id)}"


def version_problem(found: int | None, location: str) -> str | None:
    """What to do about a store written under another schema version (None: it is ours)."""
    if found is None or found == SCHEMA_VERSION:
        return None
    if found > SCHEMA_VERSION:
        return (f"the index in {location} was written by a newer notes-rag (schema {found}, this one reads "
                f"{SCHEMA_VERSION}): upgrade notes-rag")
    return (f"the index in {location} has an older layout (schema {found}, this one reads {SCHEMA_VERSION}): "
            "run `rag index` to rebuild it")


def ensure_schema(conn: psycopg.Connection, location: str) -> None:
    """Create the extension and tables on first use; rebuild-from-scratch an older layout (every row
    is derived from the notes); refuse a newer one. Call in a transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))
    if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        create_extension(conn, location)
    if conn.execute("SELECT to_regclass('rag_schema')").fetchone()[0] is not None:
        found = conn.execute("SELECT max(version) FROM rag_schema").fetchone()[0]
        if found == SCHEMA_VERSION:
            return
        if found is not None and found > SCHEMA_VERSION:
            raise IndexUnavailable(version_problem(found, location))
        drop_all(conn)
    conn.execute(DDL)


def create_extension(conn: psycopg.Connection, location: str) -> None:
    available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if not available:
        raise IndexUnavailable(f"the server of {location} has no pgvector: install the `vector` extension "
                               "there (https://github.com/pgvector/pgvector), or use a server that has it")
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except errors.InsufficientPrivilege:
        user, db = _who(location)
        raise IndexUnavailable(f"the `vector` extension is not enabled in database {db} and user {user} may not "
                               f"enable it: ask an administrator to run `CREATE EXTENSION vector` in {db}") from None


def drop_all(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT to_regclass('rag_vector_tables')").fetchone()[0] is not None:
        for (table_id,) in conn.execute("SELECT id FROM rag_vector_tables").fetchall():
            conn.execute(f"DROP TABLE IF EXISTS {vector_table(table_id)}")
    conn.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)} CASCADE")


def _who(location: str) -> tuple[str, str]:
    parts = urlsplit(location)
    return parts.username or "(default)", parts.path.strip("/") or "(default)"


def unavailable(exc: Exception, location: str, connected: bool) -> IndexUnavailable:
    """A one-line error for a failed connection or query, written here (never psycopg's text)."""
    text = str(exc)
    user, db = _who(location)
    if not connected:
        if "password authentication failed" in text or "no password supplied" in text or "authentication" in text:
            return IndexUnavailable(f"the server of {location} refused the login of user {user}: check the user "
                                    "and password (in the DSN, PGPASSWORD or ~/.pgpass)")
        if "does not exist" in text and "database" in text:
            return IndexUnavailable(f"database {db} does not exist on the server of {location}: create it "
                                    f"(createdb {db}) or fix the DSN")
        if "does not exist" in text and "role" in text:
            return IndexUnavailable(f"user {user} does not exist on the server of {location}: fix the DSN")
        if "translate host name" in text or "Name or service not known" in text:
            return IndexUnavailable(f"cannot resolve the host of {location}: fix the DSN")
        if "timeout" in text:
            return IndexUnavailable(f"timed out connecting to {location}: is the server reachable?")
        return IndexUnavailable(f"cannot connect to the index database at {location}: is the server running "
                                "and accepting TCP connections there?")
    if isinstance(exc, errors.InsufficientPrivilege):
        return IndexUnavailable(f"user {user} lacks a privilege on the notes-rag tables in {location}: grant it, "
                                "or use the user that built the index")
    if isinstance(exc, errors.ReadOnlySqlTransaction):
        return IndexUnavailable(f"{location} is read-only (a replica?): build against the primary server")
    if isinstance(exc, errors.UndefinedTable | errors.UndefinedColumn | errors.UndefinedObject):
        return IndexUnavailable(f"the notes-rag tables in {location} are damaged: run `rag index` to rebuild")
    if isinstance(exc, psycopg.OperationalError):
        return IndexUnavailable(f"lost the connection to the index database at {location}: is the server "
                                "still running?")
    return IndexUnavailable(f"the index database at {location} failed ({exc.__class__.__name__}): "
                            "run `rag index` to rebuild, or check the server's log")
