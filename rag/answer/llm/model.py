"""Which chat model answers, as :class:`~rag.settings.LLMSettings` the transport can use.

A remote model is used as configured. A local one (``llm.model = "gguf:PATH"``) is served by
llama.cpp in a child process (:mod:`rag.answer.llm.local`) that is started on the first LLM answer (or
ahead of it by ``rag serve``), shared by every thread of the process, and stopped on
:meth:`AnswerModel.close` or at exit; its answers then go through the very same OpenAI-client
path as a remote endpoint's, with the local endpoint and its model alias swapped in. The CLI, the
app, the MCP server and ``rag eval`` all resolve the model here, so they agree on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rag.settings import Settings

from .local import LocalModelServer, gguf_path, is_local

#: How long the app waits for a remote endpoint's model list at page load.
LIST_TIMEOUT_S = 3.0
#: A local model reads at least this much note text, however small its context.
MIN_SOURCE_BUDGET = 200
#: Sampling for a small local model, unless the settings say otherwise: a repeat penalty (SmolLM2
#: otherwise repeats one paragraph until the token cap) and a short cap on the answer.
LOCAL_REPEAT_PENALTY = 1.15
LOCAL_MAX_ANSWER_TOKENS = 320


class AnswerModel:
    """The configured chat model; thread-safe, and a context manager that stops a local server."""

    def __init__(self, settings: Settings, on_status: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.on_status = on_status
        #: The last loading line of a local model ("loading model x.gguf… 3 s"), for progress displays.
        self.status = ""
        self._server: LocalModelServer | None = None
        if is_local(settings.llm.model):
            llm = settings.llm
            self._server = LocalModelServer(gguf_path(llm.model or ""), threads=llm.threads, ctx=llm.context,
                                            load_timeout=llm.load_timeout, on_status=self._loading)
        self._lock = threading.Lock()

    @property
    def local(self) -> bool:
        return self._server is not None

    @property
    def ready(self) -> bool:
        """True unless a local model still has to be loaded."""
        return self._server is None or self.pid is not None

    @property
    def pid(self) -> int | None:
        """The local server's process id while it runs (tests check it is gone after close)."""
        return self._server.pid if self._server else None

    @property
    def label(self) -> str | None:
        """How the app names a local model ("local: x.gguf, 1 thread"); None for a remote one."""
        return self._server.label if self._server else None

    @property
    def source_budget(self) -> int:
        """Tokens (cl100k) of note text the model reads: a local model on a CPU reads prompts slowly,
        and its whole prompt must fit ``llm.context`` in *its* tokens, which may be twice as many
        for Chinese (else llama.cpp answers HTTP 400)."""
        answer = self.settings.answer
        if not self.local:
            return answer.source_token_budget
        fits = (self.settings.llm.context - answer.max_answer_tokens) // 2
        return max(MIN_SOURCE_BUDGET, min(answer.local_source_token_budget, fits))

    def _loading(self, line: str) -> None:
        self.status = line
        if self.on_status:
            self.on_status(line)

    def answer_settings(self, model: str | None = None) -> Settings:
        """The settings to answer with: for a local model, its started endpoint, alias, no API key.

        ``model`` picks another model of a remote endpoint (the app's list of offered models).
        Starts a local server on first use (blocking; one start however many threads ask) and
        raises :class:`~rag.answer.llm.local.LocalModelError` (one line) when it cannot be served.
        """
        if self._server is None:
            if not model or model == self.settings.llm.model or not self.settings.llm.enabled:
                return self.settings
            return self.settings.model_copy(update={"llm": self.settings.llm.model_copy(update={"model": model})})
        with self._lock:
            endpoint = self._server.start()
        # the user's key is for their remote endpoint: it is never sent to the local server
        llm = self.settings.llm.model_copy(update={
            "base_url": endpoint.base_url, "model": endpoint.model, "api_key": None,
            "repeat_penalty": self.settings.llm.repeat_penalty or LOCAL_REPEAT_PENALTY})
        answer = self.settings.answer.model_copy(update={
            "max_answer_tokens": min(self.settings.answer.max_answer_tokens, LOCAL_MAX_ANSWER_TOKENS)})
        return self.settings.model_copy(update={"llm": llm, "answer": answer})

    def models(self) -> list[str]:
        """The models the endpoint offers (``/v1/models``), configured one first; no request when
        no model is configured, and none for a local model (it offers only itself)."""
        llm = self.settings.llm
        if not llm.enabled:
            return []
        if self._server is not None:
            return [self._server.path.name]
        from .client import list_models

        offered = list_models(llm, LIST_TIMEOUT_S)
        return [llm.model or "", *(m for m in offered if m != llm.model)]

    def close(self) -> None:
        """Stop a local server (its process is gone and its port free when this returns)."""
        if self._server is not None:
            with self._lock:
                self._server.stop()

    def __enter__(self) -> AnswerModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
