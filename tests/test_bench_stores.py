"""`rag bench`'s store comparison for real, kept small: the real notes and a small synthetic
corpus (HNSW above a lowered threshold) on the folder store and on a real PostgreSQL, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from rag.bench import run_bench
from rag.bench.stores import postgres_for_bench
from rag.eval.qa import load_split
from rag.settings import Settings
from rag.store import IndexUnavailable
from rag.store.pg.store import PgStore
from tests.conftest import CORPUS, QA
from tests.pg_server import SUPERUSER_PASSWORD, make_generation

pytestmark = pytest.mark.slow


def test_stores_side_by_side_on_a_given_database(tmp_path: Path, pg_dsn: str) -> None:
    settings = Settings().updated({"index.corpus": CORPUS, "index.path": tmp_path / "unused",
                                   "index.embedders": ("hash",), "index.hnsw_threshold": 1000})
    out = tmp_path / "bench.json"
    report = run_bench(settings, out, scales=[1500], n_queries=20, qa_path=QA, split="tune", pg=pg_dsn,
                       stores_only=True)

    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(json.dumps(report))
    assert report["notes"] == [] and report["scale"] == [] and report["baseline"] == []  # only the stores
    s = report["stores"]
    questions = len(load_split(QA, "tune").questions)
    assert s["notes"]["same_rankings"] == s["notes"]["questions"] == questions
    for kind in ("folder", "postgres"):
        notes = s["notes"][kind]
        assert notes["full_build"]["seconds"] > 0 and "added" in notes["add_one_note"]["summary"]
        assert notes["search"]["search_ms"]["n"] == questions and notes["index_size_mb"] > 0
        read = s["scale"]["read"][kind]
        assert read["search_ms_4_readers"]["n"] == read["search_ms_1_reader"]["n"] == questions
        assert read["peak_rss_mb"] > read["rss_mb_before_load"] > 0 and s["scale"]["write"][kind]["seconds"] > 0
    assert s["scale"]["entries"] == 1500 and s["scale"]["chunks"] > 1000  # above the threshold: HNSW on both sides
    assert s["scale"]["read"]["folder"]["recall"]["hash"]["kind"] == "HnswDense"
    assert s["scale"]["read"]["postgres"]["recall"]["hash"]["kind"] == "PgDense"
    assert min(r["recall"]["hash"]["recall@10"] for r in s["scale"]["read"].values()) >= 0.9
    assert s["ratios"] and all(v is not None and v > 0 for v in s["ratios"].values())
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "PostgreSQL store vs the folder store" in markdown and "postgres / folder" in markdown
    assert SUPERUSER_PASSWORD not in markdown + out.read_text(encoding="utf-8")
    with psycopg.connect(pg_dsn) as conn:  # the bench dropped what it wrote
        assert conn.execute("SELECT to_regclass('rag_current')").fetchone() == (None,)


def test_a_database_holding_an_index_is_refused(pg_dsn: str) -> None:
    PgStore(pg_dsn).commit(make_generation(1))
    with pytest.raises(IndexUnavailable) as refused, postgres_for_bench(pg_dsn):
        pass
    assert "holds a notes-rag index already" in str(refused.value) and SUPERUSER_PASSWORD not in str(refused.value)
    assert PgStore(pg_dsn).current() is not None  # and left as it was


def test_a_throw_away_local_server_is_empty_and_gone_afterwards() -> None:
    with postgres_for_bench(None) as dsn:
        assert PgStore(dsn).current() is None
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SHOW shared_buffers").fetchone() == ("512MB",)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=3).close()
