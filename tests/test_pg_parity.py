"""Issue 14's "done when": the `rag` command on the PostgreSQL store answers the canned set exactly as
it does on the folder store, and a process that is already searching picks up another's rebuild.

Both stores index the real notes through the real CLI; the store is what is compared, so the fast
check embeds with the model-free ``hash`` embedder, and a second check reads the real (default
embedders) vectors of the shared test index out of a Postgres copy of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rag.settings import Settings
from rag.store import GenerationData
from rag.store.folder import FolderStore
from rag.store.pg.store import PgStore
from tests.conftest import CORPUS, QA, QUOKKA, REAL_NOTE, ROOT, RunRag, settings_for
from tests.pg_server import SUPERUSER_PASSWORD

pytestmark = pytest.mark.slow
QUESTIONS = sum(1 for line in QA.read_text(encoding="utf-8").splitlines() if line.strip())


def batch_search(run_rag: RunRag, settings: Settings, store: str) -> list[dict]:
    """`rag search --batch eval/qa.jsonl --json` on ``store`` (a DSN, or "" for the folder)."""
    done = run_rag("search", "--batch", str(QA), "--json", settings=settings, env={"RAG_STORE": store})
    assert done.returncode == 0, done.stderr
    assert SUPERUSER_PASSWORD not in done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def assert_same_entries(folder: list[dict], postgres: list[dict]) -> None:
    """Every question: the same entries (file and span) in the same order, with the same scores."""
    assert len(folder) == len(postgres) == QUESTIONS
    answered = 0
    for mine, theirs in zip(folder, postgres, strict=True):
        assert mine["id"] == theirs["id"] and mine["question"] == theirs["question"]
        spans = [(h["file"], h["line_start"], h["line_end"]) for h in mine["hits"]]
        assert spans == [(h["file"], h["line_start"], h["line_end"]) for h in theirs["hits"]], mine["id"]
        np.testing.assert_allclose([h["score"] for h in mine["hits"]], [h["score"] for h in theirs["hits"]],
                                   rtol=1e-6)
        answered += bool(spans)
    assert answered == QUESTIONS  # every question got entries: nothing compared empty to empty


def test_rag_index_and_batch_search_on_postgres_match_the_folder_store(tmp_path: Path, pg_dsn: str,
                                                                       run_rag: RunRag) -> None:
    settings = settings_for(CORPUS, tmp_path / "index")  # hash embedder: the store is what is compared
    built = run_rag("index", settings=settings, env={"RAG_STORE": pg_dsn})
    assert built.returncode == 0, built.stderr
    assert not (tmp_path / "index").exists()  # the index went to the database, not to a folder
    assert SUPERUSER_PASSWORD not in built.stdout + built.stderr
    assert PgStore(pg_dsn).manifest().counts.notes == len(list(CORPUS.iterdir()))
    postgres = batch_search(run_rag, settings, pg_dsn)
    built = run_rag("index", settings=settings, env={"RAG_STORE": ""})
    assert built.returncode == 0, built.stderr
    assert_same_entries(batch_search(run_rag, settings, ""), postgres)


def test_postgres_serves_the_real_embedders_vectors_with_the_same_rankings(real_settings: Settings, pg_dsn: str,
                                                                            run_rag: RunRag) -> None:
    """The shared real-corpus index (default embedders) copied into Postgres as one generation:
    the dense retrievers' exact search over the same vectors ranks as the folder store's does."""
    previous = FolderStore(real_settings.index.path).previous()
    assert previous is not None and len(previous.vectors) == len(real_settings.index.embedders) >= 1
    store = PgStore(pg_dsn)
    store.commit(GenerationData(previous.manifest, previous.entries, previous.chunks, previous.terms,
                                previous.vectors))
    store.close()
    assert_same_entries(batch_search(run_rag, real_settings, ""), batch_search(run_rag, real_settings, pg_dsn))


SEARCHER = """
    import json, os, sys
    from rag.contract import SearchRequest
    from rag.service import Notes
    from rag.settings import load_settings
    notes = Notes(load_settings(env=os.environ))
    for question in sys.stdin:
        hits = notes.search(SearchRequest(question=question.strip(), k=3)).hits
        print(json.dumps([h.entry.file for h in hits]), flush=True)
"""


def test_a_running_searcher_sees_another_process_rebuild_on_its_next_question(
        make_corpus: Callable[..., Settings], pg_dsn: str, run_rag: RunRag) -> None:
    settings = make_corpus({REAL_NOTE: (CORPUS / REAL_NOTE).read_bytes()})
    env = {"RAG_STORE": pg_dsn}
    assert run_rag("index", settings=settings, env=env).returncode == 0
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_STORE": pg_dsn, "RAG_CORPUS": str(settings.index.corpus),
                 "RAG_EMBEDDERS": "hash"}
    searcher = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SEARCHER)], cwd=ROOT, env=child_env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def ask(question: str) -> list[str]:
            assert searcher.stdin is not None and searcher.stdout is not None
            searcher.stdin.write(question + "\n")
            searcher.stdin.flush()
            return json.loads(searcher.stdout.readline())

        question = "Quokka-Attention 袋鼠跳跃 稀疏注意力"
        assert "quokka.md" not in ask(question)  # loaded, before the note exists
        (settings.index.corpus / "quokka.md").write_text(QUOKKA, encoding="utf-8")
        rebuilt = run_rag("index", settings=settings, env=env)  # another process
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert ask(question)[0] == "quokka.md"  # the running searcher's next question
        (settings.index.corpus / "quokka.md").unlink()
        assert run_rag("index", settings=settings, env=env).returncode == 0
        assert "quokka.md" not in ask(question)  # and a deletion, too
    finally:
        searcher.stdin.close()  # type: ignore[union-attr]
        searcher.wait(timeout=30)
    assert searcher.returncode == 0, searcher.stderr.read()  # type: ignore[union-attr]
