"""Chunks → a persisted hybrid index (FAISS per dense embedder + bm25s), rebuilt incrementally.

Layout of ``index/``: ``CURRENT`` names the live generation directory ``gen-*``; a build writes a
complete new generation, fsyncs it and swaps ``CURRENT`` with an atomic rename, so a crash at
any moment leaves the previous index loadable and readers never see half an index (long-running
ones follow ``CURRENT`` through :class:`IndexHandle`). A lock file keeps two builders from racing.
The previous generation's vectors, keyed by embedder id and chunk hash, are the embedding cache:
only new or changed text is embedded, and a build with nothing to embed loads no model.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache, cached_property
from pathlib import Path

import numpy as np

from . import chunking, lexical, notes
from .chunking import Chunk, approx_tokens, chunk_entries
from .config import Config
from .corpus import NoteError, decode_note, file_hash, find_notes, read_bytes
from .embedding import get_embedder, slug
from .notes import Entry, split_entries

SCHEMA = 3
SEGMENTER = "notes/v1"
#: Above this many chunks the dense index is approximate (HNSW), below it exact.
HNSW_THRESHOLD = 50_000

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class IndexUnavailable(Exception):
    """The index is missing, corrupt or unusable; the message says what to do."""


@dataclass
class Skip:
    file: str
    reason: str
    sha256: str | None = None  # of the bytes judged, so an unchanged bad file is not retried


@dataclass
class BuildReport:
    notes: int = 0
    entries: int = 0
    chunks: int = 0
    embedded: int = 0  # chunk vectors computed in this build (per embedder, summed)
    reused: int = 0  # chunk vectors taken from the cache
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    full_rebuild_reason: str | None = None
    up_to_date: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        if self.up_to_date:
            return f"index is up to date ({self.notes} notes, {self.entries} entries, {self.chunks} chunks)"
        parts = [f"indexed {self.notes} notes: {self.entries} entries, {self.chunks} chunks",
                 f"embedded {self.embedded}, reused {self.reused}"]
        for label, files in (("added", self.added), ("changed", self.changed), ("removed", self.removed)):
            if files:
                parts.append(f"{label} {len(files)}")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)}")
        return "; ".join(parts) + f" in {self.seconds:.1f}s"


def settings_of(config: Config) -> dict:
    """What makes two indexes incompatible; any difference forces a full rebuild (cheap when only
    the text pipeline changed: unchanged chunks keep their cached vectors)."""
    return {"schema": SCHEMA, "segmenter": SEGMENTER, "lexical": lexical.TOKENIZER_ID,
            "pipeline": _pipeline_fingerprint(), "embedders": list(config.embedders),
            "chunk_tokens": config.chunk_tokens, "chunk_overlap": config.chunk_overlap}


@cache
def _pipeline_fingerprint() -> str:
    """A hash of the code that turns notes into entries, chunks and tokens, so an index built by
    an older splitting rule never passes for up to date (version ids alone are easy to forget)."""
    digest = hashlib.sha256()
    for module in (notes, chunking, lexical):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------- storage helpers

def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_tree(root: Path) -> None:
    for path in [*sorted(root.rglob("*")), root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def current_generation(index_dir: Path) -> Path | None:
    """The live generation directory, or None when nothing was built yet."""
    try:
        name = (index_dir / "CURRENT").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return index_dir / name if name else None


@contextmanager
def build_lock(index_dir: Path, wait: bool = True) -> Iterator[None]:
    """One builder at a time; a second one waits (saying so) or fails with a clear message."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise IndexUnavailable(f"another `rag index` is building {index_dir}; try again when it ends") from None
            print(f"waiting for another `rag index` building {index_dir} …", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def make_dense_index(vectors: np.ndarray):  # type: ignore[no-untyped-def]
    """Exact inner product on small corpora; HNSW (approximate, fast) past ``HNSW_THRESHOLD``."""
    import faiss

    dim = vectors.shape[1]
    if len(vectors) >= HNSW_THRESHOLD:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 256  # recall@10 vs exact ≥ 0.95 at 100k (bench.md)
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


# ---------------------------------------------------------------------------- the loaded index

@dataclass
class Index:
    """A loaded generation: entries, chunks, one dense index per embedder, and BM25."""

    root: Path
    manifest: dict
    entries: list[Entry]
    chunks: list[Chunk]
    tokens: list[list[str]]
    vectors: dict[str, np.ndarray]
    dense: dict[str, object]
    bm25: object

    @cached_property
    def entry_by_id(self) -> dict[str, Entry]:
        return {e.id: e for e in self.entries}

    @cached_property
    def doc_freq(self) -> dict[str, int]:
        """In how many chunks each token occurs: rarity weights for the answer layer."""
        df: dict[str, int] = {}
        for tokens in self.tokens:
            for t in set(tokens):
                df[t] = df.get(t, 0) + 1
        return df

    @property
    def generation(self) -> str:
        return self.root.name

    @classmethod
    def load(cls, index_dir: Path) -> Index:
        """Load the live generation, verifying every artefact's checksum against the manifest."""
        import bm25s
        import faiss

        root, manifest = read_manifest(index_dir)
        try:
            entries = [Entry(**row) for row in _read_jsonl(root / "entries.jsonl")]
            rows = _read_jsonl(root / "chunks.jsonl")
            tokens = [row.pop("tokens") for row in rows]
            chunks = [Chunk(**row) for row in rows]
            vectors, dense = {}, {}
            for spec in manifest["settings"]["embedders"]:
                vectors[spec] = np.load(root / f"vectors-{slug(spec)}.npy")
                dense[spec] = faiss.read_index(str(root / f"dense-{slug(spec)}.faiss"))
            bm25 = bm25s.BM25.load(str(root / "bm25"), show_progress=False) if chunks else None
        except Exception as exc:  # whatever a damaged file makes a parser raise, loading must not crash
            raise IndexUnavailable(f"index in {index_dir} is unreadable ({exc.__class__.__name__}): "
                                   "run `rag index` to rebuild") from None
        return cls(root, manifest, entries, chunks, tokens, vectors, dense, bm25)


def read_manifest(index_dir: Path) -> tuple[Path, dict]:
    """The live generation and its manifest, after checking every file against its checksum.

    Cheap next to a full load (no faiss, no BM25), which is what lets ``rag index`` say
    "up to date" quickly.
    """
    root = current_generation(index_dir)
    if root is None or not (root / "manifest.json").is_file():
        raise IndexUnavailable(f"no index in {index_dir}: run `rag index` first")
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        missing = [key for key in ("settings", "notes", "skipped", "counts", "checksums") if key not in manifest]
        if missing:
            raise KeyError(", ".join(missing))
        for name, digest in manifest["checksums"].items():
            if _sha256_file(root / name) != digest:
                raise IndexUnavailable(f"index file {name} is corrupt (checksum mismatch): "
                                       "run `rag index` to rebuild")
    except IndexUnavailable:
        raise
    except Exception as exc:  # a damaged manifest can fail in many ways; all mean "rebuild"
        raise IndexUnavailable(f"index in {index_dir} is unreadable ({exc.__class__.__name__}): "
                               "run `rag index` to rebuild") from None
    return root, manifest


class IndexHandle:
    """The live index of a folder for long-running readers (the app, the watcher).

    ``get()`` is cheap when nothing changed (one small read of ``CURRENT``) and reloads when a
    build has swapped in a new generation; if that one fails to load, the old one keeps serving.
    Safe to share between threads (the app's request handlers): one reload at a time.
    """

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self._index: Index | None = None
        self._failed: tuple[str, IndexUnavailable] | None = None  # a generation that did not load
        self._lock = threading.Lock()

    @property
    def generation(self) -> str | None:
        return self._index.generation if self._index is not None else None

    def get(self) -> Index:
        live = current_generation(self.index_dir)
        name = live.name if live is not None else None
        if name is not None and name != self.generation:
            with self._lock:
                if name != self.generation and (self._failed is None or self._failed[0] != name):
                    try:
                        self._index = Index.load(self.index_dir)
                        self._failed = None
                    except IndexUnavailable as exc:
                        self._failed = (name, exc)
        if self._index is None:
            raise self._failed[1] if self._failed else IndexUnavailable(
                f"no index in {self.index_dir}: run `rag index` first")
        return self._index


# ---------------------------------------------------------------------------- building

def _scan(config: Config, report: BuildReport, keep_if_indexed: set[str]) -> dict[str, tuple[str, bytes]]:
    """rel → (content hash, bytes) for every readable note; the others go to ``skipped``."""
    notes, passed_over = find_notes(config.corpus)
    report.skipped.extend(Skip(f, r) for f, r in passed_over)
    found: dict[str, tuple[str, bytes]] = {}
    for note in notes:
        try:
            data = read_bytes(note, config.max_note_bytes)
        except NoteError as exc:
            report.skipped.append(Skip(note.rel, str(exc)))
            if exc.keep_previous:
                keep_if_indexed.add(note.rel)
            continue
        found[note.rel] = (file_hash(data), data)
    return found


def _previous_manifest(config: Config, report: BuildReport) -> dict | None:
    """The live manifest if it is intact; a damaged index means a full rebuild, said once."""
    if current_generation(config.index) is None:
        return None
    try:
        return read_manifest(config.index)[1]
    except IndexUnavailable as exc:
        report.full_rebuild_reason = f"previous index unusable ({str(exc).split(':')[0]})"
        return None


def build_index(config: Config, progress: Progress | None = None, wait: bool = True) -> BuildReport:
    """Build or update the index of ``config.corpus`` in ``config.index``.

    Only notes whose bytes changed are decoded, chunked and embedded; an unchanged bad file is
    skipped again with its recorded reason. Models load only when there is text to chunk or embed.
    """
    started = time.perf_counter()
    if not config.corpus.is_dir():
        raise IndexUnavailable(f"corpus folder {config.corpus} does not exist")
    with build_lock(config.index, wait=wait):
        report = BuildReport()
        keep_if_indexed: set[str] = set()
        found = _scan(config, report, keep_if_indexed)
        settings = settings_of(config)
        manifest = _previous_manifest(config, report)
        prev_notes: dict[str, dict] = {}
        prev_skips: dict[str, dict] = {}
        if manifest is not None and manifest["settings"] != settings:
            changed_keys = sorted(k for k in settings if manifest["settings"].get(k) != settings[k])
            report.full_rebuild_reason = f"index settings changed ({', '.join(changed_keys)})"
        elif manifest is not None:
            prev_notes = manifest["notes"]
            prev_skips = {s["file"]: s for s in manifest.get("skipped", []) if s.get("sha256")}
        if report.full_rebuild_reason:
            print(f"{report.full_rebuild_reason}: rebuilding the whole index", file=sys.stderr)

        unchanged = {f for f, (h, _) in found.items() if prev_notes.get(f, {}).get("sha256") == h}
        texts: dict[str, str] = {}
        for f in sorted(set(found) - unchanged):
            sha, data = found[f]
            if (old := prev_skips.get(f)) is not None and old["sha256"] == sha:
                report.skipped.append(Skip(f, old["reason"], sha))  # same bytes, same verdict
                keep_if_indexed.add(f)
                continue
            try:
                texts[f] = decode_note(data)
            except NoteError as exc:
                report.skipped.append(Skip(f, str(exc), sha))
                if exc.keep_previous:
                    keep_if_indexed.add(f)
        # bad now but indexed before: keep what we had rather than lose it
        keep = keep_if_indexed & set(prev_notes)
        for s in report.skipped:
            if s.file in keep and not s.reason.endswith(KEPT):
                s.reason += KEPT
        reused_files = unchanged | keep
        report.added = sorted(f for f in texts if f not in prev_notes)
        report.changed = sorted(f for f in texts if f in prev_notes)
        report.removed = sorted(f for f in prev_notes if f not in reused_files and f not in texts)
        same_skips = manifest is not None and sorted((s["file"], s["reason"]) for s in manifest["skipped"]) \
            == sorted((s.file, s.reason) for s in report.skipped)
        if manifest is not None and not (report.full_rebuild_reason or texts or report.removed) and same_skips:
            report.up_to_date = True
            counts = manifest["counts"]
            report.notes, report.entries, report.chunks = counts["notes"], counts["entries"], counts["chunks"]
            report.seconds = time.perf_counter() - started
            return report

        prev = _previous(config.index)  # also after a settings change: its vectors may still fit
        count_tokens = _token_counter(config.embedders)
        entries: list[Entry] = []
        chunks: list[Chunk] = []
        tokens: list[list[str]] = []
        notes_meta: dict[str, dict] = {f: prev_notes[f] for f in reused_files}
        if prev is not None and reused_files:
            entries.extend(e for e in prev.entries if e.file in reused_files)
            for c, t in zip(prev.chunks, prev.tokens, strict=True):
                if c.file in reused_files:
                    chunks.append(c)
                    tokens.append(t)
        for f, text in sorted(texts.items()):
            note_entries = split_entries(text, f)
            note_chunks = chunk_entries(note_entries, config.chunk_tokens, config.chunk_overlap,
                                        count_tokens)
            entries.extend(note_entries)
            chunks.extend(note_chunks)
            tokens.extend(lexical.tokenize(c.embed_text) for c in note_chunks)
            notes_meta[f] = {"sha256": found[f][0], "entries": len(note_entries), "chunks": len(note_chunks)}
        order = sorted(range(len(chunks)), key=lambda i: (chunks[i].file, chunks[i].line_start, i))
        chunks = [chunks[i] for i in order]
        tokens = [tokens[i] for i in order]
        entries.sort(key=lambda e: (e.file, e.line_start))

        vectors: dict[str, np.ndarray] = {}
        embedder_ids: dict[str, str] = {}
        for spec in config.embedders:
            vectors[spec], embedder_ids[spec] = _embed(spec, chunks, prev, report, progress)

        report.notes, report.entries, report.chunks = len(notes_meta), len(entries), len(chunks)
        write_generation(config, settings, embedder_ids, notes_meta, entries, chunks, tokens,
                          vectors, report)
        report.seconds = time.perf_counter() - started
        return report


KEPT = "; keeping the previously indexed version"


def _token_counter(specs: tuple[str, ...]) -> Callable[[str], int]:
    """Chunks are sized in the first embedder's tokens (an estimate when lexical only); the model
    loads on first use, so a build that only drops or reuses text loads none."""
    if not specs:
        return approx_tokens
    return lambda text: get_embedder(specs[0]).count_tokens(text)


def _embed(spec: str, chunks: list[Chunk], prev: Index | None, report: BuildReport,
           progress: Progress | None) -> tuple[np.ndarray, str]:
    """Vectors for ``chunks`` under one embedder: from the previous generation where the chunk
    hash and embedder id match, computed otherwise. Returns (vectors, embedder id)."""
    prev_id = prev.manifest.get("embedder_ids", {}).get(spec) if prev is not None else None
    if prev_id is None or spec not in prev.vectors:
        prev_id, cache = None, {}
    else:
        cache = {c.hash: v for c, v in zip(prev.chunks, prev.vectors[spec], strict=True)}
    todo = [i for i, c in enumerate(chunks) if c.hash not in cache]
    if not todo and prev_id is not None:  # nothing new: trust the recorded id, load no model
        embedder_id, dim = prev_id, prev.vectors[spec].shape[1]
    else:
        embedder = get_embedder(spec)
        embedder_id, dim = embedder.id, embedder.dim
        if embedder_id != prev_id:  # another model or version: old vectors are incomparable
            cache, todo = {}, list(range(len(chunks)))
    out = np.zeros((len(chunks), dim), np.float32)
    for i, c in enumerate(chunks):
        if c.hash in cache:
            out[i] = cache[c.hash]
    report.reused += len(chunks) - len(todo)
    step = 16
    for start in range(0, len(todo), step):
        batch = todo[start:start + step]
        out[batch] = embedder.embed_passages([chunks[i].embed_text for i in batch])
        if progress:
            progress(f"embedding ({spec})", min(start + step, len(todo)), len(todo))
    report.embedded += len(todo)
    return out, embedder_id


def _previous(index_dir: Path) -> Index | None:
    try:
        return Index.load(index_dir)
    except IndexUnavailable:
        return None


def write_generation(config: Config, settings: dict, embedder_ids: dict[str, str],
                      notes_meta: dict[str, dict], entries: list[Entry], chunks: list[Chunk],
                      tokens: list[list[str]], vectors: dict[str, np.ndarray],
                      report: BuildReport) -> None:
    import bm25s
    import faiss

    index_dir = config.index
    live = current_generation(index_dir)
    gen = index_dir / f"gen-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    tmp = index_dir / (".tmp-" + gen.name)
    tmp.mkdir(parents=True)
    try:
        _write_jsonl(tmp / "entries.jsonl", [asdict(e) for e in entries])
        _write_jsonl(tmp / "chunks.jsonl", [{**asdict(c), "tokens": t} for c, t in zip(chunks, tokens, strict=True)])
        for spec, vecs in vectors.items():
            np.save(tmp / f"vectors-{slug(spec)}.npy", vecs)
            faiss.write_index(make_dense_index(vecs), str(tmp / f"dense-{slug(spec)}.faiss"))
        if chunks:
            bm25 = bm25s.BM25()
            bm25.index(tokens, show_progress=False)
            bm25.save(str(tmp / "bm25"), show_progress=False)
        checksums = {p.relative_to(tmp).as_posix(): _sha256_file(p)
                     for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {
            "settings": settings,
            "embedder_ids": embedder_ids,
            "notes": notes_meta,
            "skipped": [asdict(s) for s in report.skipped],
            "counts": {"notes": len(notes_meta), "entries": len(entries), "chunks": len(chunks)},
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "corpus": str(config.corpus.resolve()),
            "checksums": checksums,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        _fsync_tree(tmp)
        os.rename(tmp, gen)
        pointer = index_dir / "CURRENT.tmp"
        with open(pointer, "w", encoding="utf-8") as f:
            f.write(gen.name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer, index_dir / "CURRENT")
        dir_fd = os.open(index_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _collect_garbage(index_dir, keep={gen.name} | ({live.name} if live is not None else set()))


def _collect_garbage(index_dir: Path, keep: set[str]) -> None:
    """Drop old generations and leftovers of crashed builds. The generation just replaced stays
    until the next build, for readers that are still loading it."""
    for p in [*index_dir.glob("gen-*"), *index_dir.glob(".tmp-gen-*")]:
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
