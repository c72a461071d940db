"""Proxy vectors: stand-in embedders for a synthetic corpus too large to embed on two cores.

Embedding 100k chunks with e5 would take hours here, so at scale the real builder runs with a
:class:`ProxyEmbedder` in place of each real one. A chunk's proxy vector is the normalized mean
of the real vectors of the chunks its entry's sentences come from, plus a little noise: it stays
in the real embedding space, with the real notes' topical clusters, instead of replicating a few
vectors (which would make nearest-neighbour search artificially easy or hard). The proxy keeps
the real embedder's id and tokenizer, so chunking and the manifest are what a real build makes.
"""

from __future__ import annotations

import bisect
import hashlib
import time
from collections.abc import Mapping, Sequence

import numpy as np

from rag.embed.embedding import Embedder
from rag.embed.models import Models
from rag.ingest.chunking import Chunk

from .synth import SynthEntry

NOISE = 0.1  # norm of the noise added to each proxy vector (relative to a unit vector)


class ProxyEmbedder:
    """Vectors for synthetic chunks from the real vectors of their sources (see the module doc)."""

    def __init__(self, real: Embedder, entries: Mapping[str, SynthEntry], source_chunks: Sequence[Chunk],
                 source_vectors: np.ndarray, seed: int, noise: float = NOISE) -> None:
        self.id = real.id
        self.dim = int(source_vectors.shape[1])
        self.count_tokens = real.count_tokens
        self.entries = entries  # by the title the segmenter gives each synthetic entry
        self.vectors = source_vectors
        self.seed = seed
        self.noise = noise
        self.seconds = 0.0  # spent making vectors: the build time minus this is "without embedding"
        self.unmatched = 0  # texts whose title is no synthetic entry's (they get a random vector)
        self._rows: dict[str, list[tuple[int, int]]] = {}
        for row, c in enumerate(source_chunks):
            self._rows.setdefault(c.file, []).append((c.line_start, row))
        for rows in self._rows.values():
            rows.sort()

    def _row(self, file: str, line: int) -> int:
        """The real chunk of ``file`` that starts last at or before ``line``."""
        rows = self._rows[file]
        return rows[max(0, bisect.bisect_right(rows, (line, len(self.vectors))) - 1)][1]

    def _vector(self, text: str) -> np.ndarray:
        digest = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
        rng = np.random.default_rng([self.seed, digest])  # the same text always gets the same vector
        entry = self.entries.get(text.split("\n", 1)[0])
        if entry is None:
            self.unmatched += 1
            base = rng.normal(size=self.dim)
        else:
            base = self.vectors[[self._row(s.file, s.line) for s in entry.sources]].mean(axis=0)
        base = base / np.linalg.norm(base)
        base = base + rng.normal(0, self.noise / np.sqrt(self.dim), self.dim)
        return (base / np.linalg.norm(base)).astype(np.float32)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        out = np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)
        self.seconds += time.perf_counter() - start
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_passages([text])[0]


class ProxyModels(Models):
    """A :class:`Models` that hands the builder proxies instead of loading real embedders."""

    def __init__(self, proxies: Mapping[str, ProxyEmbedder]) -> None:
        super().__init__()
        self.proxies = dict(proxies)

    def embedder(self, name: str) -> Embedder:
        return self.proxies[name]

    def loaded(self) -> tuple[str, ...]:
        return tuple(self.proxies)
