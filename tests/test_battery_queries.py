"""Fault battery, queries: hostile and clumsy questions, flags and batch files through ``rag search``
and ``rag ask``. Each is refused in one line with exit 2, or answered (exit 0) within the answer
contract — never a traceback. Fast tier: ``rag`` runs in this process over a ``hash`` index."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.embed.models import Models
from tests.battery import Run, assert_citations_hold, assert_no_traceback, assert_one_line_error, run_subprocess
from tests.conftest import QUOKKA, index_notes, settings_for

#: The hit fields of the CLI contract (../shared/docs/cli.md).
HIT_FIELDS = ("rank", "score", "file", "path", "title", "line_start", "line_end", "url", "date", "snippet")

RagMain = Callable[..., Run]
NOTES = {
    "quokka.md": QUOKKA,
    "refs.md": "# Survey\n\n## Wombat-MoE: atomic experts\n\nWombat-MoE splits experts into atoms [21], "
               "as in GShard [68] and Switch [3].\n",
    "many.md": "# Log\n\n" + "".join(f"## Paper {i}: quokka variant {i}\n\nQuokka trick number {i}.\n\n"
                                    for i in range(12)),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, models: Models) -> dict[str, str]:
    settings = index_notes(tmp_path_factory.mktemp("queries"), NOTES, models)
    return {"RAG_CORPUS": str(settings.index.corpus), "RAG_INDEX": str(settings.index.path), "RAG_EMBEDDERS": "hash"}


# ---------------------------------------------------------------------------- questions

REFUSED = {
    "empty": ("", "the question is empty"),
    "spaces": ("   ", "the question is empty"),
    "tabs and newlines": ("\t\n\r\n", "the question is empty"),
    "NUL": ("\x00", "the question is empty"),
    "NULs and spaces": ("\x00 \x00\x00 ", "the question is empty"),
    "ideographic space": ("\u3000\u3000", "the question is empty"),
    "one over the limit": ("q" * 2001, "the limit is 2000"),
    "200 KB": ("长" * 200_000, "the limit is 2000"),
}


@pytest.mark.parametrize("command", ["search", "ask"])
@pytest.mark.parametrize("name", REFUSED)
def test_unusable_question_is_one_line(name: str, command: str, rag_main: RagMain, env: dict[str, str]) -> None:
    question, message = REFUSED[name]
    assert_one_line_error(rag_main(command, question, env=env), message)


ACCEPTED = {
    "not UTF-8 on argv": "\udcff\udcfe",  # what Python makes of argv bytes that are not UTF-8
    "half UTF-8": "quokka \udce4\udcb8",
    "NUL inside": "quokka\x00attention",
    "emoji": "🦘🦘 quokka?",
    "right-to-left override": "\u202equokka\u202c",
    "zero-width only": "\u200b\u200d",
    "combining marks": "q\u0301\u0301\u0301uokka",
    "fullwidth": "ｑｕｏｋｋａ",
    "SQL": "' OR 1=1; DROP TABLE notes; --",
    "regex": ".*(?:[(",
    "brackets": "[[[1]]] [21] [999]",
    "format string": "%s%n%x {0} {question}",
    "path": "../../../etc/passwd",
    "html": "<script>alert(1)</script>",
    "json": '{"question": null}',
    "terminal escape": "\x1b[2J\x1b]0;pwned\x07quokka",
    "surrogate pair": "\U0001f600\U0001f600",
    "at the limit": "q" * 2000,
    "one char": "q",
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_odd_question_searches(name: str, rag_main: RagMain, env: dict[str, str]) -> None:
    run = rag_main("search", ACCEPTED[name], "--json", env=env)
    assert_no_traceback(run)
    assert run.code == 0 and run.err == "", run.err
    result = json.loads(run.out)
    assert "\udcff" not in result["question"] and result["question"].strip()
    assert all(set(HIT_FIELDS) <= set(hit) and hit["rank"] == n for n, hit in enumerate(result["hits"], start=1))


@pytest.mark.parametrize("name", ACCEPTED)
def test_odd_question_gets_a_cited_answer_or_a_refusal(name: str, rag_main: RagMain, env: dict[str, str]) -> None:
    run = rag_main("ask", ACCEPTED[name], "--json", env=env)
    assert_no_traceback(run)
    assert run.code == 0 and run.err == "", run.err
    answer = json.loads(run.out)
    assert answer["mode"] == "extractive"
    assert_citations_hold(answer)


def test_note_reference_marks_are_no_citations(rag_main: RagMain, env: dict[str, str]) -> None:
    """Issue 16 bug 5: a note's own ``[21]`` is neutralised in an extractive answer."""
    answer = json.loads(rag_main("ask", "Wombat-MoE atomic experts", "--json", "-k", "2", env=env).out)
    assert "Wombat-MoE" in answer["answer"] and answer["citations"]
    assert_citations_hold(answer)
    assert "[21]" not in answer["answer"] and "[68]" not in answer["answer"]


# ---------------------------------------------------------------------------- flags

BAD_K = ["0", "-1", "201", "abc", "1.5", "1e3", "", "0x10"]


@pytest.mark.parametrize("k", BAD_K)
def test_bad_k_is_one_line(k: str, rag_main: RagMain, env: dict[str, str]) -> None:
    """Issue 16 bug 11: ``-k -1`` gave 77 hits."""
    assert_one_line_error(rag_main("search", "quokka", "-k", k, env=env), "-k")


def test_k_over_the_answer_limit_is_one_line(rag_main: RagMain, env: dict[str, str]) -> None:
    assert_one_line_error(rag_main("ask", "quokka", "-k", "51", env=env), "k must be a whole number from 1 to 50")


BAD_DATES = [("--since", "yesterday"), ("--since", "2026-2-1"), ("--since", "2026-13-01"), ("--until", "2026-02-30"),
             ("--until", "02/03/2026"), ("--since", "2026-01-01T00:00"), ("--since", "２０２６-０１-０１")]


@pytest.mark.parametrize("flag, date", BAD_DATES)
def test_bad_date_is_one_line(flag: str, date: str, rag_main: RagMain, env: dict[str, str]) -> None:
    """Issue 16 bug 12: a date the CLI cannot read gave 0 hits silently."""
    assert_one_line_error(rag_main("search", "quokka", flag, date, env=env), "date")


@pytest.mark.parametrize("glob", ["[", "**/../../*", "\x00", "*" * 5000, "quokka.md/..", "\udcff*"])
def test_odd_file_glob_is_no_crash(glob: str, rag_main: RagMain, env: dict[str, str]) -> None:
    run = rag_main("search", "quokka", "--file", glob, "--json", env=env)
    assert_no_traceback(run)
    if run.code == 0:  # whatever it found lies in notes the glob names, by path or by file name
        hits = json.loads(run.out)["hits"]
        assert all(fnmatch.fnmatch(h["file"], glob) or fnmatch.fnmatch(Path(h["file"]).name, glob) for h in hits)
    else:
        assert_one_line_error(run)


def test_dates_filter_when_they_are_valid(rag_main: RagMain, env: dict[str, str]) -> None:
    hits = json.loads(rag_main("search", "quokka", "--since", "2026-03-01", "--until", "2026-03-02", "--json",
                               env=env).out)["hits"]
    assert {h["file"] for h in hits} == {"quokka.md"}


def test_no_question_and_no_batch_is_one_line(rag_main: RagMain, env: dict[str, str]) -> None:
    assert_one_line_error(rag_main("search", env=env), "give a QUESTION")


# ---------------------------------------------------------------------------- batch files

BAD_BATCHES: dict[str, tuple[bytes, str]] = {
    "not UTF-8": (b'{"question": "a"}\n{"question": "\xff\xfe"}\n', "batch.jsonl:2: not UTF-8 text"),
    "UTF-16": ('{"question": "quokka"}\n'.encode("utf-16"), "batch.jsonl:1: not UTF-8 text"),
    "nested 100k deep": (b"[" * 100_000 + b"\n", "batch.jsonl:1: expected a JSON object"),
    "objects nested 100k deep": (b'{"question": ' + b'{"a": ' * 100_000 + b"\n", "batch.jsonl:1: expected"),
    "null question": (b'{"question": null}\n', "batch.jsonl:1: the question must be text"),
    "number question": (b'{"question": 42}\n', "batch.jsonl:1: the question must be text"),
    "no question": (b'{"id": 1}\n', 'batch.jsonl:1: expected a JSON object with a "question"'),
    "array line": (b'["quokka"]\n', 'batch.jsonl:1: expected a JSON object with a "question"'),
    "bare string": (b'"quokka"\n', 'batch.jsonl:1: expected a JSON object with a "question"'),
    "not JSON": (b"quokka?\n", 'batch.jsonl:1: expected a JSON object with a "question"'),
    "blank question on line 3": (b'{"question": "a"}\n{"question": "b"}\n{"question": " \\u0000 "}\n',
                                 "batch.jsonl:3: the question is empty"),
    "too long": (b'{"question": "' + b"q" * 3000 + b'"}\n', "batch.jsonl:1: the question is 3000 characters"),
    "NaN id": (b'{"id": NaN, "question": "quokka"}\n', "batch.jsonl:1: expected a JSON object"),
    "Infinity id": (b'{"id": [-Infinity], "question": "quokka"}\n', "batch.jsonl:1: expected a JSON object"),
}


@pytest.mark.parametrize("name", BAD_BATCHES)
def test_bad_batch_is_one_line_before_any_question_runs(name: str, rag_main: RagMain, env: dict[str, str],
                                                         tmp_path: Path) -> None:
    """Issue 16 bug 14: a batch file that is not UTF-8, or nested 100k deep, gave a traceback."""
    data, message = BAD_BATCHES[name]
    (tmp_path / "batch.jsonl").write_bytes(data)
    assert_one_line_error(rag_main("search", "--batch", str(tmp_path / "batch.jsonl"), env=env), message)


GOOD_BATCHES: dict[str, tuple[bytes, list[object]]] = {
    "BOM": (b'\xef\xbb\xbf{"id": "a", "question": "quokka"}\n', ["a"]),
    "CRLF": (b'{"id": 1, "question": "quokka"}\r\n{"id": 2, "question": "wombat"}\r\n', [1, 2]),
    "blank lines": (b'\n\n{"question": "quokka"}\n\n  \n', [3]),
    "no ids": (b'{"question": "quokka"}\n{"question": "wombat"}\n', [1, 2]),
    "object id": (b'{"id": {"x": [1]}, "question": "quokka"}\n', [{"x": [1]}]),
    "extra keys": (b'{"question": "quokka", "gold": ["x"], "k": -1}\n', [1]),
    "empty file": (b"", []),
    "no final newline": (b'{"question": "quokka"}', [1]),
}


@pytest.mark.parametrize("name", GOOD_BATCHES)
def test_clumsy_but_valid_batch_runs(name: str, rag_main: RagMain, env: dict[str, str], tmp_path: Path) -> None:
    data, ids = GOOD_BATCHES[name]
    (tmp_path / "batch.jsonl").write_bytes(data)
    run = rag_main("search", "--batch", str(tmp_path / "batch.jsonl"), env=env)
    assert run.code == 0 and run.err == "", run.err
    assert [json.loads(line)["id"] for line in run.out.splitlines()] == ids


@pytest.mark.parametrize("where", ["missing", "a folder"])
def test_unreadable_batch_is_one_line(where: str, rag_main: RagMain, env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl" if where == "missing" else tmp_path
    assert_one_line_error(rag_main("ask", "--batch", str(path), env=env), "cannot read")


@pytest.mark.parametrize("name", REFUSED)
def test_unusable_question_is_one_line_tool_error_over_mcp(name: str, env: dict[str, str], models: Models) -> None:
    """The same refusals reach an agent as one-line tool errors, before any search (a 200 KB question)."""
    from mcp.server.mcpserver.exceptions import ToolError

    from rag.app.mcp_server import NotesTools
    from rag.service import Notes

    tools = NotesTools(Notes(settings_for(Path(env["RAG_CORPUS"]), Path(env["RAG_INDEX"])), models))
    question, message = REFUSED[name]
    for call in (tools.search_notes, tools.ask_notes):
        with pytest.raises(ToolError) as caught:
            call(question)
        assert message in str(caught.value) and "\n" not in str(caught.value)


# ---------------------------------------------------------------------------- the real command line

@pytest.mark.slow
@pytest.mark.parametrize("arg", [b"\xff\xfe", b"quokka \xe4\xb8", b"\xc0\xaf", b"\xed\xa0\x80"])
def test_question_bytes_that_are_not_utf8_on_argv(arg: bytes, env: dict[str, str], tmp_path: Path) -> None:
    """Issue 16 bug 13: a question whose bytes are not UTF-8 gave a traceback."""
    for command in ("search", "ask"):
        run = run_subprocess(command, arg, "--json", env=env, cwd=tmp_path)
        assert_no_traceback(run)
        assert run.code == 0 and run.err == "", run.err
        assert "\ufffd" in json.loads(run.out)["question"]
