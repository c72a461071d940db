"""Checkpointed embeddings in a folder: ``.npz`` shards of (chunk hash, vector) for one embedder id.

Embedding is the slow part of a build (hours for a big corpus), so vectors are saved while they
are computed: a shard at least every second. A shard is written under a temporary name and
renamed, so a killed build leaves only whole shards; the zip CRCs inside an ``.npz`` catch one torn
by a power cut, which is then ignored and deleted. The store prunes the folder to the live
generation's chunks after each commit (:meth:`FolderVectorCache.prune`).
"""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Collection, Sequence
from contextlib import suppress
from pathlib import Path

import numpy as np

from rag.store.base import IndexUnavailable, VectorCache

#: A shard is written when this much time has passed since the last one, or this many rows wait.
FLUSH_SECONDS = 1.0
FLUSH_ROWS = 1024
#: Compaction rewrites the cache once stale rows pass this share, or shards this count.
MAX_STALE_SHARE = 0.25
MAX_SHARDS = 16


class FolderVectorCache(VectorCache):
    def __init__(self, root: Path) -> None:
        self.root = root
        self._hashes: list[str] = []
        self._rows: list[np.ndarray] = []
        self._last_flush = time.monotonic()

    def get(self, hashes: Collection[str]) -> dict[str, np.ndarray]:
        wanted = set(hashes)
        found: dict[str, np.ndarray] = {}
        for shard_hashes, vectors in self._shards():
            for i, h in enumerate(shard_hashes):
                if h in wanted and h not in found:
                    found[h] = vectors[i]
        for h, row in zip(self._hashes, self._rows, strict=True):  # put but not yet flushed
            if h in wanted:
                found.setdefault(h, row)
        return found

    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        self._hashes.extend(hashes)
        self._rows.extend(np.asarray(vectors, dtype=np.float32))
        if len(self._hashes) >= FLUSH_ROWS or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._hashes:
            self._write(f"shard-{time.time_ns()}-{os.getpid()}.npz", self._hashes, np.stack(self._rows))
            self._hashes, self._rows = [], []
        self._last_flush = time.monotonic()

    def prune(self, live: Collection[str]) -> None:
        """Keep only rows of ``live`` chunk hashes, rewriting the shards once enough is stale
        (rewriting a big cache after every small build would cost more than the space it frees)."""
        self.flush()
        paths = self._paths()
        rows = stale = 0
        keep: dict[str, np.ndarray] = {}
        for shard_hashes, vectors in self._shards():
            rows += len(shard_hashes)
            for h, v in zip(shard_hashes, vectors, strict=True):
                if h in live and h not in keep:
                    keep[h] = v
                else:
                    stale += 1
        if stale <= MAX_STALE_SHARE * rows and len(paths) <= MAX_SHARDS:
            return
        if keep:
            self._write(f"shard-{time.time_ns()}-{os.getpid()}.npz", list(keep), np.stack(list(keep.values())))
        for path in paths:
            path.unlink(missing_ok=True)

    def _paths(self) -> list[Path]:
        try:
            return sorted(self.root.glob("shard-*.npz"))
        except OSError:
            return []

    def _shards(self) -> list[tuple[list[str], np.ndarray]]:
        """Every readable shard; a damaged one is deleted (it only held a copy of work)."""
        out = []
        for path in self._paths():
            try:
                with np.load(path, allow_pickle=False) as data:
                    hashes, vectors = [str(h) for h in data["hashes"]], np.asarray(data["vectors"], np.float32)
                if vectors.ndim != 2 or len(vectors) != len(hashes):
                    raise ValueError("shard arrays do not match")
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                with suppress(OSError):
                    path.unlink(missing_ok=True)
                continue
            out.append((hashes, vectors))
        return out

    def _write(self, name: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        tmp = self.root / f".tmp-{name}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.savez(f, hashes=np.asarray(hashes, dtype=str), vectors=vectors.astype(np.float32))
            os.replace(tmp, self.root / name)
        except OSError as exc:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise IndexUnavailable(f"cannot save embeddings in {self.root}: {exc.strerror or exc}") from None
