"""Fault battery, limits (issue 25): every number a setting takes has an upper bound named in its
error; a DSN password is masked whatever it holds; a settings or batch file that never ends (a
device, a FIFO, a file nested a thousand deep) is one line, exit 2. Fast tier, except the real
processes that would hang on the old code."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.dsn import mask_dsn
from rag.settings import Settings, SettingsError
from tests.battery import Run, assert_one_line_error, run_subprocess

RagMain = Callable[..., Run]

TOO_BIG = [
    ("RAG_LLM_CONTEXT", "2000000000", "131072"), ("RAG_LLM_TIMEOUT", "1e12", "86400"),
    ("RAG_LLM_DEADLINE", "1e12", "86400"), ("RAG_LLM_THREADS", "100000", "256"),
    ("RAG_MAX_NOTE_BYTES", "5000GB", "1073741824"), ("RAG_MAX_CHUNKS_PER_NOTE", "1000000000", "1000000"),
    ("RAG_RRF_K", "1e300", "10000"), ("RAG_BM25_WEIGHT", "1e300", "100"), ("RAG_MAX_QUESTION_CHARS", "10000000000",
                                                                             "1000000"),
]


@pytest.mark.parametrize("var, value, limit", TOO_BIG)
def test_every_numeric_setting_has_an_upper_bound_named_in_its_error(var: str, value: str, limit: str,
                                                                     rag_main: RagMain) -> None:
    """Issue 25 bug 6: RAG_LLM_CONTEXT=2000000000 grew a llama.cpp child to 23 GB until the OOM killer."""
    assert_one_line_error(rag_main("config", env={var: value}), f"(from {var})", limit)


@pytest.mark.parametrize("section, name", [("answer", "source_token_budget"), ("answer", "local_source_token_budget"),
                                           ("answer", "max_answer_tokens"), ("answer", "max_answer_chars"),
                                           ("llm", "load_timeout"), ("retrieval", "ef_search"),
                                           ("index", "hnsw_threshold"), ("answer", "evidence_entries")])
def test_budgets_and_timeouts_from_rag_toml_are_bounded(section: str, name: str) -> None:
    with pytest.raises(SettingsError, match=rf"setting {section}\.{name}.*less than or equal to \d"):
        Settings().updated({f"{section}.{name}": 10**15}, source="rag.toml")


SLASHED = "postgresql://ann:2024/WRONGpass8@db.example:5432/notes"


def test_a_dsn_password_with_a_slash_is_never_shown(rag_main: RagMain, tmp_path: Path) -> None:
    """Issue 25 bug 2: `ann:2024/WRONGpass8@…` was read as host `ann`, port 2024, and printed in clear."""
    assert mask_dsn(SLASHED) == "postgresql://ann:***@db.example:5432/notes"
    for dsn, secret in ((SLASHED, "WRONGpass8"), ("postgresql://ann:p@ss:w/rd@db/notes", "ss:w"),
                        ("postgresql://ann:a:b/c@db/notes", "b/c"), ("postgresql://ann:1/b?c@db/notes", "1/b"),
                        ("postgresql://ann:x#y9@db/notes", "x#y9")):
        assert secret not in mask_dsn(dsn)
        assert_one_line_error(run := rag_main("config", env={"RAG_STORE": dsn}), "RAG_STORE", "percent-encode")
        assert secret not in run.err
    (tmp_path / "cwd" / "rag.toml").write_text(f'[index]\nstore = "{SLASHED}"\n')
    run = rag_main("config")
    assert_one_line_error(run, "carries a password")
    assert "WRONGpass8" not in run.err


def test_a_dsn_with_a_line_break_is_refused(rag_main: RagMain) -> None:
    """Risk: `postgresql://db/notes\\nother` was shown as another database."""
    assert_one_line_error(rag_main("config", env={"RAG_STORE": "postgresql://ann@db/notes\nhost=evil"}),
                          "RAG_STORE", "line break")


def test_deeply_nested_rag_toml_is_one_line(rag_main: RagMain, tmp_path: Path) -> None:
    """Issue 25 bug 7: a rag.toml nested 1,000 deep was a RecursionError of 3,004 lines."""
    (tmp_path / "cwd" / "rag.toml").write_text("x = " + "[" * 1000 + "]" * 1000 + "\n")
    assert_one_line_error(rag_main("config"), "nested too deeply")


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--config", "--batch"])
def test_config_and_batch_files_that_never_end_are_refused(flag: str, tmp_path: Path) -> None:
    """Risk: `--config /dev/zero` read without end, and a FIFO nobody writes hung for ever."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    big.write_bytes(b"#" * (65 << 20))
    command = ["search", "x"] if flag == "--batch" else ["config"]
    for path in ("/dev/zero", str(fifo), str(big)):
        run = run_subprocess(*command, flag, path, env={"RAG_CORPUS": str(tmp_path), "RAG_INDEX": str(tmp_path / "i"),
                                                        "RAG_EMBEDDERS": ""}, cwd=tmp_path, timeout=60)
        assert_one_line_error(run, "cannot read", path)
