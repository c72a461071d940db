"""Checkpointed embeddings in a folder, for one embedder id: (chunk hash, vector) rows in
append-only logs, compacted into ``.npz`` shards.

Embedding is the slow part of a build (hours for a big corpus), so vectors are saved while they
are computed: every :meth:`~FolderVectorCache.put` (one batch) is appended to this build's log
before it returns. A kill -9 cannot lose it (the kernel holds the bytes; the process owns none
of them), so a killed build's next run embeds only what was never computed; the log is fsynced
at least every second against a power cut. Each record carries a CRC, checked when its vectors
are read: a record that fails it is not used, and one torn by a power cut is the end of what its
log holds. The store prunes the folder to the live generation's
chunks after each complete commit (:meth:`FolderVectorCache.prune`), rewriting logs and shards
into one shard once enough of it is stale or split.
"""

from __future__ import annotations

import os
import struct
import time
import zipfile
import zlib
from collections.abc import Callable, Collection, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from rag.store.base import IndexUnavailable, VectorCache

#: The log is fsynced when this much time has passed since the last time.
FLUSH_SECONDS = 1.0
#: Compaction rewrites the cache once stale rows pass this share, or files this count.
MAX_STALE_SHARE = 0.25
MAX_SHARDS = 16
#: A log record: magic, rows, dimension, bytes of the newline-joined hashes; then the hashes,
#: the float32 rows and a CRC-32 of all of it.
_HEAD = struct.Struct("<4sIII")
_MAGIC = b"RVC1"
_CRC = struct.Struct("<I")
#: What reading a damaged or half-written ``.npz`` shard can raise.
_SHARD_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def _record(hashes: Sequence[str], vectors: np.ndarray) -> bytes:
    keys = "\n".join(hashes).encode("utf-8")
    body = _HEAD.pack(_MAGIC, len(hashes), vectors.shape[1], len(keys)) + keys + vectors.tobytes()
    return body + _CRC.pack(zlib.crc32(body))


@dataclass(frozen=True)
class _Block:
    """The rows of one log record or shard: their hashes, read at once, and their vectors, read
    and checked only when asked for (most lookups want a few rows of a large cache)."""

    hashes: list[str]
    rows: Callable[[], np.ndarray | None]  # None: the vectors are damaged


def _log_blocks(path: Path) -> list[_Block]:
    """A log's records, up to the first torn one (a power cut can tear only the last)."""
    blocks: list[_Block] = []
    with suppress(OSError), open(path, "rb") as f:
        size, at = os.fstat(f.fileno()).st_size, 0
        while at + _HEAD.size <= size:
            magic, n, dim, key_bytes = _HEAD.unpack(f.read(_HEAD.size))
            end = at + _HEAD.size + key_bytes + 4 * n * dim
            if magic != _MAGIC or end + _CRC.size > size:
                break
            try:
                hashes = f.read(key_bytes).decode("utf-8").split("\n")
            except UnicodeDecodeError:
                break
            if len(hashes) != n:
                break
            blocks.append(_Block(hashes, partial(_log_rows, path, at, end, n, dim)))
            at = end + _CRC.size
            f.seek(at)
    return blocks


def _log_rows(path: Path, at: int, end: int, n: int, dim: int) -> np.ndarray | None:
    """One record's vectors; None unless its CRC holds."""
    try:
        with open(path, "rb") as f:
            f.seek(at)
            record = f.read(end - at + _CRC.size)
    except OSError:
        return None
    if len(record) != end - at + _CRC.size or \
            _CRC.unpack_from(record, end - at)[0] != zlib.crc32(memoryview(record)[:end - at]):
        return None
    return np.frombuffer(record, np.float32, n * dim, end - at - 4 * n * dim).reshape(n, dim)


def _shard_block(path: Path) -> _Block | None:
    """A shard's rows; a shard whose hashes cannot be read is deleted (it only held a copy of work)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            hashes = [str(h) for h in data["hashes"]]
    except _SHARD_ERRORS:
        with suppress(OSError):
            path.unlink(missing_ok=True)
        return None

    def rows() -> np.ndarray | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                vectors = np.asarray(data["vectors"], np.float32)
        except _SHARD_ERRORS:
            return None
        return vectors if vectors.ndim == 2 and len(vectors) == len(hashes) else None

    return _Block(hashes, rows)


class FolderVectorCache(VectorCache):
    def __init__(self, root: Path) -> None:
        self.root = root
        self._log = root / f"log-{time.time_ns()}-{os.getpid()}.bin"  # this object's own
        self._last_sync = time.monotonic()
        self._unsynced = False

    def get(self, hashes: Collection[str]) -> dict[str, np.ndarray]:
        wanted = set(hashes)
        found: dict[str, np.ndarray] = {}
        for block in self._blocks(self._paths()):
            if not wanted.intersection(block.hashes) or (rows := block.rows()) is None:
                continue
            for h, v in zip(block.hashes, rows, strict=True):
                if h in wanted and h not in found:
                    found[h] = v
        return found

    def missing(self, hashes: Collection[str]) -> set[str]:
        held = {h for block in self._blocks(self._paths()) for h in block.hashes}
        return set(hashes) - held

    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Append the rows to the log now (one write); fsync it once a second has passed."""
        if not len(hashes):
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self._log, "ab") as f:
                f.write(_record(hashes, np.ascontiguousarray(vectors, dtype=np.float32)))
        except OSError as exc:
            raise IndexUnavailable(f"cannot save embeddings in {self.root}: {exc.strerror or exc}") from None
        self._unsynced = True
        if time.monotonic() - self._last_sync >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Make the log durable against a power cut (a kill cannot lose what :meth:`put` wrote)."""
        if self._unsynced:
            with suppress(FileNotFoundError), open(self._log, "rb") as f:
                os.fsync(f.fileno())
            self._unsynced = False
        self._last_sync = time.monotonic()

    def prune(self, live: Collection[str]) -> None:
        """Keep only rows of ``live`` chunk hashes, rewriting the files into one shard once enough
        is stale or split (rewriting a big cache after every small build would cost more than the
        space it frees). A build caches every row it reuses or computes, so the rows beyond the
        live ones are the stale ones: they are counted from the hashes, and the vectors are read
        only to be rewritten (a one-note update of a large index reads none)."""
        self.flush()
        paths = self._paths()
        blocks = self._blocks(paths)
        live = set(live)
        rows = sum(len(b.hashes) for b in blocks)
        if rows - len(live) <= MAX_STALE_SHARE * rows and len(paths) <= MAX_SHARDS:
            return
        keep: dict[str, np.ndarray] = {}
        for block in blocks:
            if (vectors := block.rows()) is None:
                continue
            for h, v in zip(block.hashes, vectors, strict=True):
                if h in live and h not in keep:
                    keep[h] = v
        if keep:
            self._write(f"shard-{time.time_ns()}-{os.getpid()}.npz", list(keep), np.stack(list(keep.values())))
        for path in paths:
            path.unlink(missing_ok=True)

    def _paths(self) -> list[Path]:
        try:
            return sorted([*self.root.glob("shard-*.npz"), *self.root.glob("log-*.bin")])
        except OSError:
            return []

    @staticmethod
    def _blocks(paths: list[Path]) -> list[_Block]:
        """Every readable shard and log record of ``paths``, in their order."""
        blocks: list[_Block] = []
        for path in paths:
            if path.suffix == ".bin":
                blocks += _log_blocks(path)
            elif (block := _shard_block(path)) is not None:
                blocks.append(block)
        return blocks

    def _write(self, name: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        tmp = self.root / f".tmp-{name}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.savez(f, hashes=np.asarray(hashes, dtype=str), vectors=vectors.astype(np.float32))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.root / name)
        except OSError as exc:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise IndexUnavailable(f"cannot save embeddings in {self.root}: {exc.strerror or exc}") from None
