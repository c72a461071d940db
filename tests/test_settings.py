"""One validated settings tree: sources in order, one line per bad value, no secret ever shown (fast)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rag.settings import Settings, SettingsError, load_settings
from tests.battery import RagMain
from tests.conftest import RunRag


def test_sources_in_order_defaults_file_environment_flags(tmp_path: Path) -> None:
    toml = tmp_path / "rag.toml"
    toml.write_text('[index]\nchunk_tokens = 300\nembedders = ["use-m3"]\n[retrieval]\nrrf_k = 30\n'
                    '[answer]\nk = 4\n', encoding="utf-8")
    s = load_settings(toml, {"RAG_RRF_K": "45", "RAG_CORPUS": "/notes"}, {"index.corpus": Path("/flag")})
    assert s.index.chunk_tokens == 300 and s.index.embedders == ("use-m3",)
    assert s.retrieval.rrf_k == 45 and s.answer.k == 4
    assert s.index.corpus == Path("/flag")
    assert load_settings(None, {}).index.embedders == ("e5-onnx", "use-m3")


def test_sizes_lists_and_empty_embedders() -> None:
    s = load_settings(None, {"RAG_MAX_NOTE_BYTES": "2MiB", "RAG_EMBEDDERS": " use-m3 , hash "})
    assert s.index.max_note_bytes == 2 * 1024 * 1024 and s.index.embedders == ("use-m3", "hash")
    assert load_settings(None, {"RAG_EMBEDDERS": ""}).index.embedders == ()


@pytest.mark.parametrize("env, names", [
    ({"RAG_CHUNK_TOKENS": "abc"}, ("index.chunk_tokens", "RAG_CHUNK_TOKENS")),
    ({"RAG_RRF_K": "-5"}, ("retrieval.rrf_k", "RAG_RRF_K")),
    ({"RAG_BM25_WEIGHT": "nan"}, ("retrieval.bm25_weight", "RAG_BM25_WEIGHT")),
    ({"RAG_MAX_NOTE_BYTES": "5XB"}, ("index.max_note_bytes",)),
    ({"RAG_LLM_TIMEOUT": "abc"}, ("llm.timeout",)),
    ({"RAG_CHUNK_OVERLAP": "300"}, ("chunk_overlap",)),
    ({"GRADIO_SERVER_PORT": "99999"}, ("serve.port",)),
    ({"RAG_AUTH": "nopassword"}, ("serve.auth",)),
    ({"RAG_EMBEDDERS": "nonexistent-model"}, ("unknown embedder", "nonexistent-model")),
])
def test_bad_values_name_the_setting(env: dict[str, str], names: tuple[str, ...]) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(None, env)
    message = str(err.value)
    assert "\n" not in message
    assert all(n in message for n in names), message


def test_a_url_with_a_key_is_never_repeated() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(None, {"OPENAI_BASE_URL": "http://user:sk-SECRET@host:99999/v1"})
    assert "SECRET" not in str(err.value)
    s = load_settings(None, {"OPENAI_BASE_URL": "https://u:sk-SECRET@host:8443/v1?key=sk-SECRET",
                             "OPENAI_API_KEY": "sk-SECRET", "RAG_LLM_MODEL": "m"})
    assert "SECRET" not in repr(s) and "SECRET" not in json.dumps(s.public())
    assert s.llm.public_endpoint == "https://host:8443/v1"


def test_secrets_only_from_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "rag.toml"
    toml.write_text('[llm]\napi_key = "sk-in-a-file"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="environment"):
        load_settings(toml, {})


def test_malformed_file_and_unknown_setting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[index\nchunk_tokens = ", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad, {})
    bad.write_text("[index]\nchunk_size = 3\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"unknown setting 'index\.chunk_size'"):
        load_settings(bad, {})
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "missing.toml", {})


def test_updated_validates() -> None:
    s = Settings().updated({"retrieval.rrf_k": 10})
    assert s.retrieval.rrf_k == 10
    with pytest.raises(SettingsError):
        s.updated({"retrieval.rrf_k": 0})
    with pytest.raises(SettingsError):
        s.updated({"nope.x": 1})


@pytest.mark.parametrize("env, args", [
    ({"RAG_CHUNK_TOKENS": "abc"}, ["search", "x"]),
    ({"RAG_RRF_K": "-5"}, ["search", "x"]),
    ({"RAG_EMBEDDERS": "nonexistent-model"}, ["index"]),
    ({"OPENAI_BASE_URL": "http://h:notaport/v1"}, ["ask", "x"]),
    ({}, ["search", "x", "-k", "-1"]),
    ({}, ["search", "x", "--since", "yesterday"]),
    ({}, ["search", "   "]),
])
def test_cli_bad_input_is_one_line_exit_2(env: dict[str, str], args: list[str], rag_main: RagMain,
                                          tmp_path: Path) -> None:
    out = rag_main(*args, "--index", str(tmp_path / "idx"), env=env)
    assert out.code == 2, out.err
    assert out.out == "" and "Traceback" not in out.err
    assert len(out.err.strip().splitlines()) == 1, out.err


@pytest.mark.parametrize("env", [
    {"HF_ENDPOINT": "http://127.0.0.1:9"},  # a hub that cannot be reached (nothing listens on port 9)
    {"HF_HUB_OFFLINE": "1"},
], ids=["unreachable", "offline"])
def test_a_hub_model_that_cannot_be_downloaded_is_one_line_at_once(env: dict[str, str], run_rag: RunRag,
                                                                   tmp_path: Path) -> None:
    """Not a minute of "Retrying in 8s" lines first, as sentence-transformers alone gives offline."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "n.md").write_text("## Wombat\nWombats dig.\n", encoding="utf-8")
    env = {**env, "RAG_EMBEDDERS": "nobody/absent-model", "HF_HUB_CACHE": str(tmp_path / "hf")}
    started = time.monotonic()
    out = run_rag("index", "--corpus", str(tmp_path / "notes"), "--index", str(tmp_path / "idx"), cwd=tmp_path,
                  env=env)
    assert time.monotonic() - started < 60  # cold imports on a loaded machine; retrying took over 80 s
    assert out.returncode != 0 and "Traceback" not in out.stderr and "Retrying" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "nobody/absent-model is not in the local model cache and the hub cannot be reached" in out.stderr


def test_cli_malformed_rag_toml_in_the_working_directory(rag_main: RagMain, tmp_path: Path) -> None:
    (tmp_path / "cwd" / "rag.toml").write_text("this is = = not toml", encoding="utf-8")  # where rag_main runs
    out = rag_main("search", "x")
    assert out.code == 2 and len(out.err.strip().splitlines()) == 1
    assert "rag.toml is not valid TOML" in out.err


def test_rag_config_shows_effective_settings_never_the_key(run_rag: RunRag, tmp_path: Path) -> None:
    """A real process: the key must not leak by any path the command takes, output or error."""
    (tmp_path / "rag.toml").write_text("[retrieval]\nrrf_k = 20\n", encoding="utf-8")
    out = run_rag("config", "--json", cwd=tmp_path,
                  env={"OPENAI_API_KEY": "sk-SECRET", "RAG_LLM_MODEL": "m", "RAG_CANDIDATES": "50"})
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["retrieval"]["rrf_k"] == 20 and shown["retrieval"]["candidates"] == 50
    assert shown["llm"]["api_key"] == "(set)" and "SECRET" not in out.stdout + out.stderr
    text = run_rag("config", cwd=tmp_path, env={"OPENAI_API_KEY": "sk-SECRET"})
    assert "[retrieval]" in text.stdout and "rrf_k = 20.0" in text.stdout and "SECRET" not in text.stdout
