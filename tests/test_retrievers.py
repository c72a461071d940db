"""What the lexical retrievers send to BM25, with a recording stand-in for the index (fast)."""

from __future__ import annotations

import time

import numpy as np

from rag.retrieve.fields import FieldValues, asked_fields
from rag.retrieve.glossary import Glossary
from rag.retrieve.query import make_query
from rag.retrieve.retrievers import BM25Retriever, ExactRetriever
from rag.store import Lexicon
from rag.store.terms import Terms
from rag.text import lexical
from rag.text.dictionary import Dictionary
from tests.fake_bm25 import RecordingBM25


def test_exact_terms_keep_units_and_do_not_swallow_chinese() -> None:
    assert lexical.exact_terms("压到 20 倍和 40×压缩比下") == ["20×", "40×"]
    assert lexical.exact_terms("cut KV-cache memory by 80 %") == ["kv-cache", "kv", "cache", "80%"]


def test_a_name_and_its_version_written_apart_meet_the_name_written_together() -> None:
    """A question's GPT-2 finds a note's GPT2 and the other way round; Mamba-2 is also mamba2."""
    assert "gpt2" in lexical.tokenize("GPT-2 small") and lexical.tokenize("GPT2 small") == ["gpt2", "small"]
    assert "gpt2" in lexical.exact_terms("Which paper trains GPT-2 with a fifth of the compute?")
    assert "mamba2" in lexical.tokenize("Mamba-2") and "llama2" in lexical.tokenize("Llama-2-7B")
    assert lexical.tokenize("KV-cache") == ["kv-cache", "kv", "cache"]  # no version, nothing more


def test_exact_retriever_leaves_out_terms_too_common_to_single_an_entry_out() -> None:
    chunks = [["rl", "hysparse", "80%"]] + [["rl", f"w{i}"] for i in range(19)]
    bm25 = RecordingBM25(chunks)
    query = make_query("Which RL paper, HySparse, saves 80%?")
    ranking = ExactRetriever(bm25, Lexicon.of(Terms.of(chunks)), max_share=0.1).rank(query, 5)
    assert bm25.calls == [["hysparse", "80%"], ["rl"]] and ranking.ids.tolist() == [0]
    bm25.calls.clear()
    ExactRetriever(bm25, Lexicon.of(Terms.of(chunks)), max_share=1.0).rank(query, 5)
    assert bm25.calls == [["rl", "hysparse", "80%"]]


def test_a_common_name_counts_only_beside_a_rare_one() -> None:
    """"DeepSeek" in many notes pushes none of them alone, but of the entries that name the
    rare "Transformer" the one that also says DeepSeek comes first."""
    chunks = [["transformer", "vit"], ["deepseek", "transformer", "engram"]] + [["deepseek", f"w{i}"] for i in range(8)]
    chunks += [["x"]] * 30
    retriever = ExactRetriever(RecordingBM25(chunks), Lexicon.of(Terms.of(chunks)), max_share=0.1)
    assert retriever.rank(make_query("DeepSeek 对 Transformer 做了哪些改动"), 5).ids.tolist() == [1, 0]
    assert retriever.rank(make_query("DeepSeek 的新论文"), 5).ids.tolist() == []


def test_bm25_adds_the_glossary_translations_of_the_question() -> None:
    bm25 = RecordingBM25([["稀疏", "自动", "编码器"]])
    glossary = Glossary.mine(["稀疏自动编码器（SAE）"])
    query = make_query("SAE for speech")
    BM25Retriever(bm25, glossary).rank(query, 5)
    assert bm25.asked[:len(query.tokens)] == list(query.tokens)
    assert bm25.asked[len(query.tokens):] == list(glossary.expand(query.tokens)) and "编码器" in bm25.asked
    BM25Retriever(bm25).rank(query, 5)
    assert bm25.asked == list(query.tokens)


def test_the_parts_of_a_compound_name_count_only_together() -> None:
    chunks = [["self-forcing", "self", "forcing", "视频"], ["self", "improving"], ["kv", "cache"], ["cache", "hit"]]
    chunks += [["x"]] * 40
    retriever = ExactRetriever(RecordingBM25(chunks), Lexicon.of(Terms.of(chunks)), max_share=0.05)
    assert retriever.rank(make_query("Self-Forcing 出现在哪些条目"), 5).ids.tolist() == [0]
    assert retriever.rank(make_query("cut KV-cache memory"), 5).ids.tolist() == [2]  # written apart


def test_exact_retriever_ranks_what_the_question_names_in_either_language() -> None:
    chunks = [["小米", "judge", "rlvr"], ["honesty", "rlvr"], ["阿里", "agent"], ["google", "veo3"], ["video"]]
    chunks += [["rlvr"]] * 2 + [["x"]] * 40
    cedict = Dictionary.parse(["小米 小米 [Xiao3 mi3] /Xiaomi, Chinese electronics company/",
                               "阿里 阿里 [A1 li3] /Ali (proper name)/"])
    bm25 = RecordingBM25(chunks)
    retriever = ExactRetriever(bm25, Lexicon.of(Terms.of(chunks)), max_share=0.05, dictionary=cedict)
    assert retriever.rank(make_query("Which Xiaomi paper judges first in RLVR?"), 5).ids.tolist() == [0]
    assert bm25.calls[-2:] == [["小米"], ["rlvr"]]  # "xiaomi": not in the notes; "rlvr": in 3 of 47 chunks,
    # too common to rank on its own, so it only orders the chunks that say 小米
    assert retriever.rank(make_query("阿里那套智能体框架"), 5).ids.tolist() == [2]
    assert retriever.rank(make_query("Which Google paper says video models learn zero-shot?"), 5).ids.tolist() == [3]
    plain = ExactRetriever(bm25, Lexicon.of(Terms.of(chunks)))
    assert plain.rank(make_query("阿里那套智能体框架"), 5).ids.tolist() == []


def test_exact_retriever_does_not_rank_a_notes_intro_for_the_reports_name() -> None:
    chunks = [["hugging", "face", "daily", "papers", "report"], ["audiosae", "features", "seed"]] + [["x"]] * 40
    items = np.array([False] + [True] * (len(chunks) - 1))
    query = make_query("In the Hugging Face report, which paper matched AudioSAE features across seeds?")
    everything = ExactRetriever(RecordingBM25(chunks), Lexicon.of(Terms.of(chunks)), max_share=0.05)
    assert everything.rank(query, 5).ids.tolist() == [0, 1]
    only_items = ExactRetriever(RecordingBM25(chunks), Lexicon.of(Terms.of(chunks)), max_share=0.05, eligible=items)
    assert only_items.rank(query, 5).ids.tolist() == [1]
    assert only_items.rank(query, 5, allowed=np.array([True, False] + [True] * 40)).ids.tolist() == []


def test_an_acronym_finds_the_entry_whose_title_spells_it_out() -> None:
    """"our DPO runs" is about the entry titled "Direct Preference Optimization: …" that never writes
    DPO, as much as about a poster that mentions DPO; a subtitle's words name no paper (VLM)."""
    chunks = [["direct", "preference", "optimization", "β", "0.1"], ["poster", "dpo", "watermark"],
              ["flamingo", "visual", "language", "model"]] + [["x"]] * 40
    titles = ["Direct Preference Optimization: Your Language Model is Secretly a Reward Model", "Poster #388",
              "Flamingo: a Visual Language Model for Few-Shot Learning"] + ["x"] * 40
    retriever = ExactRetriever(RecordingBM25(chunks), Lexicon.of(Terms.of(chunks)), max_share=0.05,
                               titles=titles, chunk_entry=np.arange(len(chunks)))
    assert sorted(retriever.rank(make_query("What β did we use for our DPO runs?"), 5).ids.tolist()) == [0, 1]
    assert retriever.rank(make_query("Which VLM froze its LLM?"), 5).ids.tolist() == []
    plain = ExactRetriever(RecordingBM25(chunks), Lexicon.of(Terms.of(chunks)), max_share=0.05)
    assert plain.rank(make_query("What β did we use for our DPO runs?"), 5).ids.tolist() == [1]


def test_entries_whose_fields_hold_a_value_the_question_writes_whole_rank_first() -> None:
    """"Which papers are NeurIPS 2023" finds the entries whose venue says so, though their text never
    does; a tag, a value most entries share, "reading list" for the state READING, or "2023" inside
    "20231" find nothing."""
    properties = [(("venue", "NeurIPS 2023"), ("tags", "agents")), (("venue", "ICLR 2023"), ("status", "READING")),
                  (("venue", "NeurIPS 2023"), ("tags", "agents"), ("status", "DONE"))] + [(("status", "DONE"),)] * 5
    fields = FieldValues(properties)
    assert fields.matches("Which papers are NeurIPS 2023?", lexical.tokenize("Which papers are NeurIPS 2023?")) == {
        0: {"venue": "neurips 2023"}, 2: {"venue": "neurips 2023"}}
    for question in ("Which agents papers?", "Which are DONE?", "my reading list", "NeurIPS 20231", "状态是 reading"):
        assert not fields.matches(question, lexical.tokenize(question)), question
    assert fields.matches("状态是 READING 的", lexical.tokenize("状态是 READING 的")) == {1: {"status": "READING"}}
    orgs = FieldValues([(("org", "Microsoft"),), (("status", "reading"),)] + [(("status", "done"),)] * 6)
    for question in ("the Microsoft model that clones a voice", "in my reading list"):  # a plain word alone
        assert not orgs.matches(question, lexical.tokenize(question)), question
    status = "which papers is my status reading?"
    assert orgs.matches(status, lexical.tokenize(status)) == {1: {"status": "reading"}}  # asked for by its field
    chunks = [["toolformer", "api"], ["react", "thought"], ["reflexion", "memory"]] + [[f"w{i}"] for i in range(5)]
    exact = ExactRetriever(RecordingBM25(chunks), Lexicon.of(Terms.of(chunks)), chunk_entry=np.arange(8),
                           fields=fields)
    assert exact.rank(make_query("Which papers are NeurIPS 2023?"), 5).ids.tolist() == [0, 2]


def test_a_question_asks_for_a_field_by_the_words_people_use() -> None:
    """"who are its authors", "我标的状态", "发在哪个会议" ask for fields; "作者是怎么解释", "参数更新"
    and "偏好标签" ask about the paper."""
    asked = {"The RL paper with the clipped objective: who are its authors?": "authors",
             "我给 LoRA 那篇笔记设的 status 标的是什么？": "status", "KTO 最后发在哪个会议？": "venue",
             "那篇是哪一年的？": "year", "MOC 页是哪天建的？": "created", "最近一次更新是什么时候？": "updated"}
    for question, key in asked.items():
        assert key in asked_fields(question), question
    for question in ("作者是怎么解释这个现象的？", "PPO 怎么限制参数更新的幅度？", "偏好标签是谁给的？"):
        assert not asked_fields(question), question


def test_field_values_of_many_entries_are_matched_in_a_few_milliseconds() -> None:
    """A venue shared by hundreds of entries ("Conf 12 …") costs a set test per value, not a pattern
    (a pattern per value took 108 ms a question on 100 000 entries)."""
    properties = [(("venue", f"Conf {i % 300} {2015 + i % 11}"), ("authors", f"Author{i} X, Author{i + 1} Y"))
                  for i in range(20_000)]
    fields = FieldValues(properties)
    question = "Which papers are Conf 12 2023 by Author123 X?"
    started = time.perf_counter()
    for _ in range(10):
        found = fields.matches(question, lexical.tokenize(question))
    assert (time.perf_counter() - started) / 10 < 0.02 and 123 in found
