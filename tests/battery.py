"""Helpers of the fault battery (tests/test_battery_*.py): run ``rag`` and check its invariant.

The invariant (issue 16): whatever the input — a flag, a question, a batch file, a setting, a
note, an index on disk — ``rag`` ends with a documented exit code (README, "Reliability"),
never a Python traceback, and says what went wrong in one line on stderr.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import rag

#: The package under test; subprocesses import it from here, whatever their working directory.
CODE_ROOT = Path(rag.__file__).resolve().parent.parent
#: Environment variables that configure ``rag``; probes start from none of them set.
OWN_VARIABLES = re.compile(r"^(RAG_|OPENAI_|GRADIO_SERVER_)")
OK, BAD_INPUT, INTERRUPTED = 0, 2, 130
#: A real ``[n]`` citation (not ``[[n]]`` or ``[21]`` inside a word).
CITATION = re.compile(r"\[(\d+)\]")
#: What a build prints on a pipe every few seconds (``embedding (e5-small-q4): 120/649``, then its pace
#: and time left once known: ``, 12.5/s, about 1m 20s left``).
PROGRESS = re.compile(r"^[\w() .-]+: \d+/\d+(, [\d.]+/s, about (\d+m )?\d+s left)?$")


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


#: The ``rag_main`` fixture's runner: ``rag`` in this process (tests/conftest.py).
RagMain = Callable[..., Run]


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``rag`` setting, plus ``env``."""
    return {k: v for k, v in os.environ.items() if not OWN_VARIABLES.match(k)} | (env or {})


def run_subprocess(*args: str | bytes, env: dict[str, str] | None = None, cwd: Path | None = None,
                   stdin: bytes | None = None, timeout: float = 120) -> Run:
    """The real ``rag`` command (``args`` may be bytes: argv that is not UTF-8)."""
    full = clean_env(env) | {"PYTHONPATH": str(CODE_ROOT), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "rag.app.cli", *args], cwd=cwd or CODE_ROOT, env=full,
                          capture_output=True, input=stdin, timeout=timeout)
    return Run(done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"))


def assert_no_traceback(run: Run) -> None:
    assert "Traceback (most recent call last)" not in run.out + run.err, run.err[-3000:]


def assert_one_line_error(run: Run, *fragments: str, code: int = BAD_INPUT) -> str:
    """Exit ``code``, nothing on stdout, one line on stderr holding every fragment; returns it."""
    assert_no_traceback(run)
    assert run.code == code, (run.code, run.err)
    assert run.out == "", run.out
    lines = [line for line in run.err_lines if not PROGRESS.match(line)]  # a build's progress may come first
    assert len(lines) == 1, run.err
    line = lines[0]
    assert line.startswith("rag"), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def assert_citations_hold(answer: dict) -> None:
    """The answer contract: every ``[n]`` in the text is one of its citations."""
    cited = {c["n"] for c in answer["citations"]}
    assert {int(n) for n in CITATION.findall(answer["answer"])} <= cited, answer["answer"]
