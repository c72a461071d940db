"""The segmenter on more of the formats notes come in: a day page, an awesome list, a CSV or TSV
list, a post drawn apart by rules, a wiki table of methods (fast)."""

from __future__ import annotations

import time

from rag.answer.extractive import split_sentences
from rag.ingest.dates import leading_date
from rag.ingest.markup import clean_title, split_lines
from rag.ingest.notes import split_entries
from rag.ingest.org import is_org
from tests.test_note_styles import assert_every_line_once, rows

DAY_PAGE = """---
date: 2024-03-14
---
# Thursday, March 14, 2024

## Todo
- [ ] rebuttal

## Reading
- [[InstructGPT]] — *Training language models to follow instructions*, Ouyang et al., 2022
    - SFT → reward model → PPO
- [[KTO]] — *KTO: Model Alignment as Prospect Theoretic Optimization*, 2024
    - only a desirable / undesirable signal per output

## Notes
- [[DPO]] vs [[KTO]]: both offline
"""


def test_a_day_page_is_no_one_paper_note_and_its_reading_list_gives_an_item_per_paper() -> None:
    """Todo and Notes are parts, but of a day: the papers read that day are the items."""
    assert leading_date("Thursday, March 14, 2024") == "2024-03-14" and leading_date("14 Mar 2024") == "2024-03-14"
    es = split_entries(DAY_PAGE, "Daily/2024-03-14.md")
    assert [(e.line_start, e.line_end, e.kind, e.title.split(" —")[0]) for e in es if e.kind == "item"] == [
        (10, 11, "item", "InstructGPT"), (12, 13, "item", "KTO")]
    assert {e.date for e in es} == {"2024-03-14"}
    assert_every_line_once(DAY_PAGE, es, body_start=3)


AWESOME = """# Awesome LLM Agents

## Contents
- [Tool Use](#tool-use)
- [Code generation](#code-generation)

### Tool Use

- ⭐ [Toolformer: Language Models Can Teach Themselves to Use Tools](https://arxiv.org/abs/2302.04761) - Schick et al.

### Code generation

- [SWE-bench: Can Language Models Resolve Real-World GitHub Issues?](https://arxiv.org/abs/2310.06770) - ICLR 2024.
- [HumanEval](https://github.com/openai/human-eval) - 164 hand-written Python problems.

## Contributing

Add papers as `- [Title](link) - one line`.
"""


def test_an_awesome_list_gives_an_item_per_described_link_titled_by_the_link() -> None:
    """A contents list of anchors is no paper; each described link is one, under its topic."""
    es = split_entries(AWESOME, "README.md")
    items = [(e.line_start, e.kind, e.title) for e in es if e.kind == "item"]
    assert items == [(9, "item", "Toolformer: Language Models Can Teach Themselves to Use Tools"),
                     (13, "item", "SWE-bench: Can Language Models Resolve Real-World GitHub Issues?"),
                     (14, "item", "HumanEval")]
    assert next(e for e in es if e.line_start == 13).context.endswith("Code generation")
    assert (es[-1].kind, es[-1].title, es[-1].line_start) == ("section", "Contributing", 16)
    assert_every_line_once(AWESOME, es)


CSV = '''"id","title","authors","year","my_notes"
"1","Locating and Editing Factual Associations in GPT","Meng, Bau, Andonian, Belinkov","2022","ROME; causal tracing"
"2","Sleeper Agents: Training Deceptive LLMs","Hubinger et al. (Anthropic)","2024","backdoors survive safety training"
"3","Measuring Massive Multitask Language Understanding","Hendrycks et al.","2021","MMLU; 57 subjects"
'''
TSV = ("title\tvenue\tyear\tnote\n" + "ReAct\tICLR 2023\t2023\treason + act\n"
       + "Reflexion\tNeurIPS 2023\t2023\tverbal feedback\n" + "GPQA\tarXiv\t2023\tgoogle-proof questions\n")


def test_a_csv_or_tsv_list_gives_a_row_per_entry_titled_by_its_title_column() -> None:
    csv_entries = split_entries(CSV, "reading_list.txt")
    assert rows(csv_entries)[1:] == [
        (2, 2, "row", "Locating and Editing Factual Associations in GPT", None),
        (3, 3, "row", "Sleeper Agents: Training Deceptive LLMs", None),
        (4, 4, "row", "Measuring Massive Multitask Language Understanding", None)]
    assert csv_entries[0].kind == "section" and csv_entries[1].context == "id | title | authors | year | my_notes"
    assert_every_line_once(CSV, csv_entries)
    tsv_entries = split_entries(TSV, "list.txt")
    assert [e.title for e in tsv_entries if e.kind == "row"] == ["ReAct", "Reflexion", "GPQA"]
    prose = "One, two, three, four.\nFive, six, seven.\nEight, nine, ten, eleven, twelve.\n"
    assert all(e.kind != "row" for e in split_entries(prose, "p.txt"))  # commas in prose make no table


POST = """# RAG 入门必读 3 篇论文📚

家人们谁懂啊，导师让我两周之内搞懂 RAG 👇

━━━━━━━━━━━━
1️⃣ DPR｜Dense Passage Retrieval for Open-Domain Question Answering
✅ 一句话：两个独立的 BERT 做双塔。

━━━━━━━━━━━━
2️⃣ HyDE｜Precise Zero-Shot Dense Retrieval without Relevance Labels
✅ 一句话：先编一篇假答案文档再检索。

━━━━━━━━━━━━
【写在最后】
收藏=学会 ✨
"""


def test_a_post_drawn_apart_by_rules_gives_an_item_per_block() -> None:
    es = split_entries(POST, "xhs.md")
    assert [(e.line_start, e.kind, e.title) for e in es] == [
        (1, "section", "RAG 入门必读 3 篇论文📚"),
        (6, "item", "DPR｜Dense Passage Retrieval for Open-Domain Question Answering"),
        (10, "item", "HyDE｜Precise Zero-Shot Dense Retrieval without Relevance Labels"),
        (14, "item", "写在最后")]
    assert clean_title("【一】Towards Monosemanticity") == "Towards Monosemanticity"
    assert clean_title("【小米】HySparse") == "小米 HySparse"
    underlined = "# Notes\n\nIntro line\n---\nMore text\n\nOther line\n---\nEnd text\n"
    assert {"More text", "End text"}.isdisjoint(e.title for e in split_entries(underlined, "s.md"))  # no rules


WIKI = """# LLM Quantization — Lab Wiki

## Methods at a glance

| Method | Paper / Venue | Bits | Key idea |
|---|---|---|---|
| GPTQ | Frantar et al., ICLR 2023 | W4A16 | second-order (Hessian) weight updates |
| AWQ | Lin et al., MLSys 2024 | W4A16 | activation-aware: ~1% salient weights |

## How we run them

- group size 128
"""


def test_a_table_whose_first_column_names_its_rows_gives_a_row_per_method() -> None:
    es = split_entries(WIKI, "wiki.md")
    assert [(e.line_start, e.kind, e.title) for e in es if e.kind == "row"] == [(7, "row", "GPTQ"), (8, "row", "AWQ")]
    assert next(e for e in es if e.title == "AWQ").context.endswith("Method | Paper / Venue | Bits | Key idea")
    assert_every_line_once(WIKI, es)


ORG = """#+TITLE: RLHF reading list
#+STARTUP: overview
#+TODO: TODO NEXT | DONE
#+FILETAGS: :alignment:rlhf:

Context: prepping for the reading club.
# an Org comment, not a title

* DONE Proximal Policy Optimization Algorithms :rl:
  :PROPERTIES:
  :AUTHORS: John Schulman, Filip Wolski
  :ARXIV: 1707.06347
  :END:
** Core idea
   - clipped surrogate objective; ε = 0.2
** Why I care
   - the optimizer inside every RLHF pipeline
** TODO re-derive the adaptive-KL variant

* NEXT [#A] Direct Preference Optimization
  :PROPERTIES:
  :AUTHORS: Rafael Rafailov, Archit Sharma
  :END:
** Gist
   - reward as β log(π/π_ref), a [[https://arxiv.org/abs/2305.18290][classification loss]]
** My take
   - we used β = 0.1
"""


def test_an_org_note_gives_an_item_per_paper_heading_with_its_drawer_and_tags() -> None:
    """Org headings are read as Markdown ones (TODO keyword, priority and tags off the title); the
    headings whose drawer names a paper are the items, their sub-headings parts of them."""
    es = split_entries(ORG, "alignment.txt")
    assert [(e.line_start, e.line_end, e.kind, e.title) for e in es] == [
        (6, 7, "section", "Context: prepping for the reading club."),
        (9, 18, "item", "Proximal Policy Optimization Algorithms"),
        (20, 27, "item", "Direct Preference Optimization")]
    ppo, dpo = es[1], es[2]
    assert ppo.tags == ("alignment", "rlhf", "rl") and ppo.authors == ("John Schulman", "Filip Wolski")
    assert ppo.context == "RLHF reading list" and dpo.authors == ("Rafael Rafailov", "Archit Sharma")
    assert dpo.text.startswith("* NEXT [#A] Direct Preference Optimization\n  :PROPERTIES:")  # the note as written
    assert_every_line_once(ORG, es, body_start=4)
    assert is_org(split_lines(ORG)) and not is_org(["# Reading", "* DONE is a bullet here", "* so is this"])


def test_a_chat_export_or_a_diary_is_titled_by_what_follows_its_date() -> None:
    """"[2023-10-09 10:02] kevin: …" keeps no stamp in its title; "2024年3月4日 星期一" keeps its date, since
    the weekday alone says nothing."""
    chat = "\n\n".join(f"[2023-10-0{d} 10:0{d}] kevin: paper {d} is out https://arxiv.org/abs/2205.1413{d}\n"
                       f"[2023-10-0{d} 10:1{d}] lin: read it, nice" for d in (1, 2, 3))
    assert split_entries(chat, "slack.txt")[0].title == "kevin: paper 1 is out https://arxiv.org/abs/2205.14131"
    days = ((4, "一"), (5, "二"), (7, "四"))
    diary = "\n\n".join(f"2024年3月{d}日 星期{w}\n今天读 DDPM，前向过程逐步加噪。" for d, w in days)
    assert [e.title for e in split_entries(diary, "diary.txt")] == ["2024年3月4日 星期一", "2024年3月5日 星期二",
                                                                    "2024年3月7日 星期四"]


THREAD = """Saved thread — "RAG reading list" (posted 2024-04-02)
copied here because I keep linking it

1/ Everyone is building RAG now. Here are the papers I'd read. 🧵

2/ DPR — Dense Passage Retrieval for Open-Domain QA (Karpukhin et al., EMNLP 2020). Two BERT encoders.

3/ Headline: beats BM25 by 9–19% on top-20 accuracy.

4/ ColBERT (Khattab & Zaharia, SIGIR 2020). "Late interaction": one embedding per token.

5/ Why it matters: close to cross-encoder quality.

6/ HyDE (Gao et al., ACL 2023): embed a hypothetical answer document.
"""


def test_a_thread_gives_an_item_per_paper_with_the_posts_that_go_on_about_it() -> None:
    """A post that opens with a paper's name and citation starts the paper's entry; the posts
    after it that cite nothing ("3/ Headline: …") are more about it. The note's opening paragraph
    introduces the list: a section."""
    es = split_entries(THREAD, "thread.md")
    assert [(e.line_start, e.line_end, e.kind, e.title) for e in es] == [
        (1, 2, "section", 'Saved thread — "RAG reading list" (posted 2024-04-02)'),
        (4, 4, "section", "1/ Everyone is building RAG now. Here are the papers I'd read. 🧵"),
        (6, 8, "item", "DPR — Dense Passage Retrieval for Open-Domain QA (Karpukhin et al., EMNLP 2020)"),
        (10, 12, "item", "ColBERT (Khattab & Zaharia, SIGIR 2020)"),
        (14, 14, "item", "HyDE (Gao et al., ACL 2023)")]
    assert_every_line_once(THREAD, es)
    one = THREAD.split("\n\n4/")[0]  # one cited post is no list of papers
    assert all(e.kind == "section" for e in split_entries(one, "thread.md")[1:])


def test_a_rule_starts_a_part_of_its_own_and_titles_nothing() -> None:
    """The author's notes below the thread, under a "---": their own entry, titled by their first
    words, not "---" and not more posts about HyDE; a rule alone between paragraphs is no entry."""
    note = THREAD + "\n---\nmy own notes after posting:\n- replies pushed back on 3/\n"
    es = split_entries(note, "thread.md")
    assert [(e.line_start, e.line_end, e.title) for e in es[-2:]] == [
        (14, 14, "HyDE (Gao et al., ACL 2023)"), (16, 18, "my own notes after posting")]
    assert_every_line_once(note, es)
    trailing = THREAD + "\n---\n"
    es = split_entries(trailing, "thread.md")
    assert es[-1].title == "HyDE (Gao et al., ACL 2023)" and "---" not in {e.title for e in es}
    assert_every_line_once(trailing, es)


def test_a_post_drawn_apart_by_rules_without_a_heading_keeps_its_opening() -> None:
    """The text before a plain-text post's first rule is a section: it was in no entry at all."""
    post = ("小红书：RAG 必读论文\n先说结论：读这两篇\n\n━━━━━━\n\n1️⃣ DPR｜稠密检索\n双塔\n\n"
            "━━━━━━\n\n2️⃣ HyDE｜假文档\n先编答案\n")
    es = split_entries(post, "xhs.txt")
    assert [(e.line_start, e.kind, e.title) for e in es] == [
        (1, "section", "小红书：RAG 必读论文"), (6, "item", "DPR｜稠密检索"), (11, "item", "HyDE｜假文档")]
    assert_every_line_once(post, es)


def test_a_title_drawn_between_rules_or_numbered_keeps_only_its_words() -> None:
    assert clean_title("--- wav2vec 2.0 ---") == "wav2vec 2.0" and clean_title("2. Whisper (ICML)") == "Whisper (ICML)"
    assert clean_title("StreamingLLM #paper #long-context") == "StreamingLLM"


def test_a_paper_headings_nickname_is_its_alias_and_leads_its_title() -> None:
    note = ORG.replace("  :ARXIV: 1707.06347\n", "  :NICKNAME: PPO\n")
    ppo = split_entries(note, "alignment.txt")[1]
    assert ppo.aliases == ("PPO",) and ppo.title == "PPO: Proximal Policy Optimization Algorithms"


def test_an_org_drawer_left_open_ends_at_the_next_heading() -> None:
    note = ("#+TITLE: x\n* DONE A\n  :PROPERTIES:\n  :AUTHORS: Bob\n"
            "* DONE B\n  :PROPERTIES:\n  :AUTHORS: Al\n  :END:\ntext")
    assert [(e.title, e.authors) for e in split_entries(note, "x.txt")] == [("A", ("Bob",)), ("B", ("Al",))]


def test_an_org_entrys_headings_and_drawer_edges_are_not_quoted() -> None:
    ppo = split_entries(ORG, "alignment.txt")[1]
    quoted = [text for _, text in split_sentences(ppo.text, ppo.line_start)]
    assert "John Schulman, Filip Wolski" in quoted and "Core idea" not in quoted
    assert not any(q.startswith(("DONE", ":PROPERTIES:", ":END:")) for q in quoted)
    assert split_sentences("* a Markdown bullet here\n* and another one", 1) == [
        (1, "a Markdown bullet here"), (2, "and another one")]


def test_lines_padded_without_end_are_read_in_linear_time() -> None:
    """A heading padded with 20 000 spaces took minutes (a lazy group before two optional runs);
    Org headings, tags, rule-drawn titles and cited paragraphs are read in code or bounded."""
    n = 20_000
    notes = ["# x" + " " * n + "y\n\ntext\n",
             "#+TITLE: x\n* DONE x" + " " * n + "y\n* DONE z" + " :" * n + " y\n",
             "# " + "-" * n + "x\n\ntext\n", "# x" + " #a" * n + " y\n\ntext\n",
             "\n\n".join(["2/ X (" + "a" * n, "3/ Y (Li et al.) b", "4/ Z"])]
    start = time.perf_counter()
    for note in notes:
        assert split_entries(note, "x.txt")
    assert time.perf_counter() - start < 2.0


PAPER_NOTE = """---
title: "LoRA: Low-Rank Adaptation of Large Language Models"
aliases: [LoRA, low-rank adapters]
authors: [Edward J. Hu, Yelong Shen]
year: 2021
venue: ICLR 2022
status: re-read
created: 2024-11-02
extra: {nested: ignored}
abstract: |
  Freeze the weights.
  Learn a low-rank update.
---
## Summary
Freeze the weights; learn a low-rank update B·A.

## Log
- reading group
  rating:: 4
  tagged::
"""


def test_every_field_a_note_writes_is_kept_on_its_entries() -> None:
    """Status, venue, created, a rating: fields no typed attribute keeps are kept as written (key
    lower-cased, lists joined), the entry's own ``key:: value`` lines first; a nested mapping or a
    key with no value says nothing."""
    (entry,) = split_entries(PAPER_NOTE, "vault/LoRA.md")
    assert dict(entry.properties) == {
        "rating": "4", "title": "LoRA: Low-Rank Adaptation of Large Language Models",
        "aliases": "LoRA, low-rank adapters", "authors": "Edward J. Hu, Yelong Shen", "year": "2021",
        "venue": "ICLR 2022", "status": "re-read", "created": "2024-11-02",
        "abstract": "Freeze the weights. Learn a low-rank update."}  # a block of lines is one line
    assert entry.properties[0] == ("rating", "4")
    journal = split_entries(DAY_PAGE, "Daily/2024-03-14.md")
    assert {dict(e.properties).get("date") for e in journal} == {"2024-03-14"}


BIBTEX = """% Zotero export, collection "Efficient LLM"
% my comments under each record

@inproceedings{hu2022lora,
  title     = {{LoRA}: Low-Rank Adaptation of Large Language Models},
  author    = {Hu, Edward J. and Shen, Yelong and Wallis, Phillip},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2022},
  url       = {https://arxiv.org/abs/2106.09685}
}
% [done] added 2025-01-08
% Freeze W0, learn the update as BA.

@article{dettmers2023qlora, title = "QLoRA: Efficient Finetuning of Quantized LLMs",
  author = {Tim Dettmers and Artidoro Pagnoni}, journal = {NeurIPS}, year = 2023}
% Finetune a 65B model on a single 48GB GPU.
"""


def test_a_bibtex_export_gives_an_item_per_record_titled_by_its_title_field() -> None:
    """A record and the comments after it are one item, titled by its ``title`` (braces dropped),
    with its authors first-name first, its year and link; its comments quote without their "%"."""
    es = split_entries(BIBTEX, "zotero/export.bib.txt")
    assert [(e.line_start, e.line_end, e.kind, e.title) for e in es] == [
        (1, 2, "section", "Zotero export, collection \"Efficient LLM\""),
        (4, 12, "item", "LoRA: Low-Rank Adaptation of Large Language Models"),
        (14, 16, "item", "QLoRA: Efficient Finetuning of Quantized LLMs")]
    lora, qlora = es[1], es[2]
    assert lora.authors == ("Edward J. Hu", "Yelong Shen", "Phillip Wallis") and lora.url == "https://arxiv.org/abs/2106.09685"
    assert dict(lora.properties)["booktitle"] == "International Conference on Learning Representations (ICLR)"
    assert qlora.authors == ("Tim Dettmers", "Artidoro Pagnoni") and dict(qlora.properties)["year"] == "2023"
    assert ("16", "Finetune a 65B model on a single 48GB GPU.") in [
        (str(line), text) for line, text in split_sentences(qlora.text, qlora.line_start)]
    assert_every_line_once(BIBTEX, es)


def test_a_bibtex_record_left_open_is_read_in_linear_time() -> None:
    """A brace never closed, or nested deeper than one level, ends at the record's line cap."""
    open_record = "@misc{x,\n  title = {" + "a{b " * 20_000 + "\n" + "  note = {" + "x" * 50_000 + "\n"
    started = time.perf_counter()
    (entry,) = split_entries(open_record, "open.txt")
    assert entry.title == "x" and time.perf_counter() - started < 1.0


NOTION_DB = """# Vision papers (Notion DB export)

| Name | Authors | Year | Status |
|---|---|---|---|
| ViT | Dosovitskiy et al. | 2021 | Done |
| CLIP | Radford et al. | 2021 | Reading |

## 简短笔记（每篇一两句）
**ViT**: patches as tokens.

## 待办
- [ ] read CLIP again
"""


def test_a_title_over_a_table_of_things_is_no_one_paper_note() -> None:
    """A database export's title with part-like headings under it ("简短笔记") is not a deep dive
    of one paper: its table's rows are the things."""
    es = split_entries(NOTION_DB, "notion/db.md")
    assert [(e.line_start, e.kind, e.title) for e in es][:3] == [
        (1, "section", "Vision papers (Notion DB export)"), (5, "row", "ViT"), (6, "row", "CLIP")]


TOPIC = """# Topic: RAG

## Foundations

- **REALM: Retrieval-Augmented Language Model Pre-Training** (Guu et al.)
  venue:: ICML 2020
  rating:: 4
  - retriever trained through the masked LM loss
- **Dense Passage Retrieval** (Karpukhin et al.) — DPR
  venue:: EMNLP 2020
  - two BERT encoders
"""


def test_a_database_row_and_a_described_bullet_carry_their_fields() -> None:
    """A table row's cells under their column names are its fields (Status, Added; Authors and Tags
    typed too); a heading's bullets that carry ``key:: value`` fields are things of their own."""
    rows = split_entries(NOTION_DB, "notion/db.md")[1:3]
    assert dict(rows[1].properties) == {"name": "CLIP", "authors": "Radford et al.", "year": "2021",
                                        "status": "Reading"}
    assert rows[1].authors == ("Radford et al.",)
    es = split_entries(TOPIC, "topics/rag.md")
    assert [(e.line_start, e.kind, e.title.split(":")[0].split(" (")[0]) for e in es] == [
        (1, "section", "Topic"), (3, "section", "Foundations"), (5, "item", "REALM"),
        (9, "item", "Dense Passage Retrieval")]
    assert dict(es[2].properties) == {"venue": "ICML 2020", "rating": "4"}


def test_an_org_headings_todo_keyword_is_its_status() -> None:
    """``#+TODO: TODO READING | DONE``: "** READING Soft Actor-Critic" is marked READING."""
    org_note = "#+TITLE: RL\n#+TODO: TODO READING | DONE\n* Classic\n** READING Soft Actor-Critic\nmax entropy\n" \
               "** DONE PPO\nclipped objective\n"
    states = {e.title: dict(e.properties).get("status") for e in split_entries(org_note, "rl.org")}
    assert states["Soft Actor-Critic"] == "READING" and states["PPO"] == "DONE"


def test_paragraphs_led_by_names_in_bold_are_things_with_their_rows_fields() -> None:
    """"**ViT**: …" paragraphs under "## 简短笔记" are a thing each, even under a part's name; the one
    the table's row names ("An Image is Worth 16x16 Words (ViT)") carries that row's fields."""
    note = NOTION_DB.replace("**ViT**: patches as tokens.\n", "**ViT**: patches as tokens.\n\n**CLIP**: 400M pairs.\n")
    es = split_entries(note, "notion/db.md")
    short = {e.title: e for e in es if e.kind == "item"}
    assert set(short) == {"ViT", "CLIP"} and "read CLIP again" not in short["CLIP"].text  # "## 待办" is no part of it
    assert dict(short["CLIP"].properties)["status"] == "Reading" and short["CLIP"].authors == ("Radford et al.",)
    parts = "## Summary\n**Method**: a draft model.\n\n**Results**: 2x faster.\n"
    assert [e.kind for e in split_entries("# Speculative decoding\n" + parts, "spec.md")] == ["item"]
