"""Offline answers on the real notes with the real default embedders (slow: loads the models).

Uses conftest's session fixtures ``real_searcher`` (a Searcher over the real corpus indexed with
the default embedders) and ``real_settings``.
"""

from __future__ import annotations

import pytest

from rag.answer.answer import answer_question
from rag.answer.citations import cited_numbers
from rag.contract import AnswerOut
from rag.retrieve.searcher import Searcher
from rag.settings import Settings
from rag.text import language

pytestmark = pytest.mark.slow

CANNED = [  # (question, keywords, gold file, a line inside the gold entry)
    ("哪篇论文把稀疏自编码器用到 Whisper、HuBERT 这类语音模型上做可解释性分析？", ["AudioSAE"],
     "001_662f7359960ed917.txt", 10),
    ("By how much did steering sparse-autoencoder features reduce Whisper's false speech detections?",
     ["70%"], "001_662f7359960ed917.txt", 10),
    ("那个原子级专家的 MoE 在推理延迟上比细粒度基线 PEER 快了多少倍？", ["10.9"], "001_662f7359960ed917.txt", 45),
    ("MemGUI-Bench 一共有多少个任务，覆盖了多少个真实 App？", ["128", "26"], "001_662f7359960ed917.txt", 115),
]


@pytest.mark.parametrize("question,keywords,file,line", CANNED)
def test_offline_answers_real_notes(question: str, keywords: list[str], file: str, line: int,
                                    real_searcher: Searcher, real_settings: Settings) -> None:
    answer = answer_question(question, real_searcher, real_settings, use_llm=False)
    assert answer.mode == "extractive" and not answer.refused and not answer.uncited
    assert answer.text.startswith("笔记中提到：" if language(question) == "zh" else "From your notes:")
    assert all(k in answer.text for k in keywords), answer.text
    assert any(c.hit.entry.file == file and c.hit.entry.line_start <= line <= c.hit.entry.line_end
               for c in answer.citations), answer.text
    assert cited_numbers(answer.text) == [c.n for c in answer.citations]  # every [n] is a citation
    again = answer_question(question, real_searcher, real_settings, use_llm=False)
    assert AnswerOut.of(again) == AnswerOut.of(answer)  # deterministic


@pytest.mark.parametrize("question", [
    "有没有笔记讲知识编辑，比如 ROME、MEMIT 这种先定位再直接改写模型里事实关联的方法？",
    "Is there a note on generative recommender systems that represent items as semantic IDs (like TIGER)?",
])
def test_offline_refuses_uncovered(question: str, real_searcher: Searcher, real_settings: Settings) -> None:
    answer = answer_question(question, real_searcher, real_settings, use_llm=False)
    assert answer.refused and not answer.uncited
    assert len(answer.citations) == 3 and cited_numbers(answer.text) == [1, 2, 3]
