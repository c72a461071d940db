"""The index as generations in a folder (the embedded default store); layout in ``index/README.md``.

``CURRENT`` names the live generation ``gen-*``. A commit writes a complete new generation under
``.tmp-gen-*``, fsyncs it, renames it into place and swaps ``CURRENT`` with an atomic rename, so a
crash at any moment leaves the previous generation loadable and readers never see half an index.
The generation just replaced stays until the next commit, for readers still loading it.

Vectors live once per embedder: below ``hnsw_threshold`` chunks as a ``.npy`` matrix that readers
memory-map (exact search), from it on only in a FAISS HNSW file. The chunks' term counts are
stored apart (``terms-*.npy``): only the builder reads them; readers get BM25 and the
:class:`Lexicon` from the BM25 postings.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson

from rag.ingest.chunking import Chunk
from rag.ingest.notes import Entry
from rag.store.base import (
    GenerationData,
    IndexDamaged,
    IndexStore,
    IndexUnavailable,
    Lexicon,
    LoadedIndex,
    PreviousGeneration,
)

from . import bm25
from .dense import DenseIndex, ExactDense, HnswDense
from .folder_files import (
    CHUNKS,
    ENTRIES,
    MANIFEST,
    TERMS,
    VOCAB,
    exact_file,
    file_slug,
    hnsw_file,
    read_terms,
    sha256_file,
    write_generation,
)
from .manifest import SCHEMA, Manifest, ManifestError
from .vector_cache import FolderVectorCache

CACHE_DIR = ".cache"
_GENERATION = re.compile(r"gen-\d{8}-\d{6}-\d+-\d+")
#: What a damaged file can make a parser raise (json, numpy, faiss, a dataclass).
_PARSE_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError, RuntimeError)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_jsonl(path: Path) -> list:
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def _problem(entries: list[Entry], chunks: list[Chunk], manifest: Manifest) -> str | None:
    """What makes a generation inconsistent with its manifest, or None."""
    counts = manifest.counts
    if (len(manifest.notes), len(entries), len(chunks)) != (counts.notes, counts.entries, counts.chunks):
        return (f"index holds {len(manifest.notes)} notes, {len(entries)} entries, {len(chunks)} chunks but its "
                f"manifest says {counts.notes}, {counts.entries}, {counts.chunks}")
    entry_ids = {e.id for e in entries}
    if any(c.entry_id not in entry_ids for c in chunks):
        return "index has chunks whose entry is missing"
    if any(e.file not in manifest.notes for e in entries):
        return "index has entries of notes its manifest does not list"
    if set(manifest.embedder_ids) != set(manifest.embedders) or not set(manifest.pending) <= set(manifest.embedders):
        return "index manifest has no embedder id for some embedder"
    return None


class FolderStore(IndexStore):
    def __init__(self, path: Path, hnsw_threshold: int = 50_000, ef_search: int = 256) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.hnsw_threshold = hnsw_threshold
        self.ef_search = ef_search
        #: (generation, file) pairs whose checksum passed; generations never change once written.
        self._verified: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ reading

    def current(self) -> str | None:
        try:
            raw = (self.path / "CURRENT").read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise IndexDamaged(f"{self.path}/CURRENT is a folder, not a file") from None
        except NotADirectoryError:
            raise IndexUnavailable(f"index path {self.path} is not a folder") from None
        except OSError as exc:
            raise IndexUnavailable(f"cannot read {self.path}/CURRENT: {exc.strerror or exc}") from None
        try:
            name = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise IndexDamaged(f"{self.path}/CURRENT is not text") from None
        if not _GENERATION.fullmatch(name):
            raise IndexDamaged(f"{self.path}/CURRENT does not name a generation")
        return name

    def _live(self) -> str:
        name = self.current()
        if name is None:
            raise IndexUnavailable(f"no index in {self.path}: run `rag index` first")
        return name

    def _manifest(self, name: str) -> Manifest:
        """The generation's manifest, parsed and checked for this layout (no checksums yet)."""
        root = self.path / name
        if not root.is_dir():
            raise IndexDamaged(f"generation {name} named by {self.path}/CURRENT is missing")
        try:
            manifest = Manifest.from_json(orjson.loads((root / MANIFEST).read_bytes()))
        except FileNotFoundError:
            raise IndexDamaged(f"generation {name} has no {MANIFEST}") from None
        except (OSError, ValueError, ManifestError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise IndexDamaged(f"{name}/{MANIFEST} is unreadable") from None
        if manifest.fingerprint.get("schema") != SCHEMA:
            raise IndexDamaged(f"index in {self.path} was written in another format "
                               f"(schema {manifest.fingerprint.get('schema')}, this version reads {SCHEMA})")
        needed = {ENTRIES, CHUNKS, VOCAB, *TERMS, *(bm25.FILES if manifest.counts.chunks else ())}
        for embedder in manifest.dense:
            if not {exact_file(embedder), hnsw_file(embedder)} & manifest.checksums.keys():
                raise IndexDamaged(f"index has no vectors for embedder {embedder}")
        for rel in manifest.checksums:
            parts = Path(rel).parts
            if Path(rel).is_absolute() or ".." in parts or not parts:
                raise IndexDamaged(f"{name}/{MANIFEST} lists a file outside its generation")
        if missing := sorted(needed - manifest.checksums.keys()):
            raise IndexDamaged(f"index manifest does not list {missing[0]}")
        return manifest

    def _verify(self, name: str, manifest: Manifest, files: list[str]) -> None:
        """One checksum pass over ``files`` per generation and store object."""
        for rel in files:
            if (name, rel) in self._verified:
                continue
            try:
                digest = sha256_file(self.path / name / rel)
            except FileNotFoundError:
                raise IndexDamaged(f"index file {rel} is missing") from None
            except OSError as exc:
                raise IndexUnavailable(f"cannot read index file {rel}: {exc.strerror or exc}") from None
            if digest != manifest.checksums[rel]:
                raise IndexDamaged(f"index file {rel} is corrupt (checksum mismatch)")
            self._verified.add((name, rel))

    def manifest(self) -> Manifest:
        """The live manifest, with every file of its generation verified."""
        name = self._live()
        manifest = self._manifest(name)
        self._verify(name, manifest, sorted(manifest.checksums))
        return manifest

    def check(self) -> list[str]:
        try:
            name = self._live()
            manifest = self._manifest(name)
        except IndexDamaged as exc:
            return [exc.problem]
        problems = []
        for rel in sorted(manifest.checksums):
            try:
                self._verify(name, manifest, [rel])
            except IndexDamaged as exc:
                problems.append(exc.problem)
        if not problems:
            try:
                self.load()
            except IndexDamaged as exc:
                problems.append(exc.problem)
        return problems

    def load(self) -> LoadedIndex:
        import faiss

        name = self._live()
        manifest = self._manifest(name)
        self._verify(name, manifest, sorted(rel for rel in manifest.checksums if rel not in TERMS))
        root = self.path / name
        try:
            entries = [Entry(**row) for row in _read_jsonl(root / ENTRIES)]
            chunks = [Chunk(**row) for row in _read_jsonl(root / CHUNKS)]
            vocab = tuple(orjson.loads((root / VOCAB).read_bytes()))
            index = bm25.Bm25.load(root, vocab, len(chunks)) if chunks else None
            lexicon = Lexicon.counted(vocab, index.doc_freq, len(chunks)) if index is not None else Lexicon({}, 0)
            dense: dict[str, DenseIndex] = {}
            for embedder in manifest.dense:
                if exact_file(embedder) in manifest.checksums:
                    matrix = np.load(root / exact_file(embedder), mmap_mode="r", allow_pickle=False)
                    if matrix.ndim != 2 or matrix.dtype != np.float32:
                        raise ValueError("vectors are not a float32 matrix")
                    dense[embedder] = ExactDense(matrix)
                else:
                    dense[embedder] = HnswDense(faiss.read_index(str(root / hnsw_file(embedder))), self.ef_search)
        except _PARSE_ERRORS as exc:
            raise IndexDamaged(f"index generation {name} is unreadable ({exc.__class__.__name__})") from None
        problem = _problem(entries, chunks, manifest)
        for embedder, vectors in dense.items():
            if problem is None and vectors.size != len(chunks):
                problem = f"index has {vectors.size} vectors for {embedder} but {len(chunks)} chunks"
        if problem is not None:
            raise IndexDamaged(problem)
        return LoadedIndex(name, manifest, entries, chunks, lexicon, index, dense)

    def previous(self) -> PreviousGeneration | None:
        """Everything of the live generation, terms and vectors included; None if it is unusable."""
        try:
            name = self._live()
            manifest = self.manifest()
            root = self.path / name
            entries = [Entry(**row) for row in _read_jsonl(root / ENTRIES)]
            chunks = [Chunk(**row) for row in _read_jsonl(root / CHUNKS)]
            terms = read_terms(root)
            vectors = {embedder: self._read_vectors(root, manifest, embedder) for embedder in manifest.dense}
        except (IndexUnavailable, *_PARSE_ERRORS):
            return None
        if _problem(entries, chunks, manifest) or len(terms) != len(chunks) \
                or any(len(v) != len(chunks) for v in vectors.values()):
            return None
        return PreviousGeneration(manifest, entries, chunks, terms, vectors)

    def _read_vectors(self, root: Path, manifest: Manifest, embedder: str) -> np.ndarray:
        if exact_file(embedder) in manifest.checksums:
            return np.load(root / exact_file(embedder), allow_pickle=False).astype(np.float32, copy=False)
        import faiss

        index = faiss.read_index(str(root / hnsw_file(embedder)))
        return index.reconstruct_n(0, index.ntotal)

    # ------------------------------------------------------------------ writing

    @contextmanager
    def lock(self, wait: bool = True) -> Iterator[None]:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / ".lock", os.O_RDONLY | os.O_CREAT, 0o644)  # flock needs no write access
        except OSError as exc:
            raise IndexUnavailable(f"cannot use the index folder {self.path}: {exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise IndexUnavailable(f"another `rag index` is building {self.path}; "
                                           "try again when it ends") from None
                print(f"waiting for another `rag index` building {self.path} …", file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def check_writable(self) -> None:
        probe = self.path / f".write-test-{os.getpid()}"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with open(probe, "wb") as f:
                f.write(b"ok")
                f.flush()
                os.fsync(f.fileno())
            probe.unlink()
        except OSError as exc:
            raise IndexUnavailable(f"cannot write the index folder {self.path}: {exc.strerror or exc}") from None

    def vector_cache(self, embedder_id: str) -> FolderVectorCache:
        return FolderVectorCache(self.path / CACHE_DIR / file_slug(embedder_id))

    def commit(self, data: GenerationData) -> str:
        try:
            live = self.current()
        except IndexUnavailable:  # a damaged pointer is replaced like any other
            live = None
        name = f"gen-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
        tmp = self.path / f".tmp-{name}"
        try:
            tmp.mkdir(parents=True)
            manifest = replace(data.manifest, checksums=self._write(tmp, data))
            (tmp / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
            for path in [*sorted(tmp.rglob("*")), tmp]:
                _fsync(path)
            os.rename(tmp, self.path / name)
            self._point_to(name)
        except OSError as exc:
            raise IndexUnavailable(f"could not write the index in {self.path} ({exc.strerror or exc}); "
                                   "the previous index is unchanged") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._verified |= {(name, rel) for rel in manifest.checksums}
        self._collect_garbage(keep={name, live})
        if not data.manifest.pending:  # housekeeping waits for the build's complete generation
            self._prune_caches(data)
        return name

    def _write(self, root: Path, data: GenerationData) -> dict[str, str]:
        """The generation's files under ``root``, linked from its base where they would be the same."""
        base = None
        if data.base is not None and _GENERATION.fullmatch(data.base):
            with suppress(IndexUnavailable):  # a base gone or damaged: everything is written
                base = (self.path / data.base, self._manifest(data.base))
        return write_generation(root, data, base, self.hnsw_threshold, self.ef_search)

    def _point_to(self, name: str) -> None:
        """The atomic switch: ``CURRENT`` names ``name``, durably."""
        pointer, current = self.path / "CURRENT.tmp", self.path / "CURRENT"
        if current.is_dir() and not current.is_symlink():  # a damaged pointer the rename cannot replace
            shutil.rmtree(current)
        with open(pointer, "w", encoding="utf-8") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer, current)
        _fsync(self.path)

    def _collect_garbage(self, keep: set[str | None]) -> None:
        """Drop old generations and leftovers of crashed builds; the one just replaced stays."""
        for path in [*self.path.glob("gen-*"), *self.path.glob(".tmp-gen-*"), *self.path.glob(".write-test-*")]:
            if path.name not in keep:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with suppress(OSError):
                        path.unlink()

    def _prune_caches(self, data: GenerationData) -> None:
        """Cached vectors of chunks no longer live go, and whole caches of embedders no longer used."""
        ids = {file_slug(i) for i in data.manifest.embedder_ids.values()}
        live = {c.hash for c in data.chunks}
        root = self.path / CACHE_DIR
        with suppress(OSError, IndexUnavailable):  # housekeeping: the commit already stands
            for folder in root.iterdir() if root.is_dir() else ():
                if folder.name not in ids:
                    shutil.rmtree(folder, ignore_errors=True)
            for embedder_id in data.manifest.embedder_ids.values():
                self.vector_cache(embedder_id).prune(live)
