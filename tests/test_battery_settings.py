"""Fault battery, settings: every bad value from the environment or rag.toml is one line naming the
setting and its source, exit 2, before anything runs — and never repeats a secret. Fast tier."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.battery import Run, assert_one_line_error, run_subprocess

RagMain = Callable[..., Run]

BAD_ENV = [
    ("RAG_CHUNK_TOKENS", "abc"), ("RAG_CHUNK_TOKENS", "60.5"), ("RAG_CHUNK_TOKENS", "-1"), ("RAG_CHUNK_TOKENS", "0"),
    ("RAG_CHUNK_TOKENS", "1e9"), ("RAG_CHUNK_OVERLAP", "-1"), ("RAG_CHUNK_OVERLAP", "256"),
    ("RAG_MAX_NOTE_BYTES", "5XB"), ("RAG_MAX_NOTE_BYTES", "abc"), ("RAG_MAX_NOTE_BYTES", "0"),
    ("RAG_MAX_NOTE_BYTES", "-5MB"), ("RAG_MAX_CHUNKS_PER_NOTE", "0"),
    ("RAG_RRF_K", "-5"), ("RAG_RRF_K", "0"), ("RAG_RRF_K", "nan"), ("RAG_RRF_K", "inf"), ("RAG_RRF_K", "sixty"),
    ("RAG_BM25_WEIGHT", "nan"), ("RAG_BM25_WEIGHT", "-1"), ("RAG_BM25_WEIGHT", "inf"), ("RAG_DENSE_WEIGHT", "1,5"),
    ("RAG_EXACT_WEIGHT", "-0.1"), ("RAG_CANDIDATES", "0"), ("RAG_CANDIDATES", "100000"),
    ("RAG_MAX_QUESTION_CHARS", "5"), ("RAG_LLM_TIMEOUT", "abc"), ("RAG_LLM_TIMEOUT", "0"), ("RAG_LLM_TIMEOUT", "nan"),
    ("RAG_LLM_DEADLINE", "inf"), ("RAG_LLM_DEADLINE", "-1"), ("RAG_LLM_TEMPERATURE", "5"),
    ("RAG_LLM_THREADS", "0"), ("RAG_LLM_CONTEXT", "10"), ("GRADIO_SERVER_PORT", "abc"),
    ("GRADIO_SERVER_PORT", "70000"), ("GRADIO_SERVER_PORT", "0"), ("RAG_MCP_PORT", "-1"),
    ("RAG_AUTH", "nocolon"), ("RAG_AUTH", ":pw"), ("RAG_AUTH", "user:"),
    ("RAG_EMBEDDERS", "nonexistent-model"), ("RAG_EMBEDDERS", "e5,e5-onnx"), ("RAG_EMBEDDERS", "../../etc"),
    ("OPENAI_BASE_URL", "http://127.0.0.1:99999/v1"), ("OPENAI_BASE_URL", "http://host:port/v1"),
    ("OPENAI_BASE_URL", "ftp://host/v1"), ("OPENAI_BASE_URL", "not a url"), ("OPENAI_BASE_URL", "http:///v1"),
    ("RAG_STORE", "mysql://db/notes"), ("RAG_STORE", "postgresql://db:bad/notes"),
]


@pytest.mark.parametrize("var, value", BAD_ENV)
def test_bad_environment_value_is_one_line(var: str, value: str, rag_main: RagMain) -> None:
    """Issue 16 bugs 15-18: bad numbers, names and URLs in the environment gave tracebacks (or NaN)."""
    line = assert_one_line_error(rag_main("config", env={var: value}), f"(from {var})")
    assert line.startswith("rag: setting ")


SECRET = "sk-SECRET-4f9a"


@pytest.mark.parametrize("var, value", [
    ("OPENAI_BASE_URL", f"http://user:{SECRET}@127.0.0.1:bad/v1"),
    ("OPENAI_BASE_URL", f"ftp://{SECRET}@host/v1"),
    ("RAG_STORE", f"postgresql://ann:{SECRET}@db:bad/notes"),
    ("RAG_AUTH", SECRET),
])
def test_a_bad_value_holding_a_secret_is_never_repeated(var: str, value: str, rag_main: RagMain) -> None:
    run = rag_main("config", env={var: value, "OPENAI_API_KEY": SECRET})
    assert_one_line_error(run, var)
    assert SECRET not in run.err


@pytest.mark.parametrize("command", [["search", "x"], ["ask", "x"], ["index"], ["serve"], ["mcp"]])
def test_every_command_checks_settings_before_running(command: list[str], rag_main: RagMain) -> None:
    """Issue 16 bug 8: a bad port in OPENAI_BASE_URL crashed `rag ask` and stopped `rag serve`."""
    assert_one_line_error(rag_main(*command, env={"OPENAI_BASE_URL": "http://127.0.0.1:99999/v1"}),
                          "OPENAI_BASE_URL")


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "not TOML": (b"this is = = not toml", "is not valid TOML"),
    "not UTF-8": (b"[index]\nchunk_tokens = 256 # \xff\xfe\n", "is not valid TOML"),
    "unknown section": (b"[indx]\nchunk_tokens = 256\n", "unknown setting 'indx.chunk_tokens'"),
    "unknown key": (b"[index]\nchunk_tokenz = 256\n", "unknown setting 'index.chunk_tokenz'"),
    "not a section": (b"chunk_tokens = 256\n", "must be a [section]"),
    "API key in the file": (b'[llm]\napi_key = "sk-SECRET-4f9a"\n', "is a secret"),
    "login in the file": (b'[serve]\nauth = "a:sk-SECRET-4f9a"\n', "is a secret"),
    "password in the DSN": (b'[index]\nstore = "postgresql://a:sk-SECRET-4f9a@db/notes"\n', "carries a password"),
    "wrong type": (b'[retrieval]\nrrf_k = "sixty"\n', "retrieval.rrf_k"),
    "list for a number": (b"[answer]\nk = [1, 2]\n", "answer.k"),
    "table for a URL": (b"[llm]\nbase_url = {a = 1}\n", "llm.base_url"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_rag_toml_is_one_line(name: str, rag_main: RagMain, tmp_path: Path) -> None:
    data, message = BAD_FILES[name]
    (tmp_path / "cwd" / "rag.toml").write_bytes(data)
    run = rag_main("search", "x")
    assert_one_line_error(run, message)
    assert "SECRET" not in run.err


@pytest.mark.parametrize("where", ["missing", "a folder"])
def test_unreadable_config_flag_is_one_line(where: str, rag_main: RagMain, tmp_path: Path) -> None:
    path = tmp_path / "nope.toml" if where == "missing" else tmp_path
    assert_one_line_error(rag_main("config", "--config", str(path)), "cannot read")


@pytest.mark.parametrize("value", ["5MB", "5 MiB", "800kB", "5242880"])
def test_sizes_as_people_write_them(value: str, rag_main: RagMain) -> None:
    run = rag_main("config", "--json", env={"RAG_MAX_NOTE_BYTES": value})
    assert run.code == 0 and run.err == ""


@pytest.mark.slow
@pytest.mark.parametrize("env", [{"RAG_CHUNK_TOKENS": "abc"}, {"RAG_RRF_K": "60.5x"}, {"RAG_MAX_NOTE_BYTES": "5XB"},
                                 {"RAG_LLM_TIMEOUT": "abc"}, {"RAG_BM25_WEIGHT": "nan"},
                                 {"RAG_EMBEDDERS": "nonexistent-model"}])
def test_bad_setting_in_a_real_process(env: dict[str, str], tmp_path: Path) -> None:
    """The same through the real command (`rag index`, which would embed): one line, exit 2."""
    assert_one_line_error(run_subprocess("index", env={**env, "RAG_CORPUS": str(tmp_path), "RAG_INDEX":
                                                          str(tmp_path / "index")}, cwd=tmp_path),
                          next(iter(env)))
