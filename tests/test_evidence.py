"""The coverage gate and extractive scoring on tiny synthetic retrieval results (fast: no index, no model)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from rag.answer import extractive
from rag.answer.citations import cited_numbers
from rag.answer.evidence import gather_evidence, phrase_mentioned
from rag.answer.extractive import extractive_answer, pick_sentences
from rag.answer.gate import Gate, is_covered, judge, similarity_thresholds, standout_thresholds, unrelated_thresholds
from rag.answer.intent import BUDGETS
from rag.ingest.chunking import Chunk
from rag.ingest.markup import clean_title
from rag.ingest.notes import Entry
from rag.retrieve.names import capitalised_names, negated, question_names
from rag.retrieve.query import make_query
from rag.retrieve.searcher import ChunkMatch, Hit, RetrievalResult
from rag.settings import AnswerSettings
from rag.store import Lexicon
from rag.store.terms import Terms
from rag.text import lexical
from rag.text.dictionary import Dictionary

ANSWER = AnswerSettings()


def make_hit(rank: int, title: str, lines: list[str], sims: list[dict[str, float]] | None = None,
             file: str = "notes.md") -> Hit:
    """An entry starting at line 10*rank whose lines are its chunks (one chunk per line)."""
    start = 10 * rank
    entry = Entry(file, title, start, start + len(lines), None, None, f"## {title}\n" + "\n".join(lines))
    sims = sims or [{} for _ in lines]
    chunks = tuple(ChunkMatch(Chunk(entry.id, file, start + 1 + i, start + 1 + i, line, title), sim)
                   for i, (line, sim) in enumerate(zip(lines, sims, strict=True)))
    return Hit(rank, 1 / (60 + rank), entry, lines[0], file, (start + 1, start + 1), chunks=chunks)


def make_result(question: str, hits: list[Hit], extra_docs: int = 20,
                standout: dict[str, float] | None = None) -> RetrievalResult:
    """The lexicon counts each hit chunk as one document, plus ``extra_docs`` unrelated ones."""
    docs = [lexical.tokenize(m.chunk.embed_text) for h in hits for m in h.chunks]
    docs += [["filler", f"word{i}"] for i in range(extra_docs)]
    return RetrievalResult(make_query(question), hits, Lexicon.of(Terms.of(docs)), standout=standout or {})


OMNI = make_hit(1, "OmniMoE: atomic experts", [
    "OmniMoE splits experts into vector-level atomic experts.",
    "Inference latency is 10.9x lower than the PEER baseline [21].",
], [{"e5-small-q4": 0.80, "use-m3": 0.30}, {"e5-small-q4": 0.86, "use-m3": 0.45}])
SAE = make_hit(2, "AudioSAE: sparse autoencoders for Whisper", [
    "Steering SAE features reduced false speech detections by 70%.",
], [{"e5-small-q4": 0.70, "use-m3": 0.20}])
HOURGLASS = make_hit(3, "Hourglass FFN", [
    "The hidden size shrinks then expands; saved parameters go to attention.",
], [{"e5-small-q4": 0.60, "use-m3": 0.10}])


def test_coverage_is_rarity_weighted_share_of_question_terms() -> None:
    result = make_result("OmniMoE latency PEER hospitals", [OMNI, SAE, HOURGLASS])
    evidence = gather_evidence(result, ANSWER.evidence_entries)
    weights = result.term_weights()
    assert evidence.weights == weights and set(weights) == {"omnimoe", "latency", "peer", "hospitals"}
    expected = (weights["omnimoe"] + weights["latency"] + weights["peer"]) / sum(weights.values())
    assert math.isclose(evidence.coverage, expected)
    assert weights["hospitals"] > weights["omnimoe"]  # a term the notes never use weighs the most


def test_only_the_top_entries_count_for_coverage_but_titles_do() -> None:
    result = make_result("Hourglass attention parameters", [OMNI, SAE, HOURGLASS])
    assert gather_evidence(result, 3).coverage == 1.0
    assert gather_evidence(result, 2).coverage == 0.0
    titled = make_result("Whisper", [SAE])  # only in the title
    assert gather_evidence(titled, 1).coverage == 1.0


def test_best_similarity_per_embedder_from_top_entries() -> None:
    result = make_result("atomic experts", [OMNI, SAE, HOURGLASS])
    assert gather_evidence(result, 3).similarity == {"e5-small-q4": pytest.approx(0.86), "use-m3": pytest.approx(0.45)}
    assert gather_evidence(make_result("x", [SAE, HOURGLASS]), 3).similarity == {
        "e5-small-q4": pytest.approx(0.70), "use-m3": pytest.approx(0.20)}


def test_line_similarity_is_normalised_per_embedder_and_averaged() -> None:
    result = make_result("atomic experts", [OMNI, SAE, HOURGLASS])
    lines = gather_evidence(result, 3).line_similarity
    # e5: 0.60..0.86, use: 0.10..0.45 → the best chunk is 1.0 on both, the worst 0.0 on both
    assert lines[(OMNI.entry.id, 12)] == pytest.approx(1.0)
    assert lines[(HOURGLASS.entry.id, 31)] == pytest.approx(0.0)
    e5, use = (0.80 - 0.60) / 0.26, (0.30 - 0.10) / 0.35
    assert lines[(OMNI.entry.id, 11)] == pytest.approx((e5 + use) / 2, rel=1e-5)
    assert gather_evidence(make_result("q", [make_hit(1, "T", ["one line here"])]), 3).line_similarity == {
        ("notes.md:10-11", 11): 0.0}  # no embedder at all: lexical scoring alone


def test_gate_thresholds_come_from_the_registry() -> None:
    assert similarity_thresholds(["e5", "use-m3", "hash", "BAAI/bge-m3"]) == {
        "e5": None, "use-m3": 0.42, "hash": None, "BAAI/bge-m3": None}
    assert standout_thresholds(["e5", "e5-small-q4", "use-m3", "BAAI/bge-m3"]) == {
        "e5": 2.25, "e5-small-q4": 2.25, "use-m3": None, "BAAI/bge-m3": None}
    unrelated = "hospitals federated learning"  # coverage 0
    near = make_hit(1, "T", ["unrelated text"], [{"use-m3": 0.43, "e5-onnx": 0.99}])
    far = make_hit(1, "T", ["unrelated text"], [{"use-m3": 0.41, "e5-onnx": 0.99}])
    assert is_covered(gather_evidence(make_result(unrelated, [near]), 3), ANSWER)
    assert not is_covered(gather_evidence(make_result(unrelated, [far]), 3), ANSWER)  # e5's cosine alone: no


def test_an_e5_chunk_vouches_when_it_stands_out_from_the_rest_of_the_notes() -> None:
    """e5 gives 0.8-0.92 to almost any pair; what tells is the best chunk against the question's mean."""
    hit = make_hit(1, "T", ["federated text"], [{"e5-onnx": 0.9}])
    stands_out = gather_evidence(make_result("hospitals federated learning", [hit], standout={"e5-onnx": 3.1}), 3)
    assert stands_out.standout == {"e5-onnx": 3.1} and is_covered(stands_out, ANSWER)
    blends_in = gather_evidence(make_result("hospitals federated learning", [hit], standout={"e5-onnx": 2.1}), 3)
    assert not is_covered(blends_in, ANSWER)
    assert is_covered(blends_in, ANSWER, standouts={"e5-onnx": 2.0})
    assert 0.15 <= stands_out.coverage < ANSWER.min_coverage  # the stand-out decides, not the terms
    termless = make_hit(1, "T", ["unrelated text"], [{"e5-onnx": 0.9}])  # none of the question's terms
    chance = gather_evidence(make_result("hospitals federated learning", [termless], standout={"e5-onnx": 3.1}), 3)
    assert judge(chance, ANSWER).reason == ("term coverage 0.00 under its bar 0.36, and no embedder vouches: e5-onnx "
                                            "stand-out z 3.10 (bar 2.25), by chance: term coverage 0.00 is under 0.15")
    assert is_covered(chance, ANSWER.model_copy(update={"min_standout_coverage": 0.0}))


def test_a_question_an_embedder_finds_unrelated_to_every_chunk_is_not_covered() -> None:
    """"How long should I boil eggs": in a small collection some chunk stands out for e5 by chance
    and "long" is a word the notes use, while USE finds nothing near (cosine 0.10): its calibrated
    floor overrules the stand-out and the shared words."""
    assert unrelated_thresholds(["use-m3", "e5-onnx"]) == {"use-m3": 0.23, "e5-onnx": None}
    eggs = "how long should I boil eggs for a jammy yolk"
    for use, covered in ((0.10, False), (0.30, True)):
        hit = make_hit(1, "T", ["boil eggs text"], [{"e5-onnx": 0.81, "use-m3": use}])
        gate = judge(gather_evidence(make_result(eggs, [hit], standout={"e5-onnx": 2.5}), 3), ANSWER)
        assert gate.covered is covered
    assert gate.reason == "e5-onnx stand-out z 2.50 (bar 2.25)"
    hit = make_hit(1, "T", ["boil eggs text"], [{"e5-onnx": 0.81, "use-m3": 0.10}])
    evidence = gather_evidence(make_result(eggs, [hit], standout={"e5-onnx": 2.5}), 3)
    assert judge(evidence, ANSWER).reason == (
        "nothing in the notes is near the question: use-m3 similarity 0.10 is under 0.23")
    assert is_covered(evidence, ANSWER, unrelated={"use-m3": None})
    assert not is_covered(evidence, ANSWER.model_copy(update={"min_coverage": 0.2}))  # shared words do not cover it
    named = make_hit(1, "Self-Forcing", ["Self-Forcing rolls out its own frames"], [{"e5-onnx": 0.81, "use-m3": 0.10}])
    asked = gather_evidence(make_result("Self-Forcing 在哪些条目？", [named], standout={"e5-onnx": 2.5}), 3)
    assert asked.names == ["Self-Forcing"] and not asked.missing_names
    assert is_covered(asked, ANSWER.model_copy(update={"min_coverage": 1.0}))  # a name the notes hold is not unrelated


def test_an_uncalibrated_embedder_never_vouches_unless_given_a_threshold() -> None:
    hit = make_hit(1, "T", ["unrelated text"], [{"BAAI/bge-m3": 0.99}])
    evidence = gather_evidence(make_result("hospitals federated learning", [hit]), 3)
    assert not is_covered(evidence, ANSWER)
    assert is_covered(evidence, ANSWER, {"BAAI/bge-m3": 0.9})
    assert not is_covered(evidence, ANSWER, {"BAAI/bge-m3": None})


def test_the_coverage_settings_decide() -> None:
    lexical_only = make_hit(1, OMNI.entry.title, [m.chunk.text for m in OMNI.chunks])
    evidence = gather_evidence(make_result("atomic experts hospitals federated learning", [lexical_only]), 3)
    assert 0 < evidence.coverage < 0.5 and evidence.similarity == {} and evidence.standout == {}
    lexical = ANSWER.model_copy(update={"min_coverage": 1.0})  # no embedder can vouch: the lexical bar
    assert is_covered(evidence, lexical.model_copy(update={"min_coverage_lexical": evidence.coverage}))
    assert not is_covered(evidence, lexical.model_copy(update={"min_coverage_lexical": evidence.coverage + 0.01}))
    declined = gather_evidence(make_result("atomic experts hospitals federated learning", [lexical_only],
                                           standout={"e5-onnx": 1.0}), 3)  # e5 can vouch, and does not
    strict = ANSWER.model_copy(update={"min_coverage_lexical": 0.0})
    assert is_covered(declined, strict.model_copy(update={"min_coverage": declined.coverage}))
    assert not is_covered(declined, strict.model_copy(update={"min_coverage": declined.coverage + 0.01}))


def test_named_things_the_notes_never_mention_are_not_covered() -> None:
    assert question_names("Does TabPFN beat MEMIT or Qwen2.5 in English?") == ["TabPFN", "MEMIT", "Qwen2.5"]
    result = make_result("How does MEMIT compare with OmniMoE on PEER latency?", [OMNI])
    evidence = gather_evidence(result, 3)
    assert evidence.names == ["MEMIT", "OmniMoE", "PEER"] and evidence.missing_names == ["MEMIT"]
    assert is_covered(evidence, ANSWER)
    result = make_result("Do ROME and MEMIT edit OmniMoE experts?", [OMNI])
    evidence = gather_evidence(result, 3)
    assert evidence.missing_names == ["ROME", "MEMIT"] and not is_covered(evidence, ANSWER)
    compound = gather_evidence(make_result("OmniMoE-style GPUs", [OMNI]), 3)
    assert compound.missing_names == ["GPUs"]  # OmniMoE-style counts by its named part


def test_the_gate_says_which_signal_decided() -> None:
    """`rag ask --json` and `rag eval` say why a question was refused, with the value and its bar."""
    names = gather_evidence(make_result("Do ROME and MEMIT edit OmniMoE experts?", [OMNI]), 3)
    assert judge(names, ANSWER).reason == "the notes never mention ROME, MEMIT"
    hit = make_hit(1, "T", ["federated text"], [{"e5-onnx": 0.9}])
    blends_in = gather_evidence(make_result("hospitals federated learning", [hit], standout={"e5-onnx": 2.1}), 3)
    gate = judge(blends_in, ANSWER)
    assert not gate.covered and gate.reason == (
        "term coverage 0.27 under its bar 0.36, and no embedder vouches: e5-onnx stand-out z 2.10 (bar 2.25)")
    stands_out = gather_evidence(make_result("hospitals federated learning", [hit], standout={"e5-onnx": 3.1}), 3)
    assert judge(stands_out, ANSWER) == Gate(True, "e5-onnx stand-out z 3.10 (bar 2.25)")


def test_a_question_asking_a_field_of_the_entry_it_names_is_covered() -> None:
    """"DPO 那篇 note 打了哪些 tags": its words are not the note's, its answer is a field the named
    entry holds. The same question of an entry that holds no such field is judged otherwise."""
    dpo = make_hit(1, "DPO: Direct Preference Optimization", ["一句话：把 RLHF 两步合成一步。"])
    tagged = replace(dpo, entry=replace(dpo.entry, properties=(("tags", "paper, 必读"),)))
    question = "DPO 那篇 note 打了哪些 tags？"
    assert judge(gather_evidence(make_result(question, [tagged]), 3), ANSWER) == Gate(
        True, "the question asks for the tags of the entry it names")
    assert judge(gather_evidence(make_result(question, [dpo]), 3), ANSWER).reason != (
        "the question asks for the tags of the entry it names")


def test_a_question_calling_the_top_entry_by_its_rare_name_is_covered() -> None:
    """"QLoRA 说 65B 的模型可以在多大显存的单卡上微调": its Chinese words are not the English note's, its
    name is the top entry's own; a name most of the notes use ("LLM") singles nothing out."""
    qlora = make_hit(1, "QLoRA: Efficient Finetuning of Quantized LLMs", ["Finetune a 65B model on a single 48GB GPU."])
    question = "QLoRA 说 65B 的模型可以在多大显存的单卡上微调？"
    assert judge(gather_evidence(make_result(question, [qlora]), 3), ANSWER) == Gate(
        True, "the question names the top entry: QLoRA")
    common = make_hit(1, "LLM: notes", ["Finetune a 65B model on a single 48GB GPU."] * 4)
    assert not judge(gather_evidence(make_result("LLM 说 65B 的模型可以在多大显存的单卡上微调？", [common], 0), 3),
                     ANSWER).covered


def test_a_rare_date_the_top_entries_hold_is_no_unrelated_question() -> None:
    """"Which papers did I read on 2025-05-02?" is unlike any chunk to USE, but the entries that say
    "read-on:: 2025-05-02" answer it; "how long should I boil eggs" stays unrelated."""
    colbert = make_hit(1, "ColBERT", ["late interaction", "read-on:: 2025-05-02"], [{"use-m3": 0.1}] * 2)
    dated = gather_evidence(make_result("Which papers did I read on 2025-05-02?", [colbert]), 3)
    assert dated.exact_held == ("2025-05-02",)
    assert not judge(dated, ANSWER).reason.startswith("nothing in the notes is near")
    eggs = gather_evidence(make_result("how long should I boil eggs for 2025", [colbert]), 3)
    assert eggs.exact_held == () and judge(eggs, ANSWER).reason.startswith("nothing in the notes is near")


def test_an_asked_field_of_the_top_entry_is_shown_though_another_entry_quotes_better() -> None:
    """"DINOv2 现在是什么状态": a to-do naming DINOv2 holds the question's words, the top entry holds
    its status; the answer shows both, the status with the top entry."""
    dino = make_hit(1, "DINOv2", ["自监督，重点在数据。"])
    dino = replace(dino, entry=replace(dino.entry, properties=(("status", "Reading"),)))
    todo = make_hit(2, "待办", ["[ ] DINOv2 现在还没读完，状态待定"])
    result = make_result("DINOv2 现在是什么状态？", [dino, todo])
    text = (extractive_answer(result.hits, gather_evidence(result, 3), "zh") or ("",))[0]
    assert "(status: Reading) [1]" in text and "[2]" in text


def test_extractive_scores_sentences_and_neutralises_note_brackets() -> None:
    result = make_result("How much lower is OmniMoE latency than PEER?", [OMNI, SAE, HOURGLASS])
    evidence = gather_evidence(result, 3)
    sentences = pick_sentences(result.hits, evidence)
    assert (sentences[0].n, sentences[0].line) == (1, 12)
    text, cited = extractive_answer(result.hits, evidence, "en") or ("", [])
    assert text.startswith("From your notes:\n- OmniMoE: atomic experts: ")
    assert "10.9x lower" in text and "［21］" in text and "[21]" not in text
    assert cited == [1] and cited_numbers(text) == cited  # every [n] in the answer is a citation


def test_extractive_is_deterministic_and_empty_without_sentences() -> None:
    result = make_result("Whisper false speech detections", [SAE, OMNI])
    evidence = gather_evidence(result, 3)
    assert extractive_answer(result.hits, evidence, "zh") == extractive_answer(result.hits, evidence, "zh")
    assert extractive_answer(result.hits, evidence, "zh")[0].startswith("笔记中提到：\n- AudioSAE")  # type: ignore[index]
    bare = make_hit(1, "T", ["---"])
    assert extractive_answer([bare], gather_evidence(make_result("x", [bare]), 3), "en") is None


def test_an_answer_shows_the_note_fields_the_question_asks_for() -> None:
    """"What status did I give LoRA" is answered from the note's front matter, which no sentence of
    the entry holds; a question about the paper itself ("参数更新", "偏好标签") shows no field."""
    lora = make_hit(1, "LoRA: low-rank adaptation", ["LoRA learns a low-rank update of frozen weights."])
    lora = replace(lora, entry=replace(lora.entry, properties=(("status", "re-read"), ("venue", "ICLR 2022"),
                                                               ("updated", "2025-03-21"))))

    def answer(question: str) -> str:
        result = make_result(question, [lora])
        return (extractive_answer(result.hits, gather_evidence(result, 3), "en") or ("", []))[0]
    assert answer("What status did I give LoRA, and where was it published?").endswith(
        "(status: re-read; venue: ICLR 2022) [1]")
    assert answer("LoRA 最后更新时间是？").endswith("(updated: 2025-03-21) [1]")
    assert "(" not in answer("LoRA 的参数更新和偏好标签是怎么做的？")
    rated = replace(lora, entry=replace(lora.entry, text="## LoRA\nRank 4 to 57% of the cost.",
                                        properties=(("rating", "5"),)))  # "57%" does not say the rating 5
    result = make_result("What rating did I give LoRA?", [rated])
    assert (extractive_answer(result.hits, gather_evidence(result, 3), "en") or ("",))[0].endswith("(rating: 5) [1]")


def test_a_how_much_question_is_not_answered_by_sentences_without_a_number() -> None:
    """The notes name the paper but never say its LoRA rank: quoting them would look like an answer."""
    hit = make_hit(1, "Evaluating PEFT for RLVR", ["An analysis of LoRA, DoRA and AdaLoRA under RLVR.",
                                                   "We recommend a larger learning rate for LoRA."])
    result = make_result("What LoRA rank and learning rate does the RLVR analysis recommend, how large?", [hit])
    assert extractive_answer(result.hits, gather_evidence(result, 3), "en") is None
    rank = "What LoRA rank does the analysis recommend, how large?"
    for stated, asked in (("Rank 16 works best for LoRA.", rank), ("A LoRA rank of sixteen works best.", rank),
                          ("推荐的 LoRA 秩是基线的两倍。", "RLVR 分析推荐的 LoRA 秩有多大？")):
        told = make_hit(1, "Evaluating PEFT for RLVR", [*hit.entry.text.split("\n")[1:], stated])
        result = make_result(asked, [told])
        text, _ = extractive_answer(result.hits, gather_evidence(result, 3), "en") or ("", [])
        assert text, stated
    titled = make_hit(1, "PEFT for RLVR: rank 16 beats full fine-tuning", hit.entry.text.split("\n")[1:])
    result = make_result("What LoRA rank does the analysis recommend, how large?", [titled])
    assert extractive_answer(result.hits, gather_evidence(result, 3), "en")  # the label says it


def test_a_versioned_name_counts_whole_unless_its_parts_are_names() -> None:
    """Mamba-2 is not Mamba (the notes may cover one and not the other); GRPO-style is GRPO."""
    hit = make_hit(1, "GRPO and Mamba", ["GRPO trains Mamba models."])
    evidence = gather_evidence(make_result("Is Mamba-2 trained GRPO-style?", [hit]), 3)
    assert evidence.names == ["Mamba-2", "GRPO-style"] and evidence.missing_names == ["Mamba-2"]


def test_an_acronym_a_retrieved_entry_spells_out_in_any_case_is_mentioned() -> None:
    """CFG is "classifier-free guidance" in running text, or "Classifier-Free Diffusion Guidance"
    as the paper's title has it; FFG is neither."""
    for text in ("条件控制：classifier-free guidance、ControlNet", "Classifier-Free Diffusion Guidance（Ho, 2021）"):
        hit = make_hit(1, "Day", [text])
        assert gather_evidence(make_result("CFG 训练时怎么做？", [hit]), 3).missing_names == []
        assert gather_evidence(make_result("FFG 训练时怎么做？", [hit]), 3).missing_names == ["FFG"]


def test_a_capitalised_word_beside_a_name_makes_a_name_of_its_own() -> None:
    """Self-RAG is not RAG: notes on RAG do not cover it, notes writing "Self RAG" do."""
    rag = make_hit(1, "RAG", ["RAG retrieves passages for a seq2seq generator."])
    evidence = gather_evidence(make_result("What are Self-RAG's reflection tokens for?", [rag]), 3)
    assert evidence.missing_names == ["Self-RAG"]
    apart = make_hit(1, "Self RAG", ["Self RAG emits reflection tokens."])
    assert gather_evidence(make_result("What are Self-RAG's reflection tokens for?", [apart]), 3).missing_names == []


def test_capitalised_words_are_names_except_sentence_starts_dates_and_languages() -> None:
    assert capitalised_names("Which paper introduced Medusa, the extra decoding heads?") == ["Medusa"]
    assert capitalised_names("In the Feb 9 Hugging Face daily papers report, which paper?") == ["Hugging Face"]
    assert capitalised_names("How does it work? And Why?") == []
    assert capitalised_names("Sora 的技术报告里，视频是怎么切的？") == ["Sora"]  # Chinese: no sentence starts
    # "of" joins a name's words; a stop word does not start one
    assert capitalised_names("What did the Tree of Thoughts paper report on the Game of 24?") == [
        "Tree of Thoughts", "Game"]
    assert capitalised_names("哪篇论文提出了 Constitutional AI？") == ["Constitutional AI"]
    assert capitalised_names("Is there a Chinese model?") == []
    # where the notes are kept is no name the notes must write: "the notes never mention Logseq"
    # refused a question about the Logseq journal's Mamba entry
    assert capitalised_names("Logseq 里记的 Mamba，selective 是什么意思？") == ["Mamba"]
    assert capitalised_names("In my Notion table, which paper?") == []
    assert question_names("那个 CSV 书单里，用真实 GitHub issue 做任务的 SWE-bench？") == ["SWE-bench"]


def test_a_capitalised_name_the_notes_never_write_is_not_covered() -> None:
    hits = [make_hit(1, "JudgeRLVR", ["小米的论文：先训练判断，再训练生成。"]),
            make_hit(2, "Self-Forcing", ["Self-Forcing trains a video model on its own rollouts."])]
    sora = gather_evidence(make_result("How was Sora trained on its own rollouts?", hits), 3)
    assert sora.missing_names == ["Sora"] and not is_covered(sora, ANSWER)
    phrase = gather_evidence(make_result("哪篇论文提出了 Constitutional AI？", hits), 3)
    assert "Constitutional AI" in phrase.missing_names and not is_covered(phrase, ANSWER)
    forcing = gather_evidence(make_result("How is the video model in Self Forcing trained?", hits), 3)
    assert forcing.names == ["Self Forcing"] and forcing.missing_names == []  # one entry writes it


def test_a_name_the_notes_write_in_chinese_is_mentioned_through_the_dictionary() -> None:
    hits = [make_hit(1, "JudgeRLVR", ["小米的论文：先训练判断，再训练生成。"])]
    result = make_result("Which Xiaomi paper judges first?", hits)
    assert gather_evidence(result, 3).missing_names == ["Xiaomi"]  # no dictionary: unknown
    cedict = Dictionary.parse(["小米 小米 [Xiao3 mi3] /Xiaomi, Chinese electronics company/"])
    assert gather_evidence(replace(result, dictionary=cedict), 3).missing_names == []


def test_an_answer_names_the_paper_its_entry_keeps_naming() -> None:
    """A title that does not say the method: the rare name the entry repeats leads its line,
    unless the question already holds it (then the title alone)."""
    hit = make_hit(1, "Back to Basics: Revisiting Exploration in RL", [
        "ProGRPO reweights low-probability tokens by their generative probability.",
        "ProGRPO beats the GRPO baseline on AIME.", "GRPO alone collapses entropy."])
    result = make_result("Which paper revisits exploration with generative probability?", [hit])
    text, _ = extractive_answer(result.hits, gather_evidence(result, 3), "en") or ("", [])
    assert text.startswith("From your notes:\n- ProGRPO — Back to Basics: Revisiting Exploration in RL: ")
    result = make_result("How does ProGRPO reweight low-probability tokens?", [hit])
    text, _ = extractive_answer(result.hits, gather_evidence(result, 3), "en") or ("", [])
    assert text.startswith("From your notes:\n- Back to Basics: Revisiting Exploration in RL: ")


def test_another_entry_is_cited_only_when_it_nearly_matches_the_best(monkeypatch: pytest.MonkeyPatch) -> None:
    """Precision: a weaker second entry is left out rather than cited beside the answer."""
    peer = make_hit(2, "PEER: a million experts", ["PEER latency is 3x lower than dense."],
                    [{"e5-small-q4": 0.84, "use-m3": 0.45}])
    result = make_result("How much lower is OmniMoE latency than PEER?", [OMNI, peer])
    evidence = gather_evidence(result, 3)
    assert {s.n for s in pick_sentences(result.hits, evidence)} == {1}
    loose = {intent: replace(b, other_entry_ratio=0.0, rank_decay=0.0) for intent, b in BUDGETS.items()}
    monkeypatch.setattr(extractive, "BUDGETS", loose)  # the old rule: the keep ratio alone
    assert {s.n for s in pick_sentences(result.hits, evidence)} == {1, 2}


def test_a_multi_word_name_is_written_only_when_its_words_stand_together() -> None:
    """Words of a name scattered over an entry do not make it ("Decision Transformer")."""
    far = make_hit(1, "RL notes", ["A decision rule for offline RL " + "with many steps " * 6 + "and a transformer."])
    near = make_hit(1, "RL notes", ["The decision transformer conditions on returns."])
    assert not phrase_mentioned("Decision Transformer", make_result("How does Decision Transformer work?", [far]))
    assert phrase_mentioned("Decision Transformer", make_result("How does Decision Transformer work?", [near]))


def test_entries_asked_about_side_by_side_each_get_a_line() -> None:
    """"Flamingo and BLIP-2 …": the answer quotes both, though one entry's sentences score far
    lower, and no entry the question does not name; a name the question only mentions as a
    setting ("on HumanEval") gets no line."""
    blip = make_hit(1, "BLIP-2: Bootstrapping Language-Image Pre-training", [
        "BLIP-2 bridges the frozen image encoder and the frozen LLM with a Q-Former.",
        "It beats Flamingo80B by 8.7% on zero-shot VQAv2."])
    flamingo = make_hit(2, "Flamingo: a Visual Language Model", ["Perceiver Resampler feeds gated cross-attention."])
    llava = make_hit(3, "LLaVA", ["Unlike Flamingo and BLIP-2, LLaVA bridges its frozen LLM by one layer on VQAv2."])
    both = make_result("Flamingo and BLIP-2 keep the LLM frozen. How do their bridges differ on VQAv2?",
                       [blip, flamingo, llava])
    assert {s.n for s in pick_sentences(both.hits, gather_evidence(both, 3))} == {1, 2}  # and no other
    setting = make_result("How does BLIP-2 bridge the LLM, and does it beat Flamingo on VQAv2?", [blip, flamingo])
    assert {s.n for s in pick_sentences(setting.hits, gather_evidence(setting, 3))} == {1}


def test_an_answer_asked_for_the_arxiv_id_gives_it_and_no_line_repeats_the_title() -> None:
    hit = make_hit(1, "FlashAttention: Fast and Memory-Efficient Exact Attention", [
        "FlashAttention: Fast and Memory-Efficient Exact Attention",
        "Tiling keeps the attention matrix out of HBM; Stanford, NeurIPS 2022.",
        "2205.14135"])
    asked = make_result("What's the arXiv id of the FlashAttention paper from Stanford?", [hit])
    text, _ = extractive_answer(asked.hits, gather_evidence(asked, 3), "en") or ("", [])
    assert text.endswith("NeurIPS 2022. (arXiv 2205.14135) [1]")
    dated = make_hit(1, "Fast Exact Attention", ["2022-05-27", "Tiling keeps the matrix out of HBM."])
    result = make_result("When was fast exact attention read?", [dated])
    assert "2022-05-27" in [s[3].text for s in extractive._scored(result.hits, gather_evidence(result, 3), read=1)]
    repeated = make_hit(1, "Fast Exact Attention", ["Fast Exact Attention", "Tiling keeps the matrix out of HBM."])
    title = make_result("Which paper gives fast exact attention?", [repeated])
    assert [s.text for s in pick_sentences(title.hits, gather_evidence(title, 3))] == [
        "Tiling keeps the matrix out of HBM."]  # a line that only repeats the title is not quoted
    plain = make_result("Which lab wrote the FlashAttention paper?", [hit])
    assert "2205.14135" not in (extractive_answer(plain.hits, gather_evidence(plain, 3), "en") or ("", []))[0]


def test_a_quoted_lead_in_brings_the_list_it_introduces() -> None:
    """"为缓解稀疏奖励，分层奖励结构由三部分组成：" answers nothing by itself; the lines after it do."""
    hit = make_hit(1, "Seg-ReSearch", [
        "Seg-ReSearch 训练多模态模型调用搜索。", "为缓解稀疏奖励，分层奖励结构由三部分组成：", "IGR 管最终分割的 IoU；",
        "TPR 管搜索调用的格式；", "第三层惩罚过长的推理。", "实验在 ReasonSeg 上。"])
    result = make_result("Seg-ReSearch 的分层奖励结构由哪几部分组成？", [hit])
    texts = [s.text for s in pick_sentences(result.hits, gather_evidence(result, 3))]
    start = texts.index("为缓解稀疏奖励，分层奖励结构由三部分组成：")
    assert texts[start + 1:] == ["IGR 管最终分割的 IoU；", "TPR 管搜索调用的格式；", "第三层惩罚过长的推理。"]


def test_a_how_much_question_prefers_the_number_whose_unit_runs_into_chinese() -> None:
    """"906M规模" states a quantity though no word boundary follows its M."""
    hit = make_hit(1, "Hourglass FFN", ["Hourglass 在大规模下困惑度更低。", "Hourglass 在906M规模下困惑度更低。"])
    result = make_result("Hourglass 的困惑度低多少？", [hit])
    best = extractive._scored(result.hits, gather_evidence(result, 3), read=1)[0]
    assert best[3].text == "Hourglass 在906M规模下困惑度更低。"


def test_a_sentence_in_the_other_language_answers_by_its_translations() -> None:
    """An English question over a Chinese entry: the sentence saying 专家 (experts) and 准确
    (accurate) is the one quoted, though it shares no token with the question."""
    hit = make_hit(1, "Kosmos", ["Kosmos 一次运行读 1500 篇论文。", "报告中 79% 的陈述被独立专家验证准确。"])
    cedict = Dictionary.parse(["專家 专家 [zhuan1 jia1] /expert/specialist/",
                               "準確 准确 [zhun3 que4] /accurate/exact/"])
    result = replace(make_result("What share of its statements did experts judge accurate?", [hit]), dictionary=cedict)
    best = extractive._scored(result.hits, gather_evidence(result, 3), read=1)[0]
    assert best[3].text == "报告中 79% 的陈述被独立专家验证准确。"


def test_a_sentence_is_not_cut_inside_brackets() -> None:
    """"(the closed-book setting; 56.1%)" stays one quote: cut at its ";", the number was a fragment
    too short to quote. A bracket never closed holds together no more than one quote's length."""
    quote = '> "QA drops below closed-book (i.e., the closed-book setting; 56.1%)" (p. 4)'
    assert [text for _, text in extractive.split_sentences(quote)] == [quote]
    cut = extractive.split_sentences("方法很简单（比如 A。B）。这是第二句话。")
    assert [text for _, text in cut] == ["方法很简单（比如 A。B）。", "这是第二句话。"]
    assert len(extractive.split_sentences("（未闭合 " + "这是一句话。" * 60)) > 10


def test_an_initial_an_abbreviation_or_a_property_does_not_end_a_sentence() -> None:
    """"Carlos E. Jimenez" cut at "E." left "Jimenez, …" to quote without the line's key; "year:: 2022"
    cut at "::" left "2022", too short to quote, so a year asked for was never quoted."""
    def sentences(text: str) -> list[str]:
        return [s for _, s in extractive.split_sentences(text)]
    assert sentences("authors:: John Yang, Carlos E. Jimenez, Ofir Press") == [
        "authors:: John Yang, Carlos E. Jimenez, Ofir Press"]
    assert sentences("year:: 2022") == ["year:: 2022"]
    assert sentences("As Dettmers et al. 2023 show, e.g. NF4 works. Then the rest.") == [
        "As Dettmers et al. 2023 show, e.g. NF4 works.", "Then the rest."]
    assert sentences("方法: Draft first. Verify later.") == ["Draft first.", "Verify later."]


def test_a_term_the_top_entries_write_in_the_other_language_is_covered() -> None:
    """"experts … accurate" over an entry that says 专家 … 准确: the question is covered, not refused for
    want of its English words."""
    hit = make_hit(1, "Kosmos", ["报告中 79% 的陈述被独立专家验证准确。"])
    cedict = Dictionary.parse(["專家 专家 [zhuan1 jia1] /expert/specialist/",
                               "準確 准确 [zhun3 que4] /accurate/exact/"])
    result = make_result("experts accurate", [hit])
    assert gather_evidence(result, 3).coverage == 0.0
    assert gather_evidence(replace(result, dictionary=cedict), 3).coverage == 1.0


def test_a_bullet_that_is_its_own_title_is_quoted_under_a_short_label() -> None:
    """A digest item titled by its whole bullet: its sentences are its text, not repeats of the
    title, and the label is the name before the dash, not the bullet again."""
    bullet = ("**MoBA: Mixture of Block Attention** (Moonshot AI) — MoE-style routing applied to attention: "
              "a gate picks the top-k blocks for each query. They say it already serves Kimi.")
    title = clean_title(bullet)
    entry = Entry("digest.md", title, 31, 31, None, None, f"- {bullet} https://arxiv.org/abs/2502.13189")
    chunk = Chunk(entry.id, entry.file, 31, 31, entry.text, title)
    hit = Hit(1, 0.1, entry, bullet, entry.file, (31, 31), chunks=(ChunkMatch(chunk, {}),))
    result = make_result("How does MoBA pick the blocks each query attends to?", [hit])
    text, _ = extractive_answer(result.hits, gather_evidence(result, 3), "en") or ("", [])
    assert text.splitlines()[1].startswith("- MoBA: Mixture of Block Attention (Moonshot AI): ")
    assert "top-k blocks for each query" in text and text.count("MoE-style routing") == 1


def test_retrievers_agreeing_cover_a_question_only_with_some_of_its_terms() -> None:
    """BM25 and the embedders agree on the least bad entry for a sourdough question too."""
    bread = make_hit(1, "T", ["the loss did not rise for 5 days"], [{"use-m3": 0.30}])
    agreed = replace(gather_evidence(make_result("sourdough feeding schedule", [bread]), 3), consensus=True)
    assert agreed.coverage < ANSWER.min_consensus_coverage and not is_covered(agreed, ANSWER)
    assert judge(agreed, ANSWER.model_copy(update={"min_consensus_coverage": 0.0})) == Gate(
        True, "BM25 and every embedder rank the same entry near the top")


def test_a_csv_row_is_quoted_by_its_cells() -> None:
    row = ('"6","Measuring Massive Multitask Language Understanding","Hendrycks et al.","2021",'
           '"MMLU; GPT-3 175B only 43.9%"')
    entry = Entry("list.txt", "Measuring Massive Multitask Language Understanding", 7, 7, None, None, row, kind="row")
    hit = Hit(1, 0.1, entry, row, entry.file, (7, 7), chunks=(ChunkMatch(Chunk(entry.id, entry.file, 7, 7, row,
                                                                                 entry.title), {}),))
    result = make_result("What MMLU score did GPT-3 175B get?", [hit])
    text, _ = extractive_answer(result.hits, gather_evidence(result, 3), "en") or ("", [])
    assert text.endswith("Understanding: GPT-3 175B only 43.9% [1]") and '"' not in text


def test_a_sentence_writing_an_acronym_carries_the_words_the_question_spells_out() -> None:
    """"How large was the reward model?" is answered by "RM is only 6B", which shares no word with it."""
    hit = make_hit(1, "InstructGPT", ["Labelers prefer the 1.3B model over GPT-3 models.",
                                     "RM is only 6B, not 175B.",
                                     "PPO fine-tunes the policy with a KL penalty."])
    result = make_result("How large was the reward model used in InstructGPT?", [hit])
    best = extractive._scored(result.hits, gather_evidence(result, 3), 1)[0]
    assert best[3].text == "RM is only 6B, not 175B."


@pytest.mark.parametrize(("question", "ruled_out", "asked"), [
    ("有篇论文变成 preference pair 上的一个分类 loss，完全不用 RL，叫什么？", {"rl"}, set()),
    ("Which paper tuned LLaMA on a thousand examples, with no RLHF at all?", {"rlhf"}, {"llama"}),
    ("人形机器人预训练不用 PPO、改用 SAC 的那篇工作？", {"ppo"}, {"sac"}),  # "、" ends what the cue reaches
    ("有没有讲 VLA 模型（比如 OpenVLA）在真机上微调的笔记？", set(), {"vla", "openvla"}),  # 有没有 asks
    ("Does RLHF need PPO? Without a critic it is cheaper.", set(), {"rlhf", "ppo"}),
    ("Which world model was trained without RL?", {"rl"}, set()),  # the "rl" of "world" is no place of RL
    ("Which paper beats not only GPT-4 but also PaLM?", set(), {"gpt-4", "palm"}),
])
def test_a_name_the_question_rules_out_singles_out_no_entry(question: str, ruled_out: set[str],
                                                            asked: set[str]) -> None:
    """"完全不用 RL" says what the answer is not: the exact ranking would push every entry about RL."""
    exact = set(make_query(question).exact)
    assert asked <= exact and not ruled_out & exact
    assert all(negated(question, term) for term in ruled_out)


def test_a_name_ruled_out_is_no_name_the_notes_must_mention() -> None:
    """"without TabPFN": the gate does not refuse because the notes never write TabPFN."""
    asked = gather_evidence(make_result("Which paper makes MoE inference faster, with no TabPFN?", [OMNI]), 3)
    assert "TabPFN" not in asked.names and "TabPFN" not in asked.missing_names
    named = gather_evidence(make_result("Which paper makes MoE inference faster than TabPFN?", [OMNI]), 3)
    assert "TabPFN" in named.missing_names


def test_a_quote_does_not_open_by_repeating_its_label() -> None:
    """A digest bullet that is its own title is quoted without saying its title twice; a label cut
    short ("…") leaves the quote whole, or it would start mid-word."""
    title = "Speculative decoding (Leviathan, Kalman, Matias; ICML 2023)"
    hit = make_hit(1, title, [f"{title} a small draft model proposes tokens, the large model verifies them."])
    result = make_result("How does speculative decoding use a draft model?", [hit])
    text, _ = extractive_answer(result.hits, gather_evidence(result, 3), "en") or ("", [])
    assert text.count("Leviathan") == 1 and f"{title}: a small draft model proposes tokens" in text
    limo = make_hit(1, "LIMO: Less is More for Reasoning", ["Less is More for Reasoning — only 817 curated samples."])
    result = make_result("How many samples did LIMO fine-tune on?", [limo])
    text, _ = extractive_answer(result.hits, gather_evidence(result, 3), "en") or ("", [])
    assert text.startswith("From your notes:\n- LIMO: Less is More for Reasoning: only 817 curated samples.")
    long_title = "Render of CoT " + "w" * 120
    cut = make_hit(1, long_title, [long_title + " trains a VLM on rendered chains of thought."])
    result = make_result("How is Render of CoT trained?", [cut])
    text, _ = extractive_answer(result.hits, gather_evidence(result, 3), "en") or ("", [])
    assert "…: Render of CoT" in text
