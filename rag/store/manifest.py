"""The typed manifest of an index generation: what was indexed, from what, with which settings.

``PIPELINE_VERSION`` is bumped by hand whenever segmentation, chunking or tokenizing changes what
an index contains; an index built under another version is rebuilt (unchanged chunks keep their
vectors, so that is cheap). A docstring fix no longer rebuilds every user's index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from rag.errors import RagError
from rag.text import lexical

PIPELINE_VERSION = 22
SCHEMA = 6


class ManifestError(RagError, ValueError):
    """A manifest that does not parse; callers turn it into "rebuild the index"."""


@dataclass(frozen=True)
class Skip:
    """A note that was not (re)indexed; ``kept``: its previously indexed version still serves."""

    path: str
    reason: str
    kept: bool = False
    sha256: str | None = None  # of the bytes judged, so an unchanged bad file is not retried

    @property
    def note(self) -> str:
        """The reason, and what became of the version indexed before."""
        return self.reason + ("; the previously indexed version is kept" if self.kept else "")

    def describe(self) -> str:
        """One line for people: the name escaped (a newline in it cannot fake a line), the reason."""
        from rag.ingest.corpus import display_name

        return f"{display_name(self.path)}: {self.note}"


@dataclass(frozen=True)
class NoteRecord:
    """One indexed note. ``size``, ``mtime_ns`` and ``ctime_ns`` are the file's as it was read (None
    in manifests written before they were recorded, or when the file was too fresh to trust): while
    they match, the next build does not read or hash it (see :mod:`rag.build.plan`)."""

    sha256: str
    entries: int
    chunks: int
    size: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None

    @property
    def stamp(self) -> tuple[int, int, int] | None:
        if self.size is None or self.mtime_ns is None or self.ctime_ns is None:
            return None
        return self.size, self.mtime_ns, self.ctime_ns


@dataclass(frozen=True)
class Counts:
    notes: int = 0
    entries: int = 0
    chunks: int = 0


@dataclass(frozen=True)
class Manifest:
    #: What makes two indexes incompatible (see :func:`index_fingerprint`).
    fingerprint: dict[str, Any]
    #: The model id of each embedder (pending ones too: their checkpointed vectors are kept by it).
    embedder_ids: dict[str, str]
    notes: dict[str, NoteRecord]
    skipped: tuple[Skip, ...] = ()
    counts: Counts = Counts()
    built_at: str = ""
    corpus: str = ""
    #: File (or table) → sha256, filled in by the store that wrote the generation.
    checksums: dict[str, str] = field(default_factory=dict)
    #: Embedders whose vectors this generation does not hold yet: a large build commits the text
    #: first (searchable by BM25 and exact terms) and again as each embedder finishes; a build
    #: killed before then leaves them pending, and the next one completes them.
    pending: tuple[str, ...] = ()

    @property
    def embedders(self) -> tuple[str, ...]:
        """Every embedder the index is built for, complete or pending."""
        return tuple(self.fingerprint.get("embedders", ()))

    @property
    def dense(self) -> tuple[str, ...]:
        """The embedders whose vectors this generation holds (its dense rankings)."""
        return tuple(e for e in self.embedders if e not in self.pending)

    def to_json(self) -> dict[str, Any]:
        """As plain JSON values. Through orjson, which writes dataclasses as they are:
        ``dataclasses.asdict`` deep-copies, a noticeable cost with 10,000 notes' records."""
        return orjson.loads(orjson.dumps(self))

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        try:
            return cls(
                fingerprint=dict(data["fingerprint"]),
                embedder_ids={str(k): str(v) for k, v in data["embedder_ids"].items()},
                notes={str(k): NoteRecord(**v) for k, v in data["notes"].items()},
                skipped=tuple(Skip(**s) for s in data["skipped"]),
                counts=Counts(**data["counts"]),
                built_at=str(data.get("built_at", "")),
                corpus=str(data.get("corpus", "")),
                checksums={str(k): str(v) for k, v in data.get("checksums", {}).items()},
                pending=tuple(str(e) for e in data.get("pending", ())),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ManifestError(f"manifest is malformed ({exc.__class__.__name__})") from None


def index_fingerprint(embedders: tuple[str, ...], chunk_tokens: int, chunk_overlap: int) -> dict[str, Any]:
    """Any difference here forces a full rebuild (cheap when only the text pipeline changed:
    unchanged chunks keep their cached vectors)."""
    return {"schema": SCHEMA, "pipeline": PIPELINE_VERSION, "lexical": lexical.TOKENIZER_ID,
            "embedders": list(embedders), "chunk_tokens": chunk_tokens, "chunk_overlap": chunk_overlap}
