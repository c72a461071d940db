"""The index store: where generations of the index live, and :func:`open_store`, which picks one.

The contract (:mod:`.base`) is what every stage above uses; the two backends implement it: a
folder of files with FAISS (:mod:`.folder`, the embedded default) and a PostgreSQL database with
pgvector (:mod:`.pg`, for a team). They import the contract, never this package, so picking a
backend here makes no import circle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import (
    GenerationData,
    IndexDamaged,
    IndexHandle,
    IndexStore,
    IndexUnavailable,
    Lexicon,
    LoadedIndex,
    PreviousGeneration,
    VectorCache,
)

if TYPE_CHECKING:
    from rag.settings import Settings

__all__ = ["GenerationData", "IndexDamaged", "IndexHandle", "IndexStore", "IndexUnavailable", "Lexicon",
           "LoadedIndex", "PreviousGeneration", "VectorCache", "open_store"]


def open_store(settings: Settings) -> IndexStore:
    """The store the settings name: a PostgreSQL DSN in ``index.store``, else the ``index.path`` folder."""
    index = settings.index
    if index.store:
        from .pg.store import PgStore  # psycopg is an optional dependency: loaded only for a team's store

        return PgStore(index.store, index.hnsw_threshold, settings.retrieval.ef_search)
    from .folder import FolderStore

    return FolderStore(index.path, index.hnsw_threshold, settings.retrieval.ef_search)
