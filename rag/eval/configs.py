"""Retrieval configurations: named sets of retrievers that `rag eval` runs side by side.

A configuration is the retrievers it fuses; ``hybrid`` is every retriever of the index (what
`rag search` does). Any other name is read as retrievers joined by ``+`` (registry aliases
allowed: ``bm25+e5``). Which ones run follows the index: a configuration needing a retriever
the index lacks, or fusing the same retrievers as another, is skipped with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag.embed.models import EmbedderError, canonical
from rag.retrieve.retrievers import BM25

from .qa import EvalError

DEFAULT_CONFIG = "hybrid"

#: Named configurations → the retrievers they fuse; ``None`` is every source of the index.
CONFIGS: dict[str, tuple[str, ...] | None] = {
    "bm25": (BM25,),
    "dense-e5": ("e5-onnx",),
    "dense-use": ("use-m3",),
    "minilm": ("minilm",),
    "bm25+e5": (BM25, "e5-onnx"),
    "bm25+use": (BM25, "use-m3"),
    "bm25+minilm": (BM25, "minilm"),
    DEFAULT_CONFIG: None,
}


def _source(name: str) -> str:
    """A retriever name as the index calls it: embedder aliases to their registry name."""
    if name == BM25:
        return name
    try:
        return canonical(name)
    except EmbedderError:
        return name  # not an embedder this machine knows; reported as missing from the index


def parse_config(name: str) -> tuple[str, ...] | None:
    """A configuration name → its sources (None: all); ``bm25+e5`` style names are read as lists."""
    if name in CONFIGS:
        return CONFIGS[name]
    parts = tuple(p.strip() for p in name.split("+"))
    if not all(parts):
        raise EvalError(f"unknown configuration {name!r}; use one of {', '.join(CONFIGS)} "
                        "or retrievers joined by '+' (bm25+e5-small-q4)")
    return tuple(_source(p) for p in parts)


def resolve_configs(requested: Sequence[str] | None, available: Sequence[str],
                    dense: Sequence[str] = ()) -> tuple[dict[str, tuple[str, ...]], list[tuple[str, str]]]:
    """(name → sources to run, [(name, why skipped)]) for the requested configurations or all.

    With none requested, every named configuration is tried, plus one per ``dense`` retriever of
    the index that no named configuration covers (a user's ``BAAI/bge-m3``).
    """
    names = list(dict.fromkeys(requested)) if requested else list(CONFIGS)
    if not requested:
        named = {s for sources in CONFIGS.values() if sources for s in sources}
        names[-1:-1] = [s for s in dense if s not in named]
    everything = tuple(available)
    resolved = {name: parse_config(name) or everything for name in names}
    chosen: dict[str, tuple[str, ...]] = {}
    skipped: list[tuple[str, str]] = []
    for name, sources in sorted(resolved.items(), key=lambda kv: kv[0] != DEFAULT_CONFIG):
        missing = [s for s in sources if s not in available]
        twin = next((other for other, have in chosen.items() if set(have) == set(sources)), None)
        if missing:
            skipped.append((name, f"the index has no {', '.join(missing)} retriever "
                                  f"(it has {', '.join(available)})"))
        elif twin:
            skipped.append((name, f"same retrievers as {twin}"))
        else:
            chosen[name] = sources
    return {n: chosen[n] for n in names if n in chosen}, skipped
