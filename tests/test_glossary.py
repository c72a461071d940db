"""The cross-lingual glossary on synthetic notes (fast: no index, no model)."""

from __future__ import annotations

import time

from rag.retrieve.glossary import Glossary
from rag.text import lexical

NOTES = [
    "本文首次将稀疏自动编码器（SAE）用于语音模型。",
    "提出共形预测 (conformal prediction) 来量化不确定性。",
    "引入 Sparse Attention（稀疏注意力）降低显存。",
]


def test_pairs_are_mined_both_ways_and_both_directions() -> None:
    glossary = Glossary.mine(NOTES)
    sae = glossary.expand(lexical.tokenize("Which paper trains an SAE on speech?"))
    assert "编码器" in sae and not {"本文", "首次"} & set(sae)  # only the term before the gloss
    assert {"conformal", "prediction"} <= set(glossary.expand(lexical.tokenize("共形预测")))
    assert {"共形", "预测"} <= set(glossary.expand(lexical.tokenize("conformal prediction for LLMs")))
    assert {"稀疏", "注意力"} <= set(glossary.expand(lexical.tokenize("sparse attention kernels")))


def test_a_term_expands_only_when_all_its_words_are_asked_and_never_repeats_them() -> None:
    glossary = Glossary.mine(NOTES)
    assert glossary.expand(lexical.tokenize("conformal bands")) == ()  # "prediction" missing
    assert glossary.expand(lexical.tokenize("SAE 稀疏 自动 编码器")) == ()  # everything already asked
    assert Glossary.mine(["no pairs here (none)"]).expand(["none"]) == ()



def test_a_long_chinese_line_is_mined_in_linear_time() -> None:
    """A 20 000-character Chinese line without a bracket: the pattern is tried from the run's start
    only, not from each of its characters (seconds before)."""
    start = time.perf_counter()
    assert Glossary.mine(["中" * 20_000 + "文（MoE）"]).terms
    assert time.perf_counter() - start < 1.0
