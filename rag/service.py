"""The notes as one object for the thin layers (CLI, app, MCP server): search, answer, rebuild.

It owns what a long-running process shares between requests: the settings, the loaded models,
the store and a live handle on its current generation (a rebuild by anyone is picked up on the
next question), and one :class:`~rag.retrieve.searcher.Searcher` per generation. Input from users is
checked here once (the requests of :mod:`rag.contract`, against the settings' bounds), so every
layer refuses the same things the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Generator

from rag.answer.answer import Answer, iter_answer
from rag.answer.llm.model import AnswerModel
from rag.build.builder import BuildReport, Progress, build_index, fingerprint_of
from rag.build.plan import settings_change
from rag.build.status import CorpusStatus, corpus_status
from rag.contract import AskRequest, SearchRequest, check_k, check_question
from rag.embed.models import Models
from rag.ingest.notes import Entry
from rag.retrieve.related import Related, find_entry, related_entries
from rag.retrieve.searcher import Filters, RetrievalResult, Searcher
from rag.store import IndexDamaged, IndexHandle, LoadedIndex, open_store

from .settings import MAX_ANSWER_K, MAX_SEARCH_K, Settings


class Notes:
    def __init__(self, settings: Settings, models: Models | None = None) -> None:
        self.settings = settings
        self.models = models or Models()
        self.store = open_store(settings)
        self.handle = IndexHandle(self.store)
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()
        #: The chat model (a local one is started on the first LLM answer); stopped by close().
        self.model = AnswerModel(settings)

    def index(self) -> LoadedIndex:
        return self.handle.get()

    def searcher(self) -> Searcher:
        """The searcher of the live generation (a new one after each rebuild)."""
        with self._lock:
            index = self.handle.get()
            if self._searcher is None or self._searcher.index is not index:
                self._searcher = Searcher(index, self.settings.retrieval, self.settings.index.corpus, self.models)
            return self._searcher

    def search(self, request: SearchRequest) -> RetrievalResult:
        question = check_question(request.question, self.settings.answer.max_question_chars)
        k = check_k(self.settings.retrieval.k if request.k is None else request.k, MAX_SEARCH_K)
        return self.searcher().search(question, k=k, filters=request.filters)

    def ask(self, request: AskRequest) -> Generator[str, None, Answer]:
        """Text deltas, then (as the generator's return value) the whole cited answer.

        ``request.model`` picks another model the endpoint offers. A local model is started here,
        before the stream begins, so a model that cannot load raises LocalModelError (one line) at once.
        """
        question = check_question(request.question, self.settings.answer.max_question_chars)
        k = check_k(self.settings.answer.k if request.k is None else request.k, MAX_ANSWER_K)
        settings = self.model.answer_settings(request.model) if request.mode.uses_model(self.settings.llm) \
            else self.settings
        if request.strict is not None:
            settings = settings.model_copy(update={"answer": settings.answer.model_copy(
                update={"strict": request.strict})})
        return iter_answer(question, self.searcher(), settings, k=k, filters=request.filters, history=request.history,
                           use_llm=request.mode.use_llm, source_budget=self.model.source_budget,
                           small_model=self.model.local)

    def related(self, file: str, line: int, k: int = 5,
                filters: Filters | None = None) -> tuple[Entry, list[Related]]:
        """The entry of ``file`` covering ``line`` and up to ``k`` related entries that ``filters``
        allows (LookupError if there is no such entry)."""
        index = self.index()
        entry = find_entry(index, file, line)
        return entry, related_entries(index, entry, check_k(k, MAX_ANSWER_K), filters)

    def build(self, progress: Progress | None = None, wait: bool = True, rehash: bool = False) -> BuildReport:
        return build_index(self.settings.index, self.store, self.models, progress=progress, wait=wait, rehash=rehash)

    def stale(self) -> str | None:
        """Why the live index no longer fits these settings and this code ("index settings changed
        (lexical)" after an upgrade changed the tokenizer), or None. Searching it still works, but
        the question is read one way and the notes were indexed another, so it is said."""
        try:
            manifest = self.store.manifest() if self.store.current() is not None else None
        except IndexDamaged:
            return None  # said by whoever loads it
        return settings_change(manifest.fingerprint, fingerprint_of(self.settings.index)) if manifest else None

    def status(self) -> CorpusStatus:
        """Each note's state against the live index (indexed / skipped / pending), without hashing."""
        return corpus_status(self.settings.index, self.store)

    def close(self) -> None:
        """Stop what this object started (a local model server); the index needs no closing."""
        self.model.close()

    def __enter__(self) -> Notes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
