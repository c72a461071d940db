"""What API clients of the app may send: the page's own components only send well-formed values,
so the checks they make implicitly are made here, before a call meets the chat."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gradio as gr

MODE_LLM = "LLM"
MODE_EXTRACTIVE = "Extractive"


def chat_payload_problem(message: object, history: object, k: object, mode: object,
                         texts: Sequence[object]) -> str | None:
    """What is wrong with a /chat API payload, in one line (None: nothing).

    The page's own components only send well-formed values; an API client can send anything,
    and :meth:`NotesApp.respond` should only meet what the page could have sent. Wrong values of the
    right kind (a bad date, k out of range) are left to it: they get a message in the chat.
    """
    if message is not None and not isinstance(message, str):
        return "the question must be text"
    if history is not None and not (isinstance(history, list) and all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant") and "content" in m for m in history)):
        return 'the chat must be a list of messages like {"role": "user", "content": "…"}'
    if isinstance(k, bool) or not (isinstance(k, int) or (isinstance(k, float) and k.is_integer())):
        return "k must be a whole number"
    if mode not in (MODE_LLM, MODE_EXTRACTIVE):
        return f"the mode must be {MODE_LLM!r} or {MODE_EXTRACTIVE!r}"
    if any(t is not None and not isinstance(t, str) for t in texts):
        return "the note file, dates, model and tag must be text"
    return None


def page_class() -> type[gr.Blocks]:
    """Blocks whose API endpoints take their trailing arguments as optional, as their signatures say.

    Gradio requires every input of an endpoint and answers a short call with an empty error (and a
    traceback in the server's log); here the missing ones get their defaults, and a call without a
    required one is one line back to the client.
    """
    import gradio as gr

    class Page(gr.Blocks):
        def validate_inputs(self, block_fn: Any, inputs: list[Any]) -> None:
            wanted = len(block_fn.inputs)
            if len(inputs) < wanted and block_fn.api_name and block_fn.fn is not None:
                params = list(inspect.signature(block_fn.fn).parameters.values())[:wanted]
                missing = params[len(inputs):]
                if any(p.default is p.empty for p in missing):
                    needed = sum(p.default is p.empty for p in params)
                    raise gr.Error(f"/{block_fn.api_name} takes {needed} to {wanted} values "
                                   f"({', '.join(p.name for p in params)}); got {len(inputs)}", print_exception=False)
                inputs.extend(p.default for p in missing)
            super().validate_inputs(block_fn, inputs)

    return Page
