"""Fault battery, the PostgreSQL store (issue 25): a store that is older, odd, half-dropped or damaged
is rebuilt by the command its errors recommend (`rag index`); a newer one is one line naming the
version it needs; `rag index --check` lists what is wrong; a build whose lock died commits nothing.
Real PostgreSQL 16 + pgvector (tests/pg_server.py) and the real `rag` command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from rag.store import IndexUnavailable
from rag.store.pg.store import PgStore
from tests.battery import Run, assert_no_traceback, assert_one_line_error, run_subprocess
from tests.conftest import QUOKKA
from tests.pg_server import SUPERUSER_PASSWORD, make_generation

pytestmark = pytest.mark.slow
Rag = Callable[..., Run]


def sql(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def rag(pg_dsn: str, tmp_path: Path) -> Rag:
    """The real `rag` on a one-note corpus indexed into this test's database (hash embedder)."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "quokka.md").write_text(QUOKKA, encoding="utf-8")
    env = {"RAG_STORE": pg_dsn, "RAG_CORPUS": str(tmp_path / "corpus"), "RAG_EMBEDDERS": "hash"}

    def run(*args: str) -> Run:
        done = run_subprocess(*args, env=env, cwd=tmp_path)
        assert_no_traceback(done)
        assert SUPERUSER_PASSWORD not in done.out + done.err
        return done

    assert run("index").code == 0
    return run


def rebuilds_and_serves(rag: Rag) -> None:
    """`rag index` rebuilds (never "up to date"), then search finds the note and --check passes."""
    built = rag("index")
    assert built.code == 0 and "rebuilt the whole index" in built.err and "up to date" not in built.err, built.err
    found = rag("search", "Quokka-Attention", "--json")
    assert found.code == 0 and json.loads(found.out)["hits"][0]["file"] == "quokka.md", found.err
    assert rag("index", "--check").code == 0


OLD_OR_ODD = {
    "schema version 0": "UPDATE rag_schema SET version = 0",
    "schema version -1": "UPDATE rag_schema SET version = -1",
    "manifest {'x': 1}": "UPDATE rag_generations SET manifest = '{\"x\": 1}'",
    "manifest null": "UPDATE rag_generations SET manifest = 'null'",
    "rag_schema dropped": "DROP TABLE rag_schema",
    "version column made text": "ALTER TABLE rag_schema ALTER COLUMN version TYPE text USING 'one'",
}


@pytest.mark.parametrize("name", OLD_OR_ODD)
def test_rag_index_repairs_an_older_or_unreadable_store(name: str, rag: Rag, pg_dsn: str) -> None:
    """Issue 25 bug 3: these said "run `rag index` to rebuild it", and `rag index` then failed the same
    way (or with DuplicateTable); bug 7: an altered version column was a TypeError."""
    sql(pg_dsn, OLD_OR_ODD[name])
    searched = rag("search", "Quokka-Attention")
    assert_one_line_error(searched, "run `rag index`")
    rebuilds_and_serves(rag)


def test_a_version_column_of_another_type_still_reads(rag: Rag, pg_dsn: str) -> None:
    sql(pg_dsn, "ALTER TABLE rag_schema ALTER COLUMN version TYPE numeric")
    assert rag("search", "Quokka-Attention").code == 0


def test_a_newer_store_is_one_line_naming_the_version_needed(rag: Rag, pg_dsn: str) -> None:
    sql(pg_dsn, "UPDATE rag_schema SET version = 99")
    for args in (("index",), ("search", "x"), ("index", "--check")):
        assert_one_line_error(rag(*args), "newer notes-rag", "schema 99")
    with psycopg.connect(pg_dsn) as conn:  # nothing was dropped for the newer readers
        assert conn.execute("SELECT version FROM rag_schema").fetchall() == [(99,)]


DAMAGE = {
    "entry rows deleted": ["DELETE FROM rag_generation_entries WHERE position = 0"],
    "vector tables dropped": ["DROP TABLE rag_vectors_1"],
    "BM25 blob corrupted": ["UPDATE rag_generations SET bm25 = overlay(bm25 placing '\\x00ff00'::bytea from 40)"],
    "vector extension dropped": ["DROP EXTENSION vector CASCADE"],
}


@pytest.mark.parametrize("name", DAMAGE)
def test_rag_index_rebuilds_a_damaged_store_and_check_says_why(name: str, rag: Rag, pg_dsn: str) -> None:
    """Issue 25 bug 4: `rag index` said "index is up to date" on these, and search stayed broken."""
    sql(pg_dsn, *DAMAGE[name])
    checked = rag("index", "--check")
    assert checked.code == 2 and checked.out == "" and checked.err_lines, checked.err
    assert all(line.startswith("rag: postgresql://") for line in checked.err_lines), checked.err
    rebuilds_and_serves(rag)


def test_a_build_whose_lock_died_commits_nothing(pg_dsn: str) -> None:
    """Issue 25 bug 5: a build went on and committed after its advisory lock died with its session,
    while a second builder could take the lock."""
    store = PgStore(pg_dsn)
    first = store.commit(make_generation(1))
    with store.lock():
        sql(pg_dsn, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid <> pg_backend_pid()")
        with PgStore(pg_dsn).lock(wait=False):  # what makes it dangerous: another build may start
            pass
        with pytest.raises(IndexUnavailable, match=r"build lock .* was lost") as lost:
            store.commit(make_generation(2))
        assert "\n" not in str(lost.value) and SUPERUSER_PASSWORD not in str(lost.value)
    assert store.current() == first
    with store.lock():  # a live lock commits as before
        assert store.commit(make_generation(3)) != first
    store.close()
