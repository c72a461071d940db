"""Language-neutral similarity for the answer's sentence choice (fast: numbers, a hash-embedded index)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.embed.models import Models
from rag.retrieve.neutral import LanguageMeans
from rag.service import Notes
from rag.text import written_language
from tests.conftest import index_notes


def test_taking_the_language_out_lets_a_chinese_question_find_the_english_chunk_on_its_topic() -> None:
    """Axis 0 is the language (+1 Chinese, −1 English), axes 1 and 2 two topics. A Chinese question on
    topic 1 is closer by raw cosine to a Chinese chunk on topic 2 than to an English one on topic 1."""
    zh_a, zh_b, en_a, en_b = np.array([[1, 1, 0], [1, 0, 1], [-1, 1, 0], [-1, 0, 1]], dtype=np.float32)
    means = LanguageMeans.of(np.stack([zh_a, zh_b, en_a, en_b]), ["zh", "zh", "en", "en"])
    question = np.array([1, 1, 0], dtype=np.float32)
    assert means is not None and float(question @ zh_b) > float(question @ en_a)
    neutral = means.similarity(np.stack([zh_b, en_a]), ["zh", "en"], question, "zh")
    assert neutral[1] > neutral[0]
    assert LanguageMeans.of(np.stack([zh_a, zh_b]), ["zh", "zh"]) is None  # one language: nothing to take out


def test_a_note_is_as_chinese_as_what_it_says() -> None:
    assert written_language("An English note on hybrid sparse attention that quotes its Chinese name, 稀疏注意力, "
                            "once in a paragraph about memory.") == "en"
    assert written_language("本文提出 HySparse，把 KV Cache 显存降低 80%。") == "zh"


def test_hits_carry_a_neutral_similarity_only_where_the_notes_mix_languages(tmp_path: Path, models: Models) -> None:
    (tmp_path / "mixed").mkdir()
    (tmp_path / "en").mkdir()
    mixed = index_notes(tmp_path / "mixed", {"zh.md": "# 稀疏注意力\n本文提出混合稀疏注意力，显存降低八成。",
                                             "en.md": "# Sparse attention\nA hybrid sparse attention cuts memory."},
                        models)
    hit = Notes(mixed, models).searcher().search("稀疏注意力 memory", k=2).hits[0]
    assert set(hit.chunks[0].neutral) == {"hash"} and set(hit.chunks[0].similarity) == {"hash"}
    english = index_notes(tmp_path / "en", {"a.md": "# Sparse attention\nCuts memory.",
                                            "b.md": "# Dense retrieval\nTwo encoders."}, models)
    assert Notes(english, models).searcher().search("sparse memory", k=1).hits[0].chunks[0].neutral == {}
