"""What an offline answer calls an entry's paper, and what it takes a question to ask (fast tier)."""

from __future__ import annotations

import time

import pytest

from rag.answer.intent import Intent, asks_quantity, intent_of
from rag.answer.paper_name import called, introduced_name, name_spans, short_name
from rag.ingest.notes import Entry


def entry(title: str, body: str, aliases: tuple[str, ...] = ()) -> Entry:
    text = f"{title}\n{body}"
    return Entry(file="n.md", title=title, line_start=1, line_end=text.count("\n") + 1, url=None, date=None,
                 text=text, aliases=aliases)


@pytest.mark.parametrize(("title", "body", "name"), [
    # an acronym after the words it abbreviates, when the title holds those words
    ("Self-Improving Multilingual Reasoning via Translation-Reasoning Integrated Training",
     "# Translation-Reasoning Integrated Training (TRIT) 论文报告\n提出了一种自改进框架。", "TRIT"),
    # an acronym spelled out inside the parentheses, right after "名为"
    ("Judging What We Cannot Solve: A Consequence-Based Approach",
     "提出了一种名为“基于后果的效用”（Consequence-Based Utility, CBU）的评估方法。", "CBU"),
    ("开源模型 IOI金牌", "1. 本文提出了GENCLUSTER，一个可扩展的测试时计算框架。", "GENCLUSTER"),
    ("Learning Transferable Visual Models From Natural Language Supervision",
     "OpenAI 的 CLIP。从网上收集 4 亿对 (image, text)。", "CLIP"),
    ("2025-04-22 赵六：DeepSeek-R1 与 GRPO", "**DeepSeekMath**（Shao et al. · 2024）\n- 先讲 GRPO 的出处",
     "DeepSeekMath"),
    # words written right after Chinese
    ("Virtual Width Networks", "本文提出了Virtual Width Networks (VWN)框架。", "VWN"),
    # a chat thread titled by its first post, its handle first; the paper is the one a reply cites
    ("kevin.zhang: serving q: why is vLLM so much faster than HF generate?",
     "lin.yu: read the PagedAttention paper (Kwon et al., SOSP 2023). KV cache lives in blocks. vLLM wins",
     "PagedAttention"),
])
def test_the_name_a_note_introduces_is_the_papers(title: str, body: str, name: str) -> None:
    assert short_name(entry(title, body), "which paper is it?", None) == name


@pytest.mark.parametrize(("title", "body"), [
    # a term the entry defines is not the paper's name
    ("Back to Basics: Revisiting Exploration",
     "在 Reinforcement Learning with Verifiable Rewards (RLVR) 中，熵会塌缩。"),
    # affiliations on the opening line are no name
    ("Generative Agents: Interactive Simulacra", "Stanford + Google。沙盒小镇 Smallville"),
    # "called" must be followed by a capitalised word
    ("A study of decoding", "this is what is called paper review. Nothing else."),
    # a dataset the paper introduces is not the paper
    ("Locating and Editing Factual Associations in GPT", "rank-one editing; introduces the CounterFact dataset"),
])
def test_what_is_not_an_introduction(title: str, body: str) -> None:
    assert introduced_name(entry(title, body)) is None


def test_a_title_that_leads_with_a_name_needs_none_and_the_question_never_gets_its_own_back() -> None:
    hysparse = entry("[小米] HySparse：混合稀疏注意力", "本文提出了 HySparse 与 GENCLUSTER。")
    assert short_name(hysparse, "?", None) is None
    cbu = entry("Judging What We Cannot Solve", "名为（Consequence-Based Utility, CBU）的方法。")
    assert short_name(cbu, "How does CBU judge a solution?", None) is None
    flash = entry("Fast attention on GPUs", "名为 FlashAttention 的方法。", aliases=("FA1",))
    assert short_name(flash, "?", None) == "FA1"


def test_a_name_with_its_citation_is_the_papers_name_but_a_full_title_with_its_venue_is_not() -> None:
    """Third-hand notes (eval/third) title entries "DPO（Rafailov et al., 2023）": no other name is
    put in front of it; "Robust Speech Recognition … (ICML 2023)" still gets its short name."""
    body = "RL 之前要先训一个奖励模型 (RM)，再用 PPO。PPO 很不稳定，PPO 调参难。"
    for title in ("DPO（Rafailov et al., Stanford, 2023）", "Constitutional AI（Bai et al., Anthropic, 2022）"):
        assert short_name(entry(title, body), "?", None) is None
    whisper = entry("Robust Speech Recognition via Large-Scale Weak Supervision (ICML 2023)",
                    "OpenAI 的 Whisper。68 万小时弱监督音频。")
    assert short_name(whisper, "?", None) == "Whisper"


@pytest.mark.parametrize(("question", "intent"), [
    ("Which entries in my notes use sparse autoencoders?", Intent.LIST),
    ("笔记里出现过哪几个 LongCat 系列的模型？分别是干什么的？", Intent.LIST),
    ("Which paper made reasoning-model inference 5.8× faster?", Intent.NAME),
    ("换一种数值精度格式就能解决训推不一致，是哪篇？", Intent.NAME),
    ("LongCat 的异步 RL 基建最多能支持多少个环境同时并发？", Intent.QUANTITY),
    ("How does MSign keep LLM pretraining from blowing up?", Intent.EXPLAIN),
    ("DPO 为什么不需要单独训练一个 reward model？", Intent.EXPLAIN),
    ("Tell me about GRPO.", Intent.OTHER),
    # a third hand's which-paper questions, worded every other way
    ("Which language model retrieves nearest-neighbour text for every chunk of its input?", Intent.NAME),
    ("Which optimizer resets the attention projections?", Intent.NAME),
    ("哪个检索模型把查询和文档都编码成每个词一个向量？", Intent.NAME),
    ("Is there a paper claiming that ViT finetuning needs smooth components?", Intent.NAME),
    ("What's the agent that plays a block-building sandbox game?", Intent.NAME),
    ("那篇 ASR 的 paper，用几十万小时弱监督音频的，叫啥？", Intent.NAME),
    ("Which RL training systems in the notes speed up rollouts?", Intent.LIST),
    # a measured thing named in a "how does" question is its subject; asked for outright, its answer
    ("How does FlashAttention get its speedup without approximating attention?", Intent.EXPLAIN),
    ("What speedup does FlashAttention get on GPT-2?", Intent.QUANTITY),
    ("FlashAttention 快了多少，又是怎么做到的？", Intent.QUANTITY),
])
def test_what_a_question_asks_for(question: str, intent: Intent) -> None:
    assert intent_of(question) is intent


def test_a_number_is_asked_for_whatever_else_is() -> None:
    assert asks_quantity("Which paper cut KV-cache memory, and by how much?")
    assert not asks_quantity("Which paper cut KV-cache memory?")
    assert asks_quantity("Which paper reports the best MMLU accuracy?")
    assert not asks_quantity("Why does the accuracy drop when the window slides?")


@pytest.mark.parametrize(("title", "names"), [
    ("Flamingo: a Visual Language Model for Few-Shot Learning", {"flamingo"}),
    ("Voyager", {"voyager"}),
    ("Visual Instruction Tuning (LLaVA)", {"visual instruction tuning", "llava"}),
    ("Chain-of-Thought Prompting Elicits Reasoning in Large Language Models", {"chain of thought"}),
    ("MT-Bench & Chatbot Arena: Judging LLM-as-a-Judge", {"mt bench", "chatbot arena"}),
    ("MQA 与 GQA：压缩 KV head", {"mqa", "gqa"}),
    ("[小米] HySparse：混合稀疏注意力", {"hysparse"}),
    ("vLLM / PagedAttention (Kwon et al., SOSP 2023)", {"vllm", "pagedattention"}),
    ("Learning Transferable Visual Models From Natural Language", set()),  # a sentence, no name
    ("2024-11-18 — Robust Speech Recognition (ICML 2023)", set()),  # a date and a venue
    ("为什么看这一组", set()),
])
def test_what_a_title_calls_its_subject(title: str, names: set[str]) -> None:
    assert called(entry(title, "x")) == names


def test_a_title_is_called_by_its_initials_where_the_note_writes_them() -> None:
    """"CoT、Self-Consistency、ToT 各自…" names three entries of a reading queue."""
    cot = entry("Chain-of-Thought Prompting Elicits Reasoning", "PaLM 540B + CoT 在 GSM8K 上 SOTA")
    assert called(cot) == {"chain of thought", "cot"}
    tot = entry("Tree of Thoughts: Deliberate Problem Solving", "Game of 24：GPT-4 只有 4%，ToT 74%")
    assert called(tot) == {"tree of thoughts", "tot"}
    llava = entry("Visual Instruction Tuning (LLaVA)", "GPT-4 wrote 158K samples")
    assert called(llava) == {"visual instruction tuning", "llava"}  # never "vit": the note does not write it
    assert name_spans("CoT、Self-Consistency、ToT 各自的核心做法", tot) == [(21, 24)]


def test_where_a_question_names_an_entry() -> None:
    question = "MQA/GQA 和 PagedAttention 的出发点有什么不同？"
    assert name_spans(question, entry("MQA 与 GQA：压缩 KV head", "x")) == [(0, 3), (4, 7)]
    assert name_spans(question, entry("Self-Consistency Improves Chain of Thought", "x")) == []
    assert name_spans("How does self-consistency vote?", entry("Self-Consistency Improves CoT", "x")) == [(9, 25)]


def test_a_papers_title_line_or_its_project_link_names_it() -> None:
    """"## TiDR 5" over "TiDAR: Think in Diffusion, Talk in Autoregression" is TiDAR's entry, one over
    "First Try Matters: Revisiting …" that paper's; an
    entry titled by a sentence is named by its project page as a last resort."""
    tidar = entry("TiDR 5", "TiDAR: Think in Diffusion, Talk in Autoregression\n英伟达的混合架构。")
    assert short_name(tidar, "英伟达那个混合架构叫什么？", None) == "TiDAR"
    assert short_name(tidar, "TiDAR 快多少？", None) is None  # the question holds it already
    reflection = entry("反思：多数是确认", "First Try Matters: Revisiting the Role of Reflection\n反思大多是确认。")
    assert short_name(reflection, "Which study found reflection rarely changes answers?", None) == "First Try Matters"
    label = entry("反思：多数是确认", "Key Results: Most reflections confirm the first answer\n…")
    assert short_name(label, "?", None) is None  # a part's label, not a paper's name
    same = entry("HySparse", "HySparse: Hybrid Sparse Attention for long context\n…")
    assert short_name(same, "?", None) is None
    page = entry("字节的paper，在具身领域做 video generation 的评测", "-  https://dagroup-pku.github.io/ReVidgen.github.io/")
    assert short_name(page, "?", None) == "ReVidgen"


def test_a_meeting_that_presents_several_papers_names_the_one_each_line_is_about() -> None:
    meeting = entry("2025-04-29 陈七：过程监督 vs 结果监督", "\n".join([
        "**Let's Verify Step by Step**（Lightman et al. · OpenAI · 2023）",  # line 2
        "- 放出了 PRM800K：约 80 万条 step-level 人工标注",
        "",
        "**Math-Shepherd: Verify and Reinforce LLMs**（Peiyi Wang et al. · 2023）",  # line 5
        "- 从这一步出发 rollout 多次，以此自动给这一步打标签",  # line 6
        "",
        "讨论：",
        "- 赵六：自动标注噪声大，PRM 容易被 reward hack",  # line 9
    ]))
    assert short_name(meeting, "哪篇自动给步骤打标签？", None, [6]) == "Math-Shepherd"
    assert short_name(meeting, "哪篇？", None, [3, 6]) == "Let's Verify Step by Step / Math-Shepherd"
    assert short_name(meeting, "Math-Shepherd 怎么标注？", None, [6]) is None  # the question has it
    # the discussion after a blank line is the meeting's: the entry's own name, as for any line
    assert short_name(meeting, "哪篇？", None, [9]) == short_name(meeting, "哪篇？", None)


def test_a_name_quoted_as_the_papers_names_it() -> None:
    notion = entry("Training Compute-Optimal Large Language Models",
                   '**TL;DR** The "Chinchilla" paper. Model size and tokens should be scaled equally.')
    assert short_name(notion, "Which paper says size and tokens scale equally?", None) == "Chinchilla"


def test_a_papers_own_title_is_named_by_its_initials_or_not_at_all() -> None:
    """Under a paper's full title, a term the entry repeats (BLEU, RM) is no name for it; a coined
    name (ProGRPO under "Back to Basics: …") and the initials of the title's words (GEA of
    "Group-Evolving Agents") are."""
    attention = entry("Attention Is All You Need", "BLEU 28.4 on WMT14 En-De.\nBLEU 41.8 on En-Fr.")
    assert short_name(attention, "Which paper dispensed with recurrence?", None) is None
    gea = entry("Group-Evolving Agents: Open-Ended Self-Improvement", "GEA 让 agent 共享经验。\nGEA 71%。")
    assert short_name(gea, "哪篇让 agent 组共享经验？", None) == "GEA"
    tot = entry("Tree of Thoughts: Deliberate Problem Solving", "CoT only 4% on Game of 24.\nCoT-SC 9%.")
    assert short_name(tot, "Which paper searched over thoughts?", None) is None  # CoT is a term here
    topic = entry("开源模型 IOI金牌", "GenCluster 让开源模型拿到金牌。\nGenCluster 用 gpt-oss。")
    assert short_name(topic, "哪个方法让开源模型拿到 IOI 金牌？", None) == "GenCluster"



def test_titles_and_follow_ups_of_long_runs_are_read_in_linear_time() -> None:
    """A title of 20 000 spaces or brackets, a follow-up of one long word: patterns tried from a
    run's start only, or bounded (seconds each before)."""
    from rag.answer.rewrite import _key_terms
    from rag.ingest.sections import title_names

    n = 20_000
    start = time.perf_counter()
    called(entry("a" + " " * n + "b & c", "x"))
    title_names("(" * n + "x")
    _key_terms("a" * n + "x", 5)
    introduced_name(entry("t", "A" * n + " (" + "a" * n))
    assert time.perf_counter() - start < 1.0


def test_quotes_labels_and_snippets_of_long_runs_are_read_in_linear_time() -> None:
    """A run of digits, spaces or brackets 20 000 long: each pattern that reads a quote, a label or
    a snippet tries a run from its start only (0.3 s at 3 000 characters, quadratic, before)."""
    from rag.answer.extractive import _JOINED, _LABEL_END, _QUANTITY
    from rag.answer.paper_name import _SUBTITLE
    from rag.text import markdown_to_plain

    n = 20_000
    start = time.perf_counter()
    assert not _QUANTITY.search("1" * n + "\n")
    assert len(_SUBTITLE.split("a" + " " * n + "x")) == 1
    assert not _JOINED.fullmatch(" " * n + "(")
    assert not list(_LABEL_END.finditer(" " * n + "x"))
    assert markdown_to_plain("[" * n) == "[" * n
    assert time.perf_counter() - start < 1.0
    assert _QUANTITY.search("1.5B 参数") and _SUBTITLE.split("AWQ : Activation-aware")[0] == "AWQ"
