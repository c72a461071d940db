"""Retrieval and the `rag search` contract, on the real notes with the real models (slow) and on tiny
corpora with the model-free embedder (fast)."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from rag.answer.answer import collect
from rag.build.builder import build_index
from rag.contract import AskRequest, HitOut
from rag.embed.models import Models
from rag.retrieve.searcher import Filters, Searcher
from rag.retrieve.why import holds
from rag.service import Notes
from rag.store import open_store
from rag.text.lexical import tokenize
from tests.battery import RagMain
from tests.conftest import CORPUS, RunRag

#: The contract's fields (../shared/docs/cli.md) in order, then the ones added since (front matter, why).
HIT_KEYS = ["rank", "score", "file", "path", "title", "line_start", "line_end", "url", "date", "snippet",
            "tags", "aliases", "authors", "context", "properties", "why"]


def test_tokenizer_keeps_technical_terms_and_cuts_chinese() -> None:
    tokens = tokenize("KV-cache 显存直降 80%，GRPO 4-bit 2601.16725 原子专家")
    for t in ["kv-cache", "kv", "cache", "80%", "80", "grpo", "4-bit", "2601.16725", "显存", "专家"]:
        assert t in tokens
    assert "的" not in tokenize("模型的能力")
    # "how many" asks as 多少 does: neither is a term to match ("训练不足——参数太多" is no answer)
    assert tokenize("How many parameters, how much data?") == ["parameters", "data"]


@pytest.mark.slow
@pytest.mark.parametrize("question, title_part", [
    ("which paper cut KV-cache memory by 80%?", "HySparse"),
    ("哪篇工作把 MoE 专家拆成原子专家?", "OmniMoE"),
    ("Whisper 的幻觉怎么用稀疏自编码器抑制", "AudioSAE"),
])
def test_hybrid_finds_the_paper(real_searcher: Searcher, question: str, title_part: str) -> None:
    hits = real_searcher.search(question, k=5).hits
    assert title_part in hits[0].entry.title
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in pairwise(hits))


@pytest.mark.slow
def test_hits_carry_per_retriever_standing_and_chunk_similarities(real_searcher: Searcher) -> None:
    result = real_searcher.search("哪篇工作把 MoE 专家拆成原子专家?", k=3)
    top = result.hits[0]
    # "moe" is in over 5 % of the chunks: too common for the exact-match ranking to vote
    assert set(top.sources) == {"bm25", "e5-onnx", "use-m3"}
    numbers = real_searcher.search("which paper cut KV-cache memory by 80%?", k=1).hits[0]
    assert "exact" in numbers.sources and numbers.sources["exact"].rank == 1
    assert all(s.rank >= 1 for s in top.sources.values())
    assert top.sources["e5-onnx"].score > 0.7  # a raw cosine, not a fused rank score
    assert top.chunks and all(set(c.similarity) == {"e5-onnx", "use-m3"} for c in top.chunks)
    best = max(c.similarity["e5-onnx"] for c in top.chunks)
    assert best == pytest.approx(top.sources["e5-onnx"].score, abs=1e-4)
    assert result.query.tokens and set(result.query.vectors) == {"e5-onnx", "use-m3"}
    weights = result.term_weights()
    assert weights["原子"] > weights["专家"]  # rarer in the notes, weighs more


@pytest.mark.slow
def test_a_covered_question_has_an_e5_chunk_that_stands_out_and_an_uncovered_one_does_not(
        real_searcher: Searcher) -> None:
    covered = real_searcher.search("哪篇工作把 MoE 专家拆成原子专家?", k=3).standout
    uncovered = real_searcher.search("联邦学习里多家医院怎么在不共享数据的前提下联合微调大模型？", k=3).standout
    assert set(covered) == set(uncovered) == {"e5-onnx", "use-m3"}
    assert covered["e5-onnx"] > 3 > 2.25 > uncovered["e5-onnx"]  # the registry's calibration sits between


@pytest.mark.slow
def test_filters(real_searcher: Searcher) -> None:
    hits = real_searcher.search("GRPO", k=10, filters=Filters(file_glob="001_*")).hits
    assert hits and all(h.entry.file.startswith("001_") for h in hits)
    hits = real_searcher.search("video generation", k=10, filters=Filters(since="2026-01-13", until="2026-01-21")).hits
    assert hits and all("2026-01-13" <= h.entry.date <= "2026-01-21" for h in hits)
    assert real_searcher.search("GRPO", filters=Filters(file_glob="nope*")).hits == []


@pytest.mark.slow
def test_single_retrievers_selectable(real_searcher: Searcher) -> None:
    assert set(real_searcher.sources) == {"bm25", "e5-onnx", "use-m3", "exact", "translated"}
    for source in real_searcher.sources:
        assert real_searcher.search("OmniMoE atomic experts", k=3, sources=(source,)).hits
    with pytest.raises(ValueError):
        real_searcher.search("x", sources=("nope",))


@pytest.mark.slow
def test_search_json_shape(real_settings, run_rag: RunRag) -> None:
    out = run_rag("search", "Seer 的分段 rollout 是怎么做的", "--json", "-k", "3",
                  "--corpus", str(CORPUS), "--index", str(real_settings.index.path))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert list(data) == ["question", "hits", "partial"] and data["partial"] == []  # a complete index
    assert len(data["hits"]) == 3
    top = data["hits"][0]
    assert list(top) == HIT_KEYS
    assert (top["file"], top["title"], top["line_start"], top["line_end"]) == (
        "003_30331a2e628cd170.txt", "Seer", 460, 529)
    assert top["date"] is None and top["url"] == "https://arxiv.org/abs/2511.14617"
    assert Path(top["path"]) == CORPUS / top["file"]


def test_search_batch_keeps_order_and_ids(make_corpus, rag_main: RagMain, tmp_path: Path) -> None:
    settings = make_corpus({"n.md": "## HySparse\nKV Cache 显存直降 80%\n\n## OmniMoE\n原子专家 路由\n"})
    env = {"RAG_CORPUS": str(settings.index.corpus), "RAG_INDEX": str(settings.index.path), "RAG_EMBEDDERS": "hash"}
    assert rag_main("index", env=env).code == 0
    batch = tmp_path / "q.jsonl"
    rows = [{"id": "b", "question": "HySparse KV Cache"}, {"id": 7, "question": "原子专家"}]
    batch.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    out = rag_main("search", "--batch", str(batch), "--json", "-k", "2", env=env)
    assert out.code == 0, out.err
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert [(x["id"], x["question"]) for x in lines] == [("b", "HySparse KV Cache"), (7, "原子专家")]
    assert [x["hits"][0]["title"] for x in lines] == ["HySparse", "OmniMoE"]
    assert all(len(x["hits"]) == 2 and list(x["hits"][0]) == HIT_KEYS for x in lines)


def test_each_hit_says_which_retrievers_ranked_it_and_which_exact_terms_it_holds(make_corpus,
                                                                                models: Models) -> None:
    settings = make_corpus({"n.md": "## HySparse\nKV-cache 显存直降 80%，GRPO-style 训练\n\n"
                                    "## OmniMoE\n原子专家 路由 KV cache\n\n"
                                    + "".join(f"## Filler {c}\n无关 内容 {c}\n\n" for c in "abcdefghijklmnopqrst")})
    build_index(settings.index, open_store(settings), models)
    searcher = Searcher(open_store(settings).load(), settings.retrieval, settings.index.corpus, models)
    hits = searcher.search("Which paper cut KV-cache by 80% with GRPO-style RL?", k=3).hits
    top, second = HitOut.of(hits[0]).model_dump()["why"], HitOut.of(hits[1]).model_dump()["why"]
    assert hits[0].entry.title == "HySparse"
    assert top["matched"] == ["KV-cache", "80%", "GRPO-style"]  # as written, in question order, not "kv"
    assert top["ranks"]["bm25"] == 1 and top["ranks"]["exact"] == 1 and "hash" in top["ranks"]
    assert list(top["ranks"].values()) == sorted(top["ranks"].values())  # best rank first
    assert hits[1].entry.title == "OmniMoE" and second["matched"] == ["KV-cache"]  # its "KV cache" has both parts
    assert second["ranks"]["bm25"] == 2
    assert {n: s.rank for n, s in hits[1].sources.items()} == second["ranks"]  # fusion's own ranks


def test_an_exact_term_matches_as_a_whole_word_or_as_chinese_anywhere() -> None:
    text = "hysparse 把 kv cache 显存直降 180%，kvm 里 grpo-style"
    assert [holds(text, t) for t in ("kv", "cache", "显存", "grpo", "grpo-style")] == [True] * 5
    assert [holds(text, t) for t in ("80%", "kvm2", "sparse", "直升")] == [False] * 4


def test_missing_index_is_one_clear_line(tmp_path: Path, run_rag: RunRag) -> None:
    out = run_rag("search", "anything", "--index", str(tmp_path / "none"), "--corpus", str(CORPUS))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "rag index" in out.stderr


def test_settings_change_forces_full_rebuild(make_corpus, models: Models) -> None:
    settings = make_corpus({"a.md": "## Alpha\nattention sinks in streaming\n\n## Beta\nspeculative decoding\n"})
    store = open_store(settings)
    first = build_index(settings.index, store, models)
    assert first.added == ["a.md"] and first.full_rebuild_reason is None
    assert build_index(settings.index, store, models).up_to_date
    changed = settings.updated({"index.chunk_tokens": 128})
    report = build_index(changed.index, open_store(changed), models)
    assert report.full_rebuild_reason and "chunk_tokens" in report.full_rebuild_reason
    index = open_store(changed).load()
    assert index.manifest.fingerprint["chunk_tokens"] == 128
    hits = Searcher(index, changed.retrieval, changed.index.corpus, models).search("speculative decoding", k=1).hits
    assert hits[0].entry.title == "Beta"


def test_lexical_only_index_works(make_corpus, models: Models) -> None:
    settings = make_corpus({"n.md": "## KV\nKV cache 压缩\n\n## MoE\n原子专家 路由\n"}, embedders=())
    build_index(settings.index, open_store(settings), models)
    searcher = Searcher(open_store(settings).load(), settings.retrieval, settings.index.corpus, models)
    assert searcher.sources == ("bm25", "exact", "translated")
    assert searcher.search("原子专家", k=1).hits[0].entry.title == "MoE"


def test_standout_is_the_best_chunk_against_the_questions_similarity_to_all_notes(make_corpus,
                                                                                  models: Models) -> None:
    notes = {f"n{i}.md": f"# N{i}\n\n## Paper {i}\n\nQuokka wombat trick number {i} with kangaroo.\n"
             for i in range(12)}
    settings = make_corpus(notes)
    build_index(settings.index, open_store(settings), models)
    index = open_store(settings).load()
    searcher = Searcher(index, settings.retrieval, settings.index.corpus, models)
    result = searcher.search("quokka wombat trick number 3", k=3)
    sims = index.dense["hash"].vectors(np.arange(len(index.chunks))) @ result.query.vectors["hash"]
    assert result.standout["hash"] == pytest.approx((sims.max() - sims.mean()) / sims.std(), rel=1e-4)
    assert "hash" not in searcher.search("quokka", k=3, sources=["bm25"]).standout  # not asked, not measured


def test_search_says_when_the_index_no_longer_fits_the_settings(make_corpus, rag_main) -> None:
    """An index built with other settings (or by an older tokenizer, after an upgrade) still answers,
    but `rag search` says so on stderr, once, with the fix; stdout stays the results."""
    settings = make_corpus({"n.md": "## KV\nKV cache 压缩\n"})
    env = {"RAG_CORPUS": str(settings.index.corpus), "RAG_INDEX": str(settings.index.path), "RAG_EMBEDDERS": "hash"}
    assert rag_main("index", env=env).code == 0
    fresh = rag_main("search", "KV cache", "--json", env=env)
    assert fresh.code == 0 and fresh.err == ""
    changed = rag_main("search", "KV cache", "--json", env={**env, "RAG_CHUNK_TOKENS": "64"})
    assert changed.code == 0 and json.loads(changed.out)["hits"][0]["title"] == "KV"
    assert changed.err.count("\n") == 1 and "index settings changed (chunk_tokens)" in changed.err
    assert "run `rag index`" in changed.err


def test_the_app_rebuilds_an_index_that_no_longer_fits_before_serving(make_corpus, models: Models,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.app import web
    from rag.service import Notes

    settings = make_corpus({"n.md": "## KV\nKV cache 压缩\n"})
    build_index(settings.index, open_store(settings), models)
    changed = settings.updated({"index.chunk_tokens": 64})
    assert Notes(changed, models).stale() == "index settings changed (chunk_tokens)"
    monkeypatch.setattr(web, "launch", lambda *_: None)
    monkeypatch.setattr(web, "Notes", lambda s: Notes(s, models))
    web.serve(changed)
    assert Notes(changed, models).stale() is None and open_store(changed).manifest().fingerprint["chunk_tokens"] == 64


def test_entries_whose_fields_hold_the_asked_value_are_found_said_and_listed(make_corpus, models: Models) -> None:
    """"Which papers are NeurIPS 2023?": the entries whose venue says so rank first, say why
    ("exact: venue: NeurIPS 2023"), and each is listed in the offline answer with that field."""
    settings = make_corpus({"j.md": "- Toolformer\n  venue:: NeurIPS 2023\n  - API calls\n"
                                    "- ReAct\n  venue:: ICLR 2023\n  - reason and act\n"
                                    "- Reflexion\n  venue:: NeurIPS 2023\n  - verbal feedback\n"
                            + "".join(f"- Filler {c}\n  venue:: Venue {c}\n  - 无关 内容 {c}\n" for c in "abcdefgh")})
    build_index(settings.index, open_store(settings), models)
    notes = Notes(settings, models)
    hits = notes.searcher().search("Which papers are NeurIPS 2023?", k=6).hits
    assert {h.entry.title for h in hits[:2]} == {"Toolformer", "Reflexion"}
    assert hits[0].why.fields == {"venue": "NeurIPS 2023"} and hits[0].why.line().endswith("exact: venue: NeurIPS 2023")
    assert HitOut.of(hits[0]).model_dump()["why"]["fields"] == {"venue": "NeurIPS 2023"}
    answer = collect(notes.ask(AskRequest(question="Which papers are NeurIPS 2023?", k=6)))
    assert "Toolformer" in answer.text and "Reflexion" in answer.text and "ReAct" not in answer.text
