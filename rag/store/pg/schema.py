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

import re
from urllib.parse import urlsplit

import psycopg
from psycopg import errors

from rag.store.base import IndexDamaged, IndexUnavailable

#: Bump when the tables change: an older store is laid anew by a build, a newer one refused (see
#: :func:`check_version`).
SCHEMA_VERSION = 3
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
    context text NOT NULL, properties text[] NOT NULL);
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


def stored_version(conn: psycopg.Connection, location: str) -> int | None:
    """The tables' schema version; None before the first build. IndexDamaged when some notes-rag
    tables exist but their version is missing or unreadable (a dropped ``rag_schema``, a hand-altered
    column type, several rows): a rebuild lays them anew."""
    if conn.execute("SELECT to_regclass('rag_schema')").fetchone()[0] is None:
        if conn.execute("SELECT to_regclass('rag_current')").fetchone()[0] is None:
            return None
        raise IndexDamaged(f"the notes-rag tables in {location} have no schema version (rag_schema is missing)")
    values = {v for (v,) in conn.execute("SELECT version::text FROM rag_schema").fetchall()}
    text = values.pop().strip() if len(values) == 1 and None not in values else ""
    if not re.fullmatch(r"-?\d{1,9}", text):
        raise IndexDamaged(f"the schema version of the notes-rag tables in {location} is unreadable")
    return int(text)


def check_version(found: int | None, location: str) -> None:
    """Refuse a store of another layout: a newer one with what to upgrade to (a rebuild would
    destroy it for its newer readers), an older or odd one as damaged (a rebuild fixes it)."""
    if found is None or found == SCHEMA_VERSION:
        return
    if found > SCHEMA_VERSION:
        raise IndexUnavailable(f"the index in {location} was written by a newer notes-rag (schema {found}, this one "
                               f"reads {SCHEMA_VERSION}): upgrade notes-rag to a version that reads schema {found}")
    raise IndexDamaged(f"the index in {location} has an older layout (schema {found}, this one reads "
                       f"{SCHEMA_VERSION})")


def structure_problem(conn: psycopg.Connection) -> str | None:
    """What is missing from the tables of a store of our version (None: nothing): the extension, a
    table, a vector table or its column (``DROP EXTENSION vector CASCADE`` drops the columns)."""
    if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return "the vector extension was dropped"
    for table in TABLES:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
            return f"table {table} is missing"
    for table_id, embedder_id in conn.execute("SELECT id, embedder_id FROM rag_vector_tables").fetchall():
        column = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                              "to_regclass(%s) AND attname = 'embedding' AND NOT attisdropped",
                              (vector_table(table_id),)).fetchone()
        if column is None or not column[0].startswith("vector"):
            return f"the vector table of {embedder_id} is missing or lost its vectors"
    return None


def ensure_schema(conn: psycopg.Connection, location: str) -> None:
    """Create the extension and tables on first use; lay them anew when they are of an older or
    unreadable version or lack a part (every row is derived from the notes); refuse a newer
    version. Call in a transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))
    if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        create_extension(conn, location)
    try:
        found = stored_version(conn, location)
        check_version(found, location)
    except IndexDamaged:
        found = -1
    if found == SCHEMA_VERSION and structure_problem(conn) is None:
        return
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
    """Every notes-rag table, vector tables included even when ``rag_vector_tables`` no longer lists them."""
    vectors = [name for (name,) in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename ~ '^rag_vectors_[0-9]+$'")]
    conn.execute(f"DROP TABLE IF EXISTS {', '.join([*TABLES, *vectors])} CASCADE")


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
    if isinstance(exc, errors.UndefinedTable | errors.UndefinedColumn | errors.UndefinedObject
                  | errors.UndefinedFunction | errors.DatatypeMismatch):
        return IndexDamaged(f"the notes-rag tables in {location} are damaged ({exc.__class__.__name__})")
    if isinstance(exc, psycopg.OperationalError):
        return IndexUnavailable(f"lost the connection to the index database at {location}: is the server "
                                "still running?")
    return IndexUnavailable(f"the index database at {location} failed ({exc.__class__.__name__}): "
                            "run `rag index` to rebuild, or check the server's log")
