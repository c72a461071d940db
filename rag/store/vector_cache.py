"""Checkpointed embeddings in a folder, for one embedder id: (chunk hash, vector) rows in
append-only logs, compacted into ``.npz`` shards.

Embedding is the slow part of a build (hours for a big corpus), so vectors are saved while they
are computed: every :meth:`~FolderVectorCache.put` (one batch) is appended to this build's log
before it returns. A kill -9 cannot lose it (the kernel holds the bytes; the process owns none
of them), so a killed build's next run embeds only what was never computed; the log is fsynced
at least every second against a power cut. Each record carries a CRC: a record torn by a power
cut is the end of what its log holds. The store prunes the folder to the live generation's
chunks after each complete commit (:meth:`FolderVectorCache.prune`), rewriting logs and shards
into one shard once enough of it is stale or split.
"""

from __future__ import annotations

import os
import struct
import time
import zipfile
import zlib
from collections.abc import Collection, Iterator, Sequence
from contextlib import suppress
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


def _record(hashes: Sequence[str], vectors: np.ndarray) -> bytes:
    keys = "\n".join(hashes).encode("utf-8")
    body = _HEAD.pack(_MAGIC, len(hashes), vectors.shape[1], len(keys)) + keys + vectors.tobytes()
    return body + _CRC.pack(zlib.crc32(body))


def _records(data: bytes) -> Iterator[tuple[list[str], np.ndarray]]:
    """The whole records of a log, up to the first torn or damaged one."""
    view = memoryview(data)  # the CRC reads each record in place: a slice of bytes would copy it
    at = 0
    while at + _HEAD.size <= len(data):
        magic, rows, dim, key_bytes = _HEAD.unpack_from(data, at)
        end = at + _HEAD.size + key_bytes + 4 * rows * dim
        if magic != _MAGIC or end + _CRC.size > len(data) or \
                _CRC.unpack_from(data, end)[0] != zlib.crc32(view[at:end]):
            return
        hashes = data[at + _HEAD.size:at + _HEAD.size + key_bytes].decode("utf-8").split("\n")
        vectors = np.frombuffer(data, np.float32, rows * dim, at + _HEAD.size + key_bytes).reshape(rows, dim)
        if len(hashes) != rows:
            return
        yield hashes, vectors
        at = end + _CRC.size


def _rows(path: Path) -> int:
    """How many rows a shard or log holds, read from its headers alone (no vectors, no CRC): an
    estimate for deciding whether to compact, which reads and checks everything."""
    rows = 0
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return len(data["hashes"])
        with open(path, "rb") as f:
            while len(head := f.read(_HEAD.size)) == _HEAD.size:
                magic, n, dim, key_bytes = _HEAD.unpack(head)
                if magic != _MAGIC:
                    break
                rows += n
                f.seek(key_bytes + 4 * n * dim + _CRC.size, os.SEEK_CUR)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass
    return rows


class FolderVectorCache(VectorCache):
    def __init__(self, root: Path) -> None:
        self.root = root
        self._log = root / f"log-{time.time_ns()}-{os.getpid()}.bin"  # this object's own
        self._last_sync = time.monotonic()
        self._unsynced = False

    def get(self, hashes: Collection[str]) -> dict[str, np.ndarray]:
        wanted = set(hashes)
        found: dict[str, np.ndarray] = {}
        for file_hashes, vectors in self._files():
            for i, h in enumerate(file_hashes):
                if h in wanted and h not in found:
                    found[h] = vectors[i]
        return found

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
        live ones are the stale ones: they are counted from the files' headers, and the vectors
        are read only to be rewritten (a one-note update of a large index reads none)."""
        self.flush()
        paths = self._paths()
        live = set(live)
        rows = sum(map(_rows, paths))
        if rows - len(live) <= MAX_STALE_SHARE * rows and len(paths) <= MAX_SHARDS:
            return
        keep: dict[str, np.ndarray] = {}
        for file_hashes, vectors in self._files():
            for h, v in zip(file_hashes, vectors, strict=True):
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

    def _files(self) -> list[tuple[list[str], np.ndarray]]:
        """Every readable shard and log record; a damaged shard is deleted (it only held a copy of work)."""
        out = []
        for path in self._paths():
            if path.suffix == ".bin":
                with suppress(OSError):
                    out += list(_records(path.read_bytes()))
                continue
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
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.root / name)
        except OSError as exc:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise IndexUnavailable(f"cannot save embeddings in {self.root}: {exc.strerror or exc}") from None
