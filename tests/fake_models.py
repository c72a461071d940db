"""Models whose embedders the test hands in by name (hash embedders slowed, gated or failing on
purpose), so a build can run under names the registry does not know (``test/slow``)."""

from __future__ import annotations

from rag.embed.embedding import HashEmbedder
from rag.embed.models import Models


class FakeModels(Models):
    def __init__(self, embedders: dict[str, HashEmbedder]) -> None:
        super().__init__()
        self.embedders = embedders

    def embedder(self, name: str) -> HashEmbedder:  # type: ignore[override]
        return self.embedders[name]
