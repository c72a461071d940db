"""The notes as one object for the thin layers (CLI, app, MCP server): search, answer, rebuild.

It owns what a long-running process shares between requests: the settings, the loaded models,
the store and a live handle on its current generation (a rebuild by anyone is picked up on the
next question), and one :class:`~rag.retrieve.searcher.Searcher` per generation. Input from users is
checked here once (:func:`check_question`), so every layer refuses the same things the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Generator

from rag.answer.answer import Answer, iter_answer
from rag.answer.llm.model import AnswerModel
from rag.build.builder import BuildReport, Progress, build_index
from rag.embed.models import Models
from rag.errors import RagError
from rag.ingest.notes import Entry
from rag.retrieve.related import Related, find_entry, related_entries
from rag.retrieve.searcher import Filters, RetrievalResult, Searcher
from rag.store import IndexHandle, LoadedIndex, open_store

from .settings import Settings


class QuestionError(RagError, ValueError):
    """A question that cannot be searched; the message is one line for the user."""


def check_question(text: object, max_chars: int) -> str:
    """The question as clean text: a string, not blank, not too long, valid Unicode.

    Bytes that were not UTF-8 (a shell passes them through as lone surrogates) become U+FFFD
    rather than failing deep inside a tokenizer.
    """
    if not isinstance(text, str):
        raise QuestionError("the question must be text")
    clean = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "").strip()
    if not clean:
        raise QuestionError("the question is empty")
    if len(clean) > max_chars:
        raise QuestionError(f"the question is {len(clean)} characters long; the limit is {max_chars} "
                            "(answer.max_question_chars)")
    return clean


def check_k(k: object, limit: int = 200) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limit:
        raise QuestionError(f"k must be a whole number from 1 to {limit}")
    return k


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

    def search(self, question: str, k: int | None = None, filters: Filters | None = None) -> RetrievalResult:
        question = check_question(question, self.settings.answer.max_question_chars)
        k = check_k(self.settings.retrieval.k if k is None else k)
        return self.searcher().search(question, k=k, filters=filters)

    def ask(self, question: str, k: int | None = None, filters: Filters | None = None,
            history: list[dict] | None = None, use_llm: bool | None = None,
            model: str | None = None) -> Generator[str, None, Answer]:
        """Text deltas, then (as the generator's return value) the whole cited answer.

        ``model`` picks another model the endpoint offers. A local model is started here, before
        the stream begins, so a model that cannot load raises LocalModelError (one line) at once.
        """
        question = check_question(question, self.settings.answer.max_question_chars)
        k = check_k(self.settings.answer.k if k is None else k, 50)
        llm_on = self.settings.llm.enabled and use_llm is not False
        settings = self.model.answer_settings(model) if llm_on else self.settings
        return iter_answer(question, self.searcher(), settings, k=k, filters=filters, history=history,
                           use_llm=use_llm, source_budget=self.model.source_budget, small_model=self.model.local)

    def related(self, file: str, line: int, k: int = 5,
                filters: Filters | None = None) -> tuple[Entry, list[Related]]:
        """The entry of ``file`` covering ``line`` and up to ``k`` related entries that ``filters``
        allows (LookupError if there is no such entry)."""
        index = self.index()
        entry = find_entry(index, file, line)
        return entry, related_entries(index, entry, check_k(k, 50), filters)

    def build(self, progress: Progress | None = None, wait: bool = True) -> BuildReport:
        return build_index(self.settings.index, self.store, self.models, progress=progress, wait=wait)

    def close(self) -> None:
        """Stop what this object started (a local model server); the index needs no closing."""
        self.model.close()

    def __enter__(self) -> Notes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
