"""What `rag search --batch` and `rag ask --batch` read: a JSONL file of ``{"id", "question"}``,
every line checked before any question is run, each problem one line naming the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

from rag.contract import QuestionError, check_question
from rag.errors import RagError
from rag.inputs import InputFileError, read_regular_file

#: A batch of questions is at most this big (each is at most answer.max_question_chars).
MAX_BATCH_BYTES = 64 << 20


class BatchError(RagError):
    """A batch file that cannot be run: printed as one line, exit code 2."""


def read_batch(path: Path, max_chars: int) -> list[tuple[object, str]]:
    """(id, question) per line of a JSONL file, all checked before any is run."""
    try:
        data = read_regular_file(path, MAX_BATCH_BYTES, "batch file")
    except InputFileError as exc:
        raise BatchError(str(exc)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise BatchError(f"{path}:{line}: not UTF-8 text") from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_not_json)  # NaN as an id could not be echoed as JSON
            rows.append((row.get("id", n), check_question(row["question"], max_chars)))
        except QuestionError as exc:
            raise BatchError(f"{path}:{n}: {exc}") from None
        except (ValueError, KeyError, AttributeError, TypeError, RecursionError):
            raise BatchError(f'{path}:{n}: expected a JSON object with a "question"') from None
    return rows


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not JSON")
