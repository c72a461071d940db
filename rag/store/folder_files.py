"""The files of one folder-store generation: their names, writing them, and reading the term
counts back (the one file format read here, beside its writer: only a builder reads it).

A staged build commits the same text several times, each time with one more embedder's vectors;
given the previous of those commits as its *base*, a generation hard-links the files it would
write byte for byte (entries, chunks, terms, BM25, the vectors it already had), so a
later commit writes only the new embedder's vectors. A generation is never changed once written,
so a link shares nothing that could change under it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import orjson

from rag.store.base import GenerationData

from . import bm25
from .dense import HnswDense
from .manifest import Manifest
from .terms import Terms

MANIFEST, ENTRIES, CHUNKS, VOCAB = "manifest.json", "entries.jsonl", "chunks.jsonl", "vocab.json"
#: The chunks' term counts (:class:`Terms`): only a builder reads them.
TERMS = ("terms-indptr.npy", "terms-ids.npy", "terms-counts.npy")


def file_slug(name: str) -> str:
    """A file-name-safe form of an embedder name or id; distinct names stay distinct."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60]
    return safe if safe == name else f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def exact_file(embedder: str) -> str:
    return f"vectors-{file_slug(embedder)}.npy"


def hnsw_file(embedder: str) -> str:
    return f"dense-{file_slug(embedder)}.faiss"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_jsonl(path: Path, rows: list) -> None:
    """One JSON object a line, UTF-8. orjson writes dataclasses as they are: ``dataclasses.asdict``
    and ``json.dumps`` were the largest cost of a one-note update of a 10,000-note vault."""
    with open(path, "wb") as f:
        for row in rows:
            f.write(orjson.dumps(row) + b"\n")


def _link_base(root: Path, data: GenerationData, base: tuple[Path, Manifest]) -> dict[str, str]:
    """Links to the files of the base generation this one shares; their checksums."""
    folder, manifest = base
    same = [e for e in manifest.dense
            if e in data.vectors and manifest.embedder_ids.get(e) == data.manifest.embedder_ids.get(e)]
    shared = {ENTRIES, CHUNKS, VOCAB, *TERMS, *bm25.FILES, *map(exact_file, same), *map(hnsw_file, same)}
    linked = {}
    for rel, digest in manifest.checksums.items():
        if rel in shared:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(folder / rel, root / rel)
            except OSError:  # a file system without hard links: a copy costs time, not correctness
                shutil.copyfile(folder / rel, root / rel)
            linked[rel] = digest
    return linked


def _write_text(root: Path, data: GenerationData) -> None:
    _write_jsonl(root / ENTRIES, data.entries)
    _write_jsonl(root / CHUNKS, data.chunks)
    terms = data.terms
    (root / VOCAB).write_bytes(orjson.dumps(terms.vocab))
    for name, array in zip(TERMS, (terms.indptr, terms.ids, terms.counts), strict=True):
        np.save(root / name, array)
    if data.chunks:
        bm25.Bm25.of(terms).save(root)


def read_terms(root: Path) -> Terms:
    """The term counts a generation under ``root`` saved."""
    indptr, ids, counts = (np.load(root / name, allow_pickle=False) for name in TERMS)
    vocab = tuple(orjson.loads((root / VOCAB).read_bytes()))
    if indptr.ndim != 1 or len(ids) != len(counts) or int(indptr[-1]) != len(ids) \
            or (len(ids) and int(ids.max()) >= len(vocab)):
        raise ValueError("term counts do not fit together")
    return Terms(vocab, indptr, ids, counts)


def write_generation(root: Path, data: GenerationData, base: tuple[Path, Manifest] | None,
                     hnsw_threshold: int, ef_search: int) -> dict[str, str]:
    """Every file of ``data`` under ``root`` (linked from ``base``, a generation's folder and
    manifest, where shared); each file's sha256 by its path under ``root``."""
    linked = _link_base(root, data, base) if base is not None else {}
    if ENTRIES not in linked:
        _write_text(root, data)
    for embedder, vectors in data.vectors.items():
        if {exact_file(embedder), hnsw_file(embedder)} & linked.keys():
            continue
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(matrix) >= hnsw_threshold:
            import faiss

            faiss.write_index(HnswDense.build(matrix, ef_search).index, str(root / hnsw_file(embedder)))
        else:
            np.save(root / exact_file(embedder), matrix)
    return {rel: linked.get(rel) or sha256_file(root / rel)
            for rel in sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())}
