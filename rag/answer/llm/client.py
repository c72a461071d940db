"""LLM transport: one streamed chat completion from an OpenAI-compatible endpoint, or LLMFailure.

This is the one place a request to a model is made, so the rules live here: with no model
configured nothing is sent anywhere (whatever a caller asks for); the endpoint is exactly the
configured one (the client never reads it from the environment on its own); no retries (a
failing endpoint should fall back to the notes at once, not after backoff); a whole answer has a
deadline, not only each read; and every failure becomes one line that is safe to show — never
the key, never the server's own text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from typing import TYPE_CHECKING

from rag.answer import prompts
from rag.errors import RagError
from rag.settings import LLMSettings

if TYPE_CHECKING:
    import openai

#: Used only when a model is configured and no base URL: the user chose OpenAI itself.
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class LLMFailure(RagError):
    """The endpoint could not answer; the message is safe to show (no key, no server text)."""


class FormatRejected(LLMFailure):
    """The endpoint refused a request because of its ``response_format`` (HTTP 400 / 422): ask
    again without it."""


#: Statuses with which an endpoint that does not know structured outputs refuses one.
FORMAT_REJECTED = frozenset({400, 422})


def _client(llm: LLMSettings) -> openai.OpenAI:
    import openai

    key = llm.api_key.get_secret_value() if llm.api_key else "not-needed"
    return openai.OpenAI(base_url=llm.base_url or DEFAULT_BASE_URL, api_key=key, timeout=llm.timeout,
                         max_retries=0)


def _failure(exc: Exception, llm: LLMSettings) -> LLMFailure:
    import openai

    if isinstance(exc, openai.APITimeoutError):  # before its base class, APIConnectionError
        msg = prompts.FAILURES["timeout"].format(timeout=llm.timeout)
    elif isinstance(exc, openai.APIConnectionError):
        msg = prompts.FAILURES["unreachable"].format(base_url=llm.public_endpoint)
    elif isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        kind = ("auth" if status in (401, 403) else "rate" if status == 429
                else "server" if status >= 500 else "status")
        msg = prompts.FAILURES[kind].format(status=status)
    else:  # an error event in the stream, or bytes that are not JSON / not UTF-8
        msg = prompts.FAILURES["other"]
    return LLMFailure(msg + prompts.FALLBACK)


def _content(chunk: object) -> str | None:
    """The text of a stream chunk; None when the chunk is not a chat completion chunk at all.

    The client does not validate chunks, so anything a server sends arrives here: ``choices``
    may be null or a string, ``delta.content`` a number, list or object. Only strings are text.
    """
    choices = getattr(chunk, "choices", None)
    if not isinstance(choices, list):
        return None
    delta = getattr(choices[0], "delta", None) if choices else None
    content = getattr(delta, "content", None)
    return content if isinstance(content, str) else ""


def stream_chat(messages: list[dict], llm: LLMSettings, max_tokens: int,
                timings: dict | None = None, response_format: dict | None = None) -> Generator[str, None, None]:
    """Text deltas of a streamed chat completion; every way it can fail raises LLMFailure.

    ``timings`` receives the server's own speed report when it sends one (llama.cpp's last chunk
    has ``prompt_per_second``, ``predicted_per_second``, …), for `rag bench`. ``response_format``
    asks for structured output; an endpoint that refuses it raises :class:`FormatRejected`.
    ``llm.repeat_penalty`` (llama.cpp's own parameter) is sent only when set.

    Failures include a 200 reply that is no completion stream (an HTML page, plain JSON,
    ``choices: null``), a stream with no text, and a stream still going at ``llm.deadline``.
    """
    if not llm.enabled:  # no model configured: no request, to any endpoint, ever
        raise LLMFailure(prompts.FAILURES["disabled"] + prompts.FALLBACK)
    import openai  # slow (0.5 s): only when a model is really asked

    deadline = time.monotonic() + llm.deadline
    chunks = text = 0
    extra: dict = {}
    if response_format is not None:
        extra["response_format"] = response_format
    if llm.repeat_penalty is not None:
        extra["extra_body"] = {"repeat_penalty": llm.repeat_penalty}
    try:
        stream = _client(llm).chat.completions.create(
            model=llm.model or "", messages=messages, temperature=llm.temperature,  # type: ignore[arg-type]
            max_tokens=max_tokens, stream=True, **extra)
        with stream:
            for chunk in stream:
                if time.monotonic() > deadline:
                    raise LLMFailure(prompts.FAILURES["deadline"].format(deadline=llm.deadline) + prompts.FALLBACK)
                if timings is not None and isinstance(extra := getattr(chunk, "model_extra", None), dict):
                    timings.update(extra.get("timings") if isinstance(extra.get("timings"), dict) else {})
                content = _content(chunk)
                if content is None:
                    continue
                chunks += 1
                if content:
                    text += len(content)
                    yield content
    except openai.APIStatusError as exc:
        if response_format is not None and exc.status_code in FORMAT_REJECTED:
            raise FormatRejected(prompts.FAILURES["status"].format(status=exc.status_code)) from None
        raise _failure(exc, llm) from None
    except (openai.OpenAIError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _failure(exc, llm) from None
    if not text:
        raise LLMFailure(prompts.FAILURES["empty" if chunks else "not_stream"] + prompts.FALLBACK)


def list_models(llm: LLMSettings, timeout: float) -> list[str]:
    """The model ids the endpoint offers (``GET /v1/models``), or [] when it cannot say.

    Only asked with a model configured (no request otherwise, like :func:`stream_chat`); a
    failure of any kind is an empty list, since the configured model still works without it.
    """
    if not llm.enabled:
        return []
    import openai

    try:
        client = _client(llm.model_copy(update={"timeout": timeout}))
        return sorted({m.id for m in client.models.list().data if isinstance(getattr(m, "id", None), str)})
    except (openai.OpenAIError, json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError):
        return []
