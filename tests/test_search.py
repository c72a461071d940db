"""Retrieval and the `rag search` contract on the real notes and real indexes."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from rag.config import Config
from rag.index import Index, build_index
from rag.lexical import tokenize
from rag.retrieve import Filters, Retriever
from tests.conftest import CORPUS, ROOT

HIT_KEYS = ["rank", "score", "file", "path", "title", "line_start", "line_end", "url", "date", "snippet"]


def rag(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_tokenizer_keeps_technical_terms_and_cuts_chinese() -> None:
    tokens = tokenize("KV-cache 显存直降 80%，GRPO 4-bit 2601.16725 原子专家")
    for t in ["kv-cache", "kv", "cache", "80%", "80", "grpo", "4-bit", "2601.16725", "显存", "专家"]:
        assert t in tokens
    assert "的" not in tokenize("模型的能力")


@pytest.mark.parametrize("question, title_part", [
    ("which paper cut KV-cache memory by 80%?", "HySparse"),
    ("哪篇工作把 MoE 专家拆成原子专家?", "OmniMoE"),
    ("Whisper 的幻觉怎么用稀疏自编码器抑制", "AudioSAE"),
])
def test_hybrid_finds_the_paper(real_retriever: Retriever, question: str, title_part: str) -> None:
    hits = real_retriever.search(question, k=5)
    assert title_part in hits[0].entry.title
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in pairwise(hits))


def test_filters(real_retriever: Retriever) -> None:
    hits = real_retriever.search("GRPO", k=10, filters=Filters(file_glob="001_*"))
    assert hits and all(h.entry.file.startswith("001_") for h in hits)
    hits = real_retriever.search("video generation", k=10, filters=Filters(since="2026-01-13", until="2026-01-21"))
    assert hits and all("2026-01-13" <= h.entry.date <= "2026-01-21" for h in hits)
    assert real_retriever.search("GRPO", filters=Filters(file_glob="nope*")) == []


def test_single_retrievers_selectable(real_retriever: Retriever) -> None:
    assert set(real_retriever.sources) == {"bm25", "e5-small-q4", "use-m3"}
    for source in real_retriever.sources:
        assert real_retriever.search("OmniMoE atomic experts", k=3, sources=(source,))
    with pytest.raises(ValueError):
        real_retriever.search("x", sources=("nope",))


def test_search_json_shape(real_config: Config) -> None:
    out = rag("search", "Seer 的分段 rollout 是怎么做的", "--json", "-k", "3",
              "--corpus", str(CORPUS), "--index", str(real_config.index))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert list(data) == ["question", "hits"]
    assert len(data["hits"]) == 3
    top = data["hits"][0]
    assert list(top) == HIT_KEYS
    assert (top["file"], top["title"], top["line_start"], top["line_end"]) == (
        "003_30331a2e628cd170.txt", "Seer", 460, 529)
    assert top["date"] is None and top["url"] == "https://arxiv.org/abs/2511.14617"
    assert Path(top["path"]) == CORPUS / top["file"]


def test_search_batch_keeps_order_and_ids(real_config: Config, tmp_path: Path) -> None:
    batch = tmp_path / "q.jsonl"
    rows = [{"id": "b", "question": "HySparse KV Cache"}, {"id": 7, "question": "原子专家"}]
    batch.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    out = rag("search", "--batch", str(batch), "--json", "-k", "2",
              "--corpus", str(CORPUS), "--index", str(real_config.index))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(x["id"], x["question"]) for x in lines] == [("b", "HySparse KV Cache"), (7, "原子专家")]
    assert all(len(x["hits"]) == 2 and list(x["hits"][0]) == HIT_KEYS for x in lines)


def test_missing_index_is_one_clear_line(tmp_path: Path) -> None:
    out = rag("search", "anything", "--index", str(tmp_path / "none"), "--corpus", str(CORPUS))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "rag index" in out.stderr


def test_settings_change_forces_full_rebuild(make_corpus, capsys) -> None:
    config = make_corpus({"a.md": "## Alpha\nattention sinks in streaming\n\n## Beta\nspeculative decoding\n"})
    first = build_index(config)
    assert first.added == ["a.md"] and first.full_rebuild_reason is None
    assert build_index(config).up_to_date
    changed = config.with_(chunk_tokens=128)
    report = build_index(changed)
    assert report.full_rebuild_reason and "chunk_tokens" in report.full_rebuild_reason
    assert "rebuilding the whole index" in capsys.readouterr().err
    index = Index.load(changed.index)
    assert index.manifest["settings"]["chunk_tokens"] == 128
    hits = Retriever(index, changed).search("speculative decoding", k=1)
    assert hits[0].entry.title == "Beta"


def test_lexical_only_index_works(make_corpus) -> None:
    config = make_corpus({"n.md": "## KV\nKV cache 压缩\n\n## MoE\n原子专家 路由\n"}, embedders=())
    build_index(config)
    retriever = Retriever(Index.load(config.index), config)
    assert retriever.sources == ("bm25",)
    assert retriever.search("原子专家", k=1)[0].entry.title == "MoE"
