"""Someone else's notes end to end, in-process (fast tier, hash embedder): front matter in hits,
`--tag`, `rag related`, MCP's related_entries and tag filter, `index.ignore`, a front matter read
as text said in one line, example questions from the user's own notes, `rag eval --collection`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rag.app.mcp_server import NotesTools
from rag.app.render import example_questions
from rag.embed.models import Models
from rag.ingest.notes import Entry
from rag.service import Notes
from rag.settings import Settings

HYDE = """---
title: "Precise Zero-Shot Dense Retrieval without Relevance Labels"
aliases: [HyDE]
authors: [Luyu Gao, Jamie Callan]
year: 2022
date: 2024-11-02
tags: [retrieval, zero-shot]
arxiv: "2212.10496"
---

## Summary
先让 LLM 写一篇假答案文档，再用 Contriever 编码去检索真实文档。 #dense

## Key results
TREC DL19 nDCG@10 61.3，相关：[[检索增强]]
"""
MOC = """---
tags: [moc]
---
# 检索增强

## 检索器
- [[Papers/HyDE|HyDE]] — 假文档检索
- [[ColBERT]] — late interaction

## 待读
- REALM
- RETRO
- Atlas
- GraphRAG
"""
COLBERT = """---
title: "ColBERT: Efficient and Effective Passage Search via Contextualized Late Interaction over BERT"
authors: [Omar Khattab]
tags: [retrieval/multi-vector]
url: https://arxiv.org/abs/2004.12832
---
## Summary
每个 token 一个向量，MaxSim 打分，late interaction。
"""
NOTES = {"vault/Papers/HyDE.md": HYDE, "vault/MOCs/检索增强.md": MOC, "vault/Papers/ColBERT.md": COLBERT,
         "vault/.obsidian/workspace.md": "# Workspace\nHyDE HyDE HyDE\n", "vault/.trash/old.md": "# GhostRetriever\n",
         "templates/paper.md": "# {{title}}\n## Summary\n", "log.txt": "2024-10-14 — Toolformer (NeurIPS 2023)\n"
         "Meta 的模型自己学会调 API。\n\n2024-10-20 — ReAct (ICLR 2023)\nThought / Action / Observation 交替。\n\n"
         "2024-10-21 — Reflexion (NeurIPS 2023)\n失败后写一段反思放进下一轮。\n",
         "rl.org": "#+TITLE: RL\n* DONE Soft Actor-Critic\n:PROPERTIES:\n:VENUE: ICML 2018\n:END:\n"
         "WombatEntropy bonus.\n"}


def indexed(make_corpus: Callable[..., Settings], rag_main: Callable, **more: object) -> Settings:
    settings = make_corpus(NOTES, **more)
    env = {"RAG_CORPUS": str(settings.index.corpus), "RAG_INDEX": str(settings.index.path), "RAG_EMBEDDERS": "hash",
           "RAG_IGNORE": "templates"}
    run = rag_main("index", env=env)
    assert run.code == 0, run.err
    return settings


def env_of(settings: Settings) -> dict[str, str]:
    return {"RAG_CORPUS": str(settings.index.corpus), "RAG_INDEX": str(settings.index.path), "RAG_EMBEDDERS": "hash",
            "RAG_IGNORE": "templates"}


def test_hits_carry_front_matter_and_hidden_or_ignored_notes_are_not_indexed(make_corpus, rag_main) -> None:
    """A one-paper note is one hit titled by its paper, with tags, aliases, authors and date."""
    settings = indexed(make_corpus, rag_main)
    run = rag_main("search", "假答案文档 Contriever", "--json", "-k", "10", env=env_of(settings))
    assert run.code == 0, run.err
    hits = json.loads(run.out)["hits"]
    top = hits[0]
    assert top["title"] == "HyDE: Precise Zero-Shot Dense Retrieval without Relevance Labels"
    assert (top["file"], top["line_start"], top["line_end"]) == ("vault/Papers/HyDE.md", 11, 15)
    assert top["tags"] == ["retrieval", "zero-shot", "dense"] and top["aliases"] == ["HyDE"]
    assert top["authors"] == ["Luyu Gao", "Jamie Callan"] and top["date"] == "2024-11-02"
    assert top["properties"] == {"title": "Precise Zero-Shot Dense Retrieval without Relevance Labels",
                                 "aliases": "HyDE", "authors": "Luyu Gao, Jamie Callan", "year": "2022",
                                 "date": "2024-11-02", "tags": "retrieval, zero-shot", "arxiv": "2212.10496"}
    files = {h["file"] for h in hits}
    assert not any(f.startswith(("vault/.", "templates/")) for f in files)
    assert "GhostRetriever" not in run.out


def test_an_org_file_is_a_note_with_its_drawer_as_fields(make_corpus, rag_main) -> None:
    """Org-mode notes are read whether saved as ``.org`` or ``.txt``; a drawer's fields come with the hit."""
    settings = indexed(make_corpus, rag_main)
    hits = json.loads(rag_main("search", "WombatEntropy", "--json", env=env_of(settings)).out)["hits"]
    assert hits[0]["file"] == "rl.org" and hits[0]["properties"]["venue"] == "ICML 2018"


def test_tag_filter_in_the_cli_and_mcp(make_corpus, rag_main, models: Models) -> None:
    """--tag keeps entries with every tag named; a parent tag matches nested ones (retrieval/…)."""
    settings = indexed(make_corpus, rag_main)
    run = rag_main("search", "retrieval", "--tag", "retrieval", "--json", env=env_of(settings))
    files = {h["file"] for h in json.loads(run.out)["hits"]}
    assert files == {"vault/Papers/HyDE.md", "vault/Papers/ColBERT.md"}
    run = rag_main("search", "retrieval", "--tag", "#zero-shot", "--tag", "retrieval", "--json", env=env_of(settings))
    assert {h["file"] for h in json.loads(run.out)["hits"]} == {"vault/Papers/HyDE.md"}
    bad = rag_main("search", "x", "--tag", "two words", env=env_of(settings))
    assert bad.code == 2 and bad.err.count("\n") == 1 and "tag" in bad.err
    tools = NotesTools(Notes(settings.updated({"index.ignore": ("templates",)}), models))
    out = tools.search_notes("检索", tag=["moc"])
    assert out.hits and {h.file for h in out.hits} == {"vault/MOCs/检索增强.md"}
    assert all("moc" in h.tags for h in out.hits)


def test_related_follows_wikilinks_then_vectors(make_corpus, rag_main, models: Models) -> None:
    """`rag related FILE:LINE` lists the MOC section that links the note first, marked linked."""
    settings = indexed(make_corpus, rag_main)
    run = rag_main("related", "vault/Papers/HyDE.md:12", "--json", env=env_of(settings))
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert data["entry"]["title"].startswith("HyDE:")
    linked = [r for r in data["related"] if r["linked"]]
    assert {(r["file"], r["title"]) for r in linked} == {("vault/MOCs/检索增强.md", "检索增强"),
                                                         ("vault/MOCs/检索增强.md", "检索器")}
    assert data["related"][:len(linked)] == linked and len(data["related"]) == 5
    assert all(r["file"] != "vault/Papers/HyDE.md" for r in data["related"])
    missing = rag_main("related", "vault/Papers/HyDE.md:999", env=env_of(settings))
    assert missing.code == 2 and "covers line 999" in missing.err
    assert rag_main("related", "no-line", env=env_of(settings)).code == 2
    tools = NotesTools(Notes(settings, models))
    out = tools.related_entries("vault/MOCs/检索增强.md", 7, k=3)
    assert out.entry.title == "检索器" and out.related[0].linked and out.related[0].file == "vault/Papers/HyDE.md"


def test_a_front_matter_read_as_text_is_one_line_and_loses_nothing(make_corpus, rag_main) -> None:
    """Bad YAML: the note is indexed as text and `rag index` says so in one line."""
    settings = make_corpus({"bad.md": "---\ntitle: [unclosed\n---\n# Wombat-Former\nWombat text.\n"})
    run = rag_main("index", env=env_of(settings))
    assert run.code == 0, run.err
    notes = [line for line in run.err.splitlines() if line.startswith("note ")]
    assert notes == ["note bad.md: front matter is not valid YAML, read as text"]
    hits = json.loads(rag_main("search", "unclosed", "--json", env=env_of(settings)).out)["hits"]
    assert (hits[0]["line_start"], hits[0]["line_end"]) == (1, 3)  # the header, searchable as text


def test_example_questions_come_from_the_users_notes(make_corpus, rag_main, models: Models) -> None:
    """The app's examples name the user's own items, newest first, one per note; none without items."""
    settings = indexed(make_corpus, rag_main)
    entries = Notes(settings, models).index().entries
    questions = example_questions(entries)
    assert questions[0] == "What do my notes say about HyDE?"
    assert any("ColBERT" in q for q in questions) and len(questions) <= 4
    assert example_questions([e for e in entries if e.kind != "item"]) == []


def test_an_example_question_names_its_subject_or_is_not_asked() -> None:
    """A title's head before its colon, or the whole title when short; never its first three words
    ("What do my notes say about flexibility trap in?" was on the bundled notes' page)."""
    def item(title: str, file: str) -> Entry:
        return Entry(file, title, 1, 2, None, "2026-02-0" + file[0], f"{title}\nx", kind="item")

    entries = [item("flexibility trap in diffusion llm", "9.md"), item("[小米] HySparse：混合稀疏注意力", "8.md"),
               item("Metis-HOME", "7.md")]
    assert example_questions(entries) == ["What do my notes say about HySparse?",
                                          "What do my notes say about Metis-HOME?"]


def test_eval_reports_each_collection_and_both(tmp_path: Path, make_corpus, rag_main) -> None:
    """`rag eval --collection DIR` indexes DIR/notes into DIR/.index and pools both sets; the main
    index is brought up to date too, so a note added since `rag index` is measured, not missed."""
    settings = indexed(make_corpus, rag_main)
    (settings.index.corpus / "late.md").write_text("## Toolformer\n模型自己学会调用 API\n", encoding="utf-8")
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in [
        {"id": "q1", "question": "假答案文档", "gold": [{"file": "vault/Papers/HyDE.md", "line_start": 11,
                                                    "line_end": 15}], "answer_keywords": ["HyDE"],
         "lang": "zh", "type": "which-paper"},
        {"id": "q2", "question": "Toolformer", "gold": [{"file": "late.md", "line_start": 1, "line_end": 2}],
         "answer_keywords": ["Toolformer"], "lang": "en", "type": "which-paper"}]) + "\n", encoding="utf-8")
    other = tmp_path / "other"
    (other / "notes").mkdir(parents=True)
    (other / "notes" / "log.txt").write_text(NOTES["log.txt"], encoding="utf-8")
    (other / "qa.jsonl").write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in [
        {"id": "o1", "question": "哪个模型自己学会调 API",
         "gold": [{"file": "log.txt", "line_start": 1, "line_end": 2}],
         "answer_keywords": ["Toolformer"], "lang": "zh", "type": "which-paper"},
        {"id": "o2", "question": "What is QLoRA's NF4?", "gold": [], "answer_keywords": ["QLoRA"], "lang": "en",
         "type": "uncovered"}]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    run = rag_main("eval", "--qa", str(qa), "--out", str(out), "--split", "all",
                   "--collection", str(other), env=env_of(settings))
    assert run.code == 0, run.err
    pooled = json.loads((out / "collections.json").read_text(encoding="utf-8"))
    assert set(pooled) == {"main", "other", "all"} and (other / ".index" / "CURRENT").is_file()
    assert (pooled["main"]["n"], pooled["other"]["n"], pooled["all"]["n"]) == (2, 1, 3)
    ranks = {r["id"]: r["first_rank"] for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert ranks["q2"] == 1
    assert pooled["all"]["n_uncovered"] == 1 and (out / "other" / "metrics.json").is_file()
    assert "| all " in run.out
    assert rag_main("eval", "--collection", str(tmp_path / "nope"), env=env_of(settings)).code == 2


def test_eval_leaves_out_a_collection_kept_for_tuning(tmp_path: Path, make_corpus, rag_main) -> None:
    """`rag eval --split report` over a collection whose questions are all `tune` reports the others."""
    settings = indexed(make_corpus, rag_main)
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "q1", "question": "假答案文档", "gold": [
        {"file": "vault/Papers/HyDE.md", "line_start": 11, "line_end": 15}], "answer_keywords": ["HyDE"],
        "lang": "zh", "type": "which-paper", "split": "report"}, ensure_ascii=False) + "\n", encoding="utf-8")
    tuning = tmp_path / "tuning"
    (tuning / "notes").mkdir(parents=True)
    (tuning / "notes" / "log.txt").write_text(NOTES["log.txt"], encoding="utf-8")
    (tuning / "qa.jsonl").write_text(json.dumps(
        {"id": "t1", "question": "哪个模型自己学会调 API",
         "gold": [{"file": "log.txt", "line_start": 1, "line_end": 2}], "answer_keywords": ["Toolformer"],
         "lang": "zh", "type": "which-paper", "split": "tune"},
        ensure_ascii=False) + "\n", encoding="utf-8")
    run = rag_main("eval", "--qa", str(qa), "--out", str(tmp_path / "out"), "--split", "report",
                   "--collection", str(tuning), env=env_of(settings))
    assert run.code == 0, run.err
    assert "tuning: no questions in the report split, left out" in run.out
    assert set(json.loads((tmp_path / "out" / "collections.json").read_text(encoding="utf-8"))) == {"main", "all"}
