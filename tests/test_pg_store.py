"""The PostgreSQL + pgvector store against a real server (pgserver's PostgreSQL 16, see pg_server).

What a team relies on: a commit is all-or-nothing (even under kill -9), readers in other processes
see whole generations only, incremental commits rewrite nothing unchanged, one builder at a time,
and every failure is one line that never shows the password.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from rag.settings import Settings, SettingsError, load_settings
from rag.store import IndexHandle, IndexUnavailable, Lexicon, open_store
from rag.store.bm25 import Bm25
from rag.store.dense import ExactDense
from rag.store.pg.dense import PgDense
from rag.store.pg.store import PgStore
from tests.pg_server import SUPERUSER_PASSWORD, PgCluster, make_generation

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def one_line(exc: IndexUnavailable, *secrets: str) -> str:
    message = str(exc)
    assert "\n" not in message and message
    for secret in (SUPERUSER_PASSWORD, *secrets):
        assert secret not in message
    return message


def rows(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def run_python(code: str, *args: str, **popen: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def test_commit_then_load_gives_back_what_was_committed(pg_dsn: str) -> None:
    store = PgStore(pg_dsn)
    assert store.current() is None
    assert SUPERUSER_PASSWORD not in store.location + repr(store) and ":***@" in store.location
    with pytest.raises(IndexUnavailable) as missing:
        store.load()
    assert "run `rag index`" in one_line(missing.value)

    data = make_generation(1)
    generation = store.commit(data)
    assert store.current() == generation
    index = store.load()
    assert index.generation == generation
    assert index.entries == data.entries and index.chunks == data.chunks
    assert index.manifest.notes == data.manifest.notes and index.manifest.corpus == "v1"
    assert index.manifest == store.manifest() and set(index.manifest.checksums) == {"rag_entries", "rag_chunks", "bm25"}
    assert index.lexicon == Lexicon.of(data.terms)
    dense = index.dense["hash"]
    assert isinstance(dense, ExactDense)
    np.testing.assert_array_equal(dense.matrix, data.vectors["hash"])  # float4 in, float4 out: bit-identical
    exact = ExactDense(data.vectors["hash"])
    for row in range(0, len(data.chunks), 3):
        query = data.vectors["hash"][row]
        np.testing.assert_array_equal(dense.search(query, 5)[0], exact.search(query, 5)[0])
    fresh = Bm25.of(data.terms)
    for query in (["注意力", "topic1"], ["kv-cache", "bench3", "unknown"]):
        scores = index.bm25.get_scores(query)
        assert scores.max() > 0
        np.testing.assert_array_equal(scores, fresh.get_scores(query))  # the stored BM25 is the one we'd build
    store.close()


def test_incremental_commit_writes_only_changed_rows_and_drops_stale_ones(pg_dsn: str) -> None:
    store = PgStore(pg_dsn)
    first = make_generation(1)
    store.commit(first)
    before = dict(rows(pg_dsn, "SELECT key, xmin::text FROM rag_chunks"))
    vectors_before = dict(rows(pg_dsn, "SELECT key, xmin::text FROM rag_vectors_1"))

    second = make_generation(2, changed=(1, 4))  # two entries edited: 4 chunks new, 8 unchanged
    store.commit(second)
    after = dict(rows(pg_dsn, "SELECT key, xmin::text FROM rag_chunks"))
    assert len(after) == len(before) + 4  # the replaced generation's rows stay for readers mid-load
    assert all(after[key] == xmin for key, xmin in before.items())  # unchanged rows were not rewritten
    vectors_after = dict(rows(pg_dsn, "SELECT key, xmin::text FROM rag_vectors_1"))
    assert all(vectors_after[key] == xmin for key, xmin in vectors_before.items())
    assert len(vectors_after) == len(vectors_before) + 4

    previous = store.previous()
    assert previous is not None and previous.chunks == second.chunks and previous.terms.bags() == second.terms.bags()
    np.testing.assert_array_equal(previous.vectors["hash"], second.vectors["hash"])

    third = make_generation(3, changed=(1, 4, 5))
    store.commit(third)  # generation 1 is collected now: only 2 (just replaced) and 3 remain
    assert rows(pg_dsn, "SELECT count(*) FROM rag_generations") == [(2,)]
    assert rows(pg_dsn, "SELECT count(*) FROM rag_chunks") == [(len(third.chunks) + 4 + 2,)]
    assert store.load().chunks == third.chunks
    store.close()


def test_hnsw_above_the_threshold_searches_in_the_database(pg_dsn: str) -> None:
    store = PgStore(pg_dsn, hnsw_threshold=10)
    first = make_generation(1, entries=20)
    store.commit(first)
    data = make_generation(2, entries=20, changed=(3, 7))
    store.commit(data)
    assert rows(pg_dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'rag_vectors_1_hnsw'") == [(1,)]
    index = store.load()
    dense = index.dense["hash"]
    assert isinstance(dense, PgDense) and dense.size == len(data.chunks) and dense.spread > 1
    exact = ExactDense(data.vectors["hash"])
    allowed = np.array([c.file == "note0.md" for c in data.chunks])
    for row in (0, 7, 15):
        query = data.vectors["hash"][row]
        ids, scores = dense.search(query, 8)
        want_ids, want_scores = exact.search(query, 8)  # 40 points: HNSW with ef_search 256 is exact
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
        assert set(ids) <= set(range(len(data.chunks))) and ids[0] == want_ids[0] == row
        ids, _ = dense.search(query, 8, allowed=allowed)
        assert len(ids) == 8 and allowed[ids].all()
    np.testing.assert_array_equal(dense.vectors(np.array([5, 0, 5])), data.vectors["hash"][[5, 0, 5]])
    store.close()


READER = """
    import json, sys, time
    from rag.store.pg.store import PgStore
    from rag.store import IndexHandle, IndexUnavailable
    store = PgStore(sys.argv[1])
    handle, seen, errors, checks = IndexHandle(store), [], [], 0
    deadline = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        try:
            index = handle.get()
        except IndexUnavailable as exc:
            errors.append(str(exc))
            continue
        version = index.manifest.corpus
        whole = (len(index.chunks) == index.manifest.counts.chunks == index.dense["hash"].size
                 and all(e.title.endswith(version) for e in index.entries[:2]))
        if not whole:
            errors.append(f"mixed generation {index.generation}")
        if not seen or seen[-1] != version:
            seen.append(version)
        checks += 1
        time.sleep(0.01)
    print(json.dumps({"seen": seen, "errors": errors, "checks": checks}))
"""


def test_readers_in_other_processes_see_whole_generations_while_a_third_commits(pg_dsn: str) -> None:
    store = PgStore(pg_dsn)
    store.commit(make_generation(1, changed=(0, 1)))
    readers = [run_python(READER, pg_dsn, "8") for _ in range(2)]
    time.sleep(2.5)  # let them load v1
    for version in range(2, 7):
        store.commit(make_generation(version, entries=6 + version, changed=(0, 1)))
        time.sleep(0.6)
    reports = [json.loads(r.communicate(timeout=60)[0]) for r in readers]
    for report in reports:
        assert report["errors"] == [] and report["checks"] > 20
        assert report["seen"][-1] == "v6" and len(report["seen"]) >= 3
        assert report["seen"] == sorted(report["seen"])
    store.close()


KILLED_COMMITTER = """
    import sys, time
    import rag.store.pg.store as pg
    from tests.pg_server import make_generation
    write = pg.put_vectors
    def write_then_hang(*args, **kwargs):
        write(*args, **kwargs)
        print("mid-commit", flush=True)
        time.sleep(120)
    pg.put_vectors = write_then_hang
    pg.PgStore(sys.argv[1]).commit(make_generation(2, entries=30))
"""


def test_kill_9_mid_commit_leaves_the_previous_generation_serving(pg_dsn: str) -> None:
    store = PgStore(pg_dsn)
    first = make_generation(1)
    generation = store.commit(first)
    committer = run_python(KILLED_COMMITTER, pg_dsn)
    assert committer.stdout.readline().strip() == "mid-commit"
    os.kill(committer.pid, signal.SIGKILL)
    committer.wait(timeout=10)
    assert store.current() == generation
    assert store.load().chunks == first.chunks
    started = time.monotonic()
    assert store.commit(make_generation(3)) != generation  # nothing left locked
    assert time.monotonic() - started < 10
    assert rows(pg_dsn, "SELECT count(*) FROM rag_chunks") == [(len(first.chunks),)]  # the killed rows never landed
    store.close()


def test_one_builder_at_a_time(pg_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    holder, other = PgStore(pg_dsn), PgStore(pg_dsn)
    acquired = threading.Event()

    def second_builder() -> None:
        with other.lock(wait=True):
            acquired.set()

    with holder.lock():
        with pytest.raises(IndexUnavailable) as busy, other.lock(wait=False):
            pass
        assert "another build" in one_line(busy.value) and other.location in str(busy.value)
        waiter = threading.Thread(target=second_builder)
        waiter.start()
        assert not acquired.wait(1.0)  # it waits while the first build runs
    assert acquired.wait(10)
    waiter.join(10)
    err = capsys.readouterr().err
    assert err.count("waiting for another build") == 1 and SUPERUSER_PASSWORD not in err
    with other.lock(wait=False):  # both released
        pass


def test_unreachable_or_refused_servers_are_one_line_without_the_password(pg_cluster: PgCluster) -> None:
    secret = "Hunter2-not-this"
    cases = {
        f"postgresql://postgres:{secret}@127.0.0.1:1/notes": "cannot connect",
        pg_cluster.dsn(password=secret): "refused the login of user postgres",
        pg_cluster.dsn("no_such_db"): "database no_such_db does not exist",
    }
    for dsn, expected in cases.items():
        store = PgStore(dsn, connect_timeout=5)
        for call in (store.current, store.load, store.check_writable, store.lock().__enter__):
            with pytest.raises(IndexUnavailable) as failed:
                call()
            assert expected in one_line(failed.value, secret) and store.location in str(failed.value)
    with pytest.raises(IndexUnavailable) as bad:
        PgStore(f"postgresql://postgres:{secret}@127.0.0.1:99999/notes")
    one_line(bad.value, secret)


def test_a_database_where_vector_cannot_be_enabled_says_what_to_ask_for(pg_cluster: PgCluster) -> None:
    pg_cluster.admin("CREATE ROLE plain LOGIN PASSWORD 'plain-Secret-1'", "CREATE DATABASE plain_db OWNER plain")
    store = PgStore(pg_cluster.dsn("plain_db", "plain", "plain-Secret-1"))
    assert store.current() is None
    with pytest.raises(IndexUnavailable) as refused:
        store.check_writable()
    message = one_line(refused.value, "plain-Secret-1")
    assert "CREATE EXTENSION vector" in message and "user plain" in message
    with pytest.raises(IndexUnavailable):
        store.commit(make_generation(1))
    store.close()


def test_a_server_that_goes_away_is_one_line_and_readers_recover(pg_cluster: PgCluster, pg_dsn: str) -> None:
    store = PgStore(pg_dsn, hnsw_threshold=4)  # dense search runs in the database
    data = make_generation(1)
    store.commit(data)
    handle = IndexHandle(store)
    index = handle.get()
    pg_cluster.stop("immediate")
    try:
        for call in (store.current, handle.get, lambda: index.dense["hash"].search(data.vectors["hash"][0], 3)):
            with pytest.raises(IndexUnavailable) as gone:
                call()
            assert "is the server" in one_line(gone.value)
    finally:
        pg_cluster.start()
    assert handle.get() is index  # the pool reconnects; the same generation keeps serving
    assert index.dense["hash"].search(data.vectors["hash"][0], 3)[0][0] == 0
    store.close()


def test_schema_versions_other_than_ours_say_what_to_do(pg_dsn: str) -> None:
    store = PgStore(pg_dsn)
    store.commit(make_generation(1))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE rag_schema SET version = 99")
    with pytest.raises(IndexUnavailable) as newer:
        store.current()
    assert "newer notes-rag" in one_line(newer.value)
    with pytest.raises(IndexUnavailable):
        store.commit(make_generation(2))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE rag_schema SET version = 0")
    with pytest.raises(IndexUnavailable) as older:
        store.load()
    assert "run `rag index`" in one_line(older.value)
    assert store.previous() is None
    data = make_generation(2)
    store.commit(data)  # a builder lays the tables anew: every row is derived from the notes
    assert store.load().chunks == data.chunks
    store.close()


def test_the_store_setting_picks_postgres_and_never_shows_the_password(tmp_path: Path) -> None:
    dsn = "postgresql://ann:s3cret-pw@db.example:5433/notes"
    (tmp_path / "empty.toml").write_text("")
    settings = load_settings(config_file=tmp_path / "empty.toml", env={"RAG_STORE": dsn})
    assert settings.index.store == dsn
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in json.dumps(settings.public())
    assert settings.public()["index"]["store"] == "postgresql://ann:***@db.example:5433/notes"
    store = open_store(settings)  # no connection until first use
    assert isinstance(store, PgStore) and store.location == "postgresql://ann:***@db.example:5433/notes"
    for bad in ("mysql://ann:s3cret-pw@db/notes", "postgresql://ann:s3cret-pw@db:99999/notes",
                "postgresql://ann:s3cret-pw@db"):
        with pytest.raises(SettingsError) as refused:
            Settings().updated({"index.store": bad}, source="RAG_STORE")
        assert "s3cret-pw" not in str(refused.value) and "index.store" in str(refused.value)
    (tmp_path / "rag.toml").write_text(f'[index]\nstore = "{dsn}"\n')
    with pytest.raises(SettingsError) as in_file:
        load_settings(config_file=tmp_path / "rag.toml", env={})
    assert "PGPASSWORD" in str(in_file.value) and "s3cret-pw" not in str(in_file.value)
    (tmp_path / "rag.toml").write_text('[index]\nstore = "postgresql://ann@db.example/notes"\n')
    assert load_settings(config_file=tmp_path / "rag.toml", env={}).index.store == "postgresql://ann@db.example/notes"
