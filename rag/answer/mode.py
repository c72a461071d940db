"""How an answer is made, and the one place that decides whether a model is asked.

``auto`` uses the configured model, else quotes the notes (extractive); ``llm`` asks for the
model; ``extractive`` never asks one. Whatever a front end asks for, no request is made when no
model is configured: :meth:`AnswerMode.uses_model` is the only check of that before a request
(the client's own guard in :func:`rag.answer.llm.client.stream_chat` is the last line).
"""

from __future__ import annotations

from enum import StrEnum

from rag.settings import LLMSettings

from .prompts import FAILURES, FALLBACK


class AnswerMode(StrEnum):
    AUTO = "auto"
    LLM = "llm"
    EXTRACTIVE = "extractive"

    @classmethod
    def of(cls, use_llm: bool | None) -> AnswerMode:
        """The mode of the older ``use_llm`` flag: None is auto."""
        return cls.AUTO if use_llm is None else cls.LLM if use_llm else cls.EXTRACTIVE

    @property
    def use_llm(self) -> bool | None:
        """The older ``use_llm`` flag of this mode (:func:`rag.answer.answer.iter_answer` takes it)."""
        return {AnswerMode.AUTO: None, AnswerMode.LLM: True, AnswerMode.EXTRACTIVE: False}[self]

    def uses_model(self, llm: LLMSettings) -> bool:
        """Whether this answer asks a model: only when one is configured, and never extractive."""
        return llm.enabled and self is not AnswerMode.EXTRACTIVE

    def notice(self, llm: LLMSettings) -> str | None:
        """The one line for a user who asked for a model when none is configured."""
        return FAILURES["disabled"] + FALLBACK if self is AnswerMode.LLM and not llm.enabled else None
