"""The segmenter on small notes in the styles researchers write (Obsidian, Logseq, Zotero, logs)."""

from __future__ import annotations

import re
import time

import pytest

from rag.ingest.chunking import chunk_entries
from rag.ingest.corpus import find_notes
from rag.ingest.markup import split_lines
from rag.ingest.meta import front_matter
from rag.ingest.notes import Entry, split_entries
from rag.retrieve.searcher import Filters

HYDE_BODY = """## Summary
先让 LLM 写一篇假设文档 (hypothetical document)，再用 Contriever 编码去检索真实文档。
类似 [[Contriever|无监督稠密检索]] 的思路。

## Method
![[hyde-pipeline.png]]
instruction-following LM generates a fake answer; the encoder maps it near real ones. #dense-retrieval

## Key results
TREC DL19 nDCG@10 从 44.5 提升到 61.3，no relevance labels at all.
在 Mr.TyDi 多语言上也超过 BM25 baseline.

## My take
> [!note] 值得复现
> 生成的文档可能有幻觉，但 encoder 的 bottleneck 会过滤掉细节。
"""
YAML_NOTE = """---
title: Precise Zero-Shot Dense Retrieval without Relevance Labels
aliases: [HyDE, 假设文档嵌入]
authors:
  - Luyu Gao
  - Xueguang Ma
year: 2022
tags: [retrieval, zero-shot]
arxiv: 2212.10496
url: https://arxiv.org/abs/2212.10496
---
""" + HYDE_BODY
TOML_NOTE = """+++
title = "Precise Zero-Shot Dense Retrieval without Relevance Labels"
aliases = ["HyDE", "假设文档嵌入"]
authors = ["Luyu Gao", "Xueguang Ma"]
year = 2022
tags = ["retrieval", "zero-shot"]
arxiv = "2212.10496"
url = "https://arxiv.org/abs/2212.10496"
+++
""" + HYDE_BODY
HYDE_TITLE = "HyDE: Precise Zero-Shot Dense Retrieval without Relevance Labels"
HYDE_TAGS = "#retrieval #zero-shot #dense-retrieval"


def rows(entries: list[Entry]) -> list[tuple]:
    return [(e.line_start, e.line_end, e.kind, e.title, e.date) for e in entries]


def assert_every_line_once(text: str, entries: list[Entry], body_start: int = 0) -> list[int]:
    """Each entry's text is its line span; every non-blank body line is in exactly one entry."""
    lines = split_lines(text)
    owner = [0] * len(lines)
    for e in entries:
        assert e.text == "\n".join(lines[e.line_start - 1:e.line_end])
        for i in range(e.line_start - 1, e.line_end):
            owner[i] += 1
    assert [i + 1 for i, line in enumerate(lines) if i >= body_start and line.strip() and owner[i] != 1] == []
    return owner


def test_obsidian_one_paper_note_is_one_item_with_its_front_matter() -> None:
    """YAML front matter + part headings → one item: alias-prefixed title, tags, aliases, authors, links."""
    es = split_entries(YAML_NOTE, "papers/hyde.md")
    assert rows(es) == [(12, 26, "item", HYDE_TITLE, None)]
    hyde = es[0]
    assert hyde.tags == ("retrieval", "zero-shot", "dense-retrieval")  # front matter, then the inline #tag
    assert (hyde.aliases, hyde.authors) == (("HyDE", "假设文档嵌入"), ("Luyu Gao", "Xueguang Ma"))
    assert hyde.links == ("Contriever", "hyde-pipeline.png")  # a [[link|alias]] and an ![[embed]]
    assert (hyde.url, hyde.context) == ("https://arxiv.org/abs/2212.10496", "")
    assert_every_line_once(YAML_NOTE, es, body_start=11)


def test_obsidian_chunks_carry_title_part_heading_and_front_matter() -> None:
    """Chunk contexts: title and tags everywhere, "› Key results" under that heading, aliases+authors first."""
    chunks = chunk_entries(split_entries(YAML_NOTE, "hyde.md"), max_tokens=240, overlap=0, count_tokens=len)
    assert len(chunks) >= 4
    assert chunks[0].context == f"{HYDE_TITLE}\n{HYDE_TAGS}\nHyDE, 假设文档嵌入; Luyu Gao, Xueguang Ma"
    assert all(c.context.startswith(HYDE_TITLE) for c in chunks)
    assert all("Luyu Gao" not in c.context for c in chunks[1:])
    results = [c for c in chunks if "nDCG@10" in c.text]
    assert len(results) == 1 and results[0].context == f"{HYDE_TITLE} › Key results\n{HYDE_TAGS}"
    assert 20 <= results[0].line_start <= results[0].line_end <= 22  # within "## Key results"
    take = next(c for c in chunks if "值得复现" in c.text)
    assert take.context == f"{HYDE_TITLE} › My take\n{HYDE_TAGS}"


def test_toml_front_matter_gives_the_same_metadata() -> None:
    """+++ TOML front matter → the same single item and metadata as the YAML note."""
    toml, yaml_ = split_entries(TOML_NOTE, "hyde.md"), split_entries(YAML_NOTE, "hyde.md")
    assert rows(toml) == [(10, 24, "item", HYDE_TITLE, None)]
    fields = ("title", "kind", "tags", "aliases", "authors", "links", "url", "text")
    assert [getattr(toml[0], f) for f in fields] == [getattr(yaml_[0], f) for f in fields]
    assert front_matter(split_lines(TOML_NOTE))[1].ids == ("arXiv:2212.10496",)


BAD_YAML = "---\ntitle: [unclosed\nyear: 2023\n---\n# FlashAttention 笔记\nIO-aware 的 exact attention。\n"
BOMB = "---\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(  # billion laughs: 9**9 lols
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
) + "---\n# Billion laughs\n别展开我。\n"
BIG = "---\n" + "".join(f"k{i}: {'长' * 80}\n" for i in range(300)) + "---\n# Big header\n正文 body.\n"


@pytest.mark.parametrize("note, problem", [
    (BAD_YAML, r"front matter is not valid YAML, read as text"),
    (BOMB, r"front matter uses YAML aliases \(refused: they can multiply without end\), read as text"),
    (BIG, r"front matter over 64 KB, read as text"),
], ids=["malformed", "bomb", "over-64KB"])
def test_refused_front_matter_is_read_as_text(note: str, problem: str) -> None:
    """Malformed, aliased (bomb) or >64 KB front matter: a one-line problem, no exception, no lost line."""
    start = time.perf_counter()
    body_start, meta = front_matter(split_lines(note))
    es = split_entries(note, "x.md")
    assert time.perf_counter() - start < 1.0
    assert body_start == 0 and meta.title is None and meta.tags == ()
    assert meta.problem is not None and re.fullmatch(problem, meta.problem)
    assert es[0].line_start == 1 and es[-1].title in ("FlashAttention 笔记", "Billion laughs", "Big header")
    assert_every_line_once(note, es)


def test_long_front_matter_over_64kb_reports_a_problem() -> None:
    """A >64 KB front matter of many short lines is refused with a problem like a wide one."""
    note = "---\n" + "".join(f"k{i}: {'x' * 70}\n" for i in range(1000)) + "---\n# Big\nbody.\n"
    body_start, meta = front_matter(split_lines(note))
    assert (body_start, meta.problem) == (0, "front matter over 64 KB, read as text")


MAMBA = """# Mamba: Linear-Time Sequence Modeling with Selective State Spaces

## 背景
Transformer 的 attention 是 O(n^2)，长序列很贵。

## 核心方法
### 1. Selective SSM
让 B、C、Δ 依赖输入 (input-dependent)，可以选择性遗忘。

## 实验
语言建模上 Mamba-3B 追平两倍大小的 Transformer。

## 我的想法
推理时是 RNN 形式，constant memory。
"""
MAMBA_STEPS = MAMBA.replace("## 实验", "".join(  # three more numbered ### steps under 核心方法
    f"### {n}. {step}\n{step} 的细节。\n\n" for n, step in enumerate(["Scan", "Block", "Init"], start=2)) + "## 实验")


def test_deep_dive_without_front_matter_is_one_item() -> None:
    """# Title over 背景 / 核心方法 (### 1. …) / 实验 / 我的想法 → one item titled by the H1."""
    es = split_entries(MAMBA, "mamba.md")
    assert rows(es) == [(1, 14, "item", "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", None)]


def test_deep_dive_with_several_numbered_steps_is_one_item() -> None:
    """A deep dive stays one item however many numbered ### steps its 核心方法 has."""
    es = split_entries(MAMBA_STEPS, "mamba.md")
    assert rows(es) == [(1, 23, "item", "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", None)]


LOGSEQ = """title:: 长上下文阅读
tags:: long-context, 论文

- Ring Attention with Blockwise Transformers
  type:: paper
  authors:: Hao Liu, Matei Zaharia
  year:: 2023
\t- 把序列切块分到多张卡上，环形传递 KV。
\t- context 可以到百万 token
- YaRN: Efficient Context Window Extension
  type:: paper
  authors:: Bowen Peng, Jeffrey Quesnelle
  year:: 2023
\t- RoPE 插值的改进 NTK-by-parts
\t\t- 只需少量微调
"""


def test_logseq_outline_one_item_per_top_bullet() -> None:
    """Logseq page: each top-level bullet is an item with its authors and the page tags; page props in none."""
    es = split_entries(LOGSEQ, "pages/长上下文.md")
    assert rows(es) == [(4, 9, "item", "Ring Attention with Blockwise Transformers", None),
                        (10, 15, "item", "YaRN: Efficient Context Window Extension", None)]
    assert [e.authors for e in es] == [("Hao Liu", "Matei Zaharia"), ("Bowen Peng", "Jeffrey Quesnelle")]
    assert [e.tags for e in es] == [("long-context", "论文")] * 2
    assert [e.context for e in es] == ["长上下文阅读"] * 2
    owner = assert_every_line_once(LOGSEQ, es, body_start=2)
    assert owner[:2] == [0, 0]


READING_LOG = """2024-10-14 — Self-RAG: Learning to Retrieve, Generate, and Critique (ICLR 2024)
模型自己决定何时检索，用 reflection tokens 给检索结果和生成打分。
Better factuality than ChatGPT on PopQA.

2024-10-16 — RAPTOR: Recursive Abstractive Processing (ICLR 2024)
把文档递归聚类并摘要成一棵树，检索时在不同层级上查。

2024-10-20 — GraphRAG: From Local to Global (arXiv 2024)
用 LLM 抽实体关系建图，community summary 回答全局问题。
"""


def test_plain_text_reading_log_one_item_per_paragraph() -> None:
    """Paragraphs opening with "date — Title (Venue)" → items titled without the date, dated."""
    es = split_entries(READING_LOG, "reading.txt")
    assert rows(es) == [
        (1, 3, "item", "Self-RAG: Learning to Retrieve, Generate, and Critique (ICLR 2024)", "2024-10-14"),
        (5, 6, "item", "RAPTOR: Recursive Abstractive Processing (ICLR 2024)", "2024-10-16"),
        (8, 9, "item", "GraphRAG: From Local to Global (arXiv 2024)", "2024-10-20"),
    ]
    assert_every_line_once(READING_LOG, es)


TABLE = """# 长上下文方法对比

| 方法 | 思路 | 最长 context | 链接 |
|---|---|---|---|
| LongRoPE | 非均匀 RoPE 插值 | 2M | [arXiv](https://arxiv.org/abs/2402.13753) |
| YaRN | NTK-by-parts | 128K | https://arxiv.org/abs/2309.00071 |
| StreamingLLM | attention sink | ∞ | [paper](https://arxiv.org/abs/2309.17453) |

结论：training-free 的方法里 StreamingLLM 最省事。
"""


def test_table_with_link_in_last_column_gives_one_row_entry_per_row() -> None:
    """Link in the last cell: a row entry per row, titled by its first cell, header cells in context."""
    es = split_entries(TABLE, "compare.md")
    table_rows = [e for e in es if e.kind == "row"]
    assert [(e.line_start, e.line_end, e.title, e.url) for e in table_rows] == [
        (5, 5, "LongRoPE", "https://arxiv.org/abs/2402.13753"), (6, 6, "YaRN", "https://arxiv.org/abs/2309.00071"),
        (7, 7, "StreamingLLM", "https://arxiv.org/abs/2309.17453")]
    assert {e.context for e in table_rows} == {"长上下文方法对比 › 方法 | 思路 | 最长 context | 链接"}
    assert rows(es)[0] == (1, 4, "section", "长上下文方法对比", None)  # heading + header row + rule
    assert (es[-1].kind, es[-1].line_end) == ("section", 9)
    assert_every_line_once(TABLE, es)


ZOTERO = "\n\n".join(f'# {t}\n{by}\n> "{quote}" (p. {page})\n{comment}' for t, by, quote, page, comment in [
    ("Attention Is All You Need", "Vaswani, Shazeer, Parmar et al.", "allows more parallelization", 2, "并行是关键。"),
    ("BERT: Pre-training of Deep Bidirectional Transformers", "Devlin, Chang, Lee, Toutanova",
     "conceptually simple and empirically powerful", 1, "NSP 后来被证明没啥用。"),
    ("Language Models are Few-Shot Learners", "Brown, Mann, Ryder et al.", "strong few-shot performance", 3,
     "in-context learning 的起点。"),
    ("Training language models to follow instructions", "Ouyang, Wu, Jiang et al.", "InstructGPT is preferred",
     1, "RLHF 三步：SFT、RM、PPO。"),
]) + "\n"


def test_zotero_annotation_export_one_item_per_paper() -> None:
    """Zotero export: # Paper, authors line, "> quote (p. N)" + comment → one item per paper."""
    es = split_entries(ZOTERO, "zotero.md")
    assert rows(es) == [(1, 4, "item", "Attention Is All You Need", None),
                        (6, 9, "item", "BERT: Pre-training of Deep Bidirectional Transformers", None),
                        (11, 14, "item", "Language Models are Few-Shot Learners", None),
                        (16, 19, "item", "Training language models to follow instructions", None)]
    assert_every_line_once(ZOTERO, es)


MEETING = "# 组会\n" + "".join(f"\n## 2025-04-{d} {who}：{topic}\n{text}\n" for d, who, topic, text in [
    ("08", "张三", "DPO 复现", "在 UltraFeedback 上复现 DPO，β=0.1 最好。"),
    ("15", "李四", "MoE 路由", "DeepSeekMoE 的 shared expert。"),
    ("22", "王五", "RAG 评测", "RAGAS faithfulness 和人工标注相关性一般。"),
    ("29", "赵六", "长上下文", "Needle-in-a-haystack 不够，推荐 RULER。"),
])


def test_group_meeting_items_dated_by_their_headings() -> None:
    """# 组会 with four "## 2025-04-08 张三：…" → four items dated from their headings."""
    es = split_entries(MEETING, "组会.md")
    assert rows(es) == [
        (1, 1, "section", "组会", None),
        (3, 4, "item", "2025-04-08 张三：DPO 复现", "2025-04-08"),
        (6, 7, "item", "2025-04-15 李四：MoE 路由", "2025-04-15"),
        (9, 10, "item", "2025-04-22 王五：RAG 评测", "2025-04-22"),
        (12, 13, "item", "2025-04-29 赵六：长上下文", "2025-04-29"),
    ]
    assert [e.context for e in es[1:]] == ["组会"] * 4


MOC = """---
tags: [moc, retrieval]
---
# Retrieval 主题索引

## Dense retrieval
- [[DPR]] 双塔，in-batch negatives
- [[Contriever]] 无监督对比学习
- [[HyDE|假设文档]] 先生成再检索

## Reranking
- [[ColBERT]] late interaction，索引大
- [[monoT5]] cross-encoder 式重排

## 待读
- RankGPT
- SPLADE v2
- E5 text embeddings
- BGE M3
- RankZephyr
"""


def test_topic_note_sections_and_to_read_list() -> None:
    """MOC with tag-only front matter: several entries, 待读 is a section, the note's tags on every entry."""
    es = split_entries(MOC, "Retrieval MOC.md")
    assert rows(es) == [(4, 4, "section", "Retrieval 主题索引", None),
                        (6, 9, "section", "Dense retrieval", None),
                        (11, 13, "section", "Reranking", None),
                        (15, 20, "section", "待读", None)]
    assert all(e.tags == ("moc", "retrieval") for e in es)
    assert [e.links for e in es[1:3]] == [("DPR", "Contriever", "HyDE"), ("ColBERT", "monoT5")]
    assert_every_line_once(MOC, es, body_start=3)


TWO_PAPERS = """## RLHF
### Summary
用人类偏好训练 reward model，再 PPO 优化策略。
### My take
工程复杂，reward hacking 常见。

## DPO
### Summary
把 RLHF 的目标改写成分类损失，不需要 reward model。
### My take
简单稳定，但对数据分布敏感。
"""


def test_two_papers_with_part_headings_are_two_items() -> None:
    """## PaperA / ## PaperB each with ### Summary / ### My take → two items; parts open no entry."""
    es = split_entries(TWO_PAPERS, "align.md")
    assert rows(es) == [(1, 5, "item", "RLHF", None), (7, 11, "item", "DPO", None)]


def test_two_papers_under_a_note_title_are_two_items() -> None:
    """The same two papers under a "# 偏好对齐笔记" title stay two items."""
    es = split_entries("# 偏好对齐笔记\n\n" + TWO_PAPERS, "align.md")
    assert [(e.line_start, e.line_end, e.kind, e.title) for e in es if e.kind == "item"] == [
        (3, 7, "item", "RLHF"), (9, 13, "item", "DPO")]


def test_hidden_folders_are_never_notes(tmp_path) -> None:
    """find_notes skips .obsidian, .trash and .git; only vault/a.md is a note."""
    for rel in ("vault/.obsidian/x.md", "vault/.trash/y.md", ".git/z.md", "vault/a.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("# note\n", encoding="utf-8")
    notes, skipped = find_notes(tmp_path)
    assert [n.rel for n in notes] == ["vault/a.md"] and skipped == []


def test_tag_filter_is_case_insensitive_and_matches_nested_tags() -> None:
    """Filters.parse(tags=["#Retrieval", "ml"]) allows ("retrieval", "ml/rl"), refuses one without ml."""
    filters = Filters.parse(tags=["#Retrieval", "ml"])
    assert filters.tags == ("retrieval", "ml")
    tag_sets = [("retrieval", "ml/rl"), ("Retrieval", "ML"), ("retrieval",), ("retrieval", "mlops")]
    assert [filters.allows(Entry("a.md", "t", 1, 1, None, None, "x", tags=t)) for t in tag_sets] == [
        True, True, False, False]


def test_a_rule_over_prose_at_the_top_is_no_front_matter() -> None:
    """A note that opens with a --- rule over prose is read as it is, with no warning about YAML."""
    note = "---\nJust a thought before the rule closes.\n\n---\n# Topic\n\nBody text.\n"
    start, meta = front_matter(split_lines(note))
    assert (start, meta.problem) == (0, None)
    assert_every_line_once(note, split_entries(note, "rule.md"))


FLASHCARDS = """# 闪卡：检索

Q: DPR 是哪篇论文？
A: Dense Passage Retrieval，Facebook AI，EMNLP 2020。

Q: ColBERT 比交叉编码器快多少？
A: 快约 170 倍。

问：HyDE 的想法是什么？
答：先让 LLM 写一篇假想文档，再编码去检索。
"""


@pytest.mark.parametrize("heading", [True, False])
def test_flashcard_deck_one_item_per_card(heading: bool) -> None:
    """Q: / A: (or 问： / 答：) pairs → an item per card titled by its question, under the deck's title."""
    text = FLASHCARDS if heading else FLASHCARDS.split("\n", 2)[2]
    shift = 0 if heading else 2
    es = split_entries(text, "cards.md")
    cards = [(3 - shift, 4 - shift, "item", "DPR 是哪篇论文？", None),
             (6 - shift, 7 - shift, "item", "ColBERT 比交叉编码器快多少？", None),
             (9 - shift, 10 - shift, "item", "HyDE 的想法是什么？", None)]
    assert rows(es) == ([(1, 1, "section", "闪卡：检索", None)] if heading else []) + cards
    assert {e.context for e in es if e.kind == "item"} == ({"闪卡：检索"} if heading else {""})
    assert_every_line_once(text, es)


TITLED_LOG = """# LLM evaluation: reading log

One bullet block per paper, oldest first.

* **MMLU**: "Measuring Massive Multitask Language Understanding", Hendrycks et al., ICLR 2021.
  - 57 subjects of four-option multiple-choice questions.
  - GPT-3 (175B) reached 43.9% few-shot.

* **HumanEval / Codex**: "Evaluating Large Language Models Trained on Code", OpenAI, 2021.
  - 164 hand-written Python problems; Codex solves 28.8% at pass@1.
"""
PAPER_PARTS = """# FlashAttention

- Summary
  - IO-aware exact attention in tiles.
- Results
  - 3x faster on GPT-2.
"""


def test_titled_outline_of_papers_one_item_per_bullet_block() -> None:
    """A title over "* **Name**: …" blocks with nested bullets → the title (with its preamble), then an
    item per block under it; a paper's own Summary / Results bullets stay one item."""
    es = split_entries(TITLED_LOG, "log.md")
    assert [(e.line_start, e.line_end, e.kind) for e in es] == [(1, 3, "section"), (5, 7, "item"), (9, 10, "item")]
    assert es[1].title.startswith("MMLU:") and es[2].title.startswith("HumanEval / Codex:")
    assert es[1].context == "LLM evaluation: reading log"
    assert_every_line_once(TITLED_LOG, es)
    assert rows(split_entries(PAPER_PARTS, "flash.md")) == [(1, 6, "item", "FlashAttention", None)]


NOTION = """# 高效注意力

Status: Read
Tags: efficient-attention, inference
Created: 2024-03-12
URL: https://arxiv.org/abs/2205.14135

## FlashAttention (Dao et al., 2022)
IO-aware exact attention.

## vLLM / PagedAttention
KV cache 像内存页一样管理。
"""


def test_notion_property_block_gives_tags_and_date_not_one_paper() -> None:
    """A Notion export's "Key: value" block under the title tags every entry of the page; its URL
    is not taken for the page's paper (it holds two), and prose with a colon is no property block."""
    es = split_entries(NOTION, "notion/page.md")
    assert [e.title for e in es] == ["高效注意力", "FlashAttention (Dao et al., 2022)", "vLLM / PagedAttention"]
    assert {e.tags for e in es} == {("efficient-attention", "inference")}
    assert {e.date for e in es} == {"2024-03-12"}
    prose = "# Notes\n\nNote: this is one line of prose.\n\n## A\ntext\n\n## B\ntext\n"
    assert {e.tags for e in split_entries(prose, "p.md")} == {()}


def test_aka_in_front_matter_is_an_alias() -> None:
    """``aka: Chinchilla`` names the paper as ``aliases`` does (a third hand wrote it so)."""
    note = ("---\ntitle: Training Compute-Optimal Large Language Models\naka: Chinchilla\n"
            "authors: [Jordan Hoffmann]\n---\n\n## 摘要\n70B 参数，1.4T token。\n")
    (e,) = split_entries(note, "chinchilla.md")
    assert e.aliases == ("Chinchilla",) and e.title.startswith("Chinchilla")



def test_a_section_introducing_the_notes_papers_is_no_paper() -> None:
    """"为什么看这一组" names FlashAttention and vLLM: it introduces them, so it is a section (an exact
    match on "vLLM" ranks vLLM's own entry). A paper that mentions its siblings stays a paper, and a
    name in every title ("LLM") names none of them."""
    page = ("# 推理服务\n\n## 为什么看这一组\n两篇 FlashAttention 解决 attention 计算，vLLM 解决 KV cache 碎片。\n\n"
            "## FlashAttention (Dao et al., 2022)\nIO-aware exact attention.\n\n"
            "## FlashAttention-2 (Dao, 2023)\n比 FlashAttention 快 2 倍，也比 vLLM 的 kernel 快。\n\n"
            "## vLLM (Kwon et al., 2023)\nKV cache 像内存页一样管理。\n")
    kinds = {e.title: e.kind for e in split_entries(page, "n.md")}
    assert kinds == {"推理服务": "section", "为什么看这一组": "section", "FlashAttention (Dao et al., 2022)": "item",
                     "FlashAttention-2 (Dao, 2023)": "item", "vLLM (Kwon et al., 2023)": "item"}
    common = page.replace("vLLM (Kwon", "LLM vLLM (Kwon").replace("(Dao", "LLM (Dao").replace("vLLM 解决", "LLM 解决")
    assert {e.title: e.kind for e in split_entries(common, "n.md")}["为什么看这一组"] == "item"
