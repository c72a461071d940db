"""Headings that name a *part* of something (Summary, Method, 实验, My take), not a thing of their own.

Researchers split a note about one paper into the same few parts, whatever tool they write in. Such
a heading never opens an entry: it belongs to the paper (or topic) above it, so a hit says "HyDE ›
Key results" instead of a bare "Key results" that names no paper. Matched on the whole heading, after
numbering, emoji and punctuation are dropped, so "3. Results" and "## 🧪 实验" count and
"Results of scaling MoE to 1T" does not.
"""

from __future__ import annotations

import re
from collections import Counter

from rag.text.lexical import is_name

_PARTS_EN = """
abstract, summary, tldr, tl;dr, overview, introduction, intro, background, motivation, context, problem,
problem statement, idea, key idea, key ideas, core idea, main idea, approach, method, methods, methodology,
how it works, architecture, model, design, training, setup, experimental setup, data, dataset, datasets,
experiment, experiments, evaluation, results, key results, main results, findings, key findings, numbers,
analysis, ablation, ablations, discussion, limitations, limitation, weaknesses, strengths, pros, cons,
pros and cons, critique, future work, open questions, questions, conclusion, conclusions, takeaways,
key takeaways, takeaway, my take, my thoughts, thoughts, notes, my notes, comments, highlights, annotations,
contributions, key contributions, related work, related, references, links, resources, code, todo, to do,
next steps, why it matters, details, implementation, implementation details, benchmarks, baseline,
baselines, figures, tables, quotes, reading notes, review, verdict, impressions, lessons, insights
"""
_PARTS_ZH = """
摘要 概要 概述 简介 介绍 引言 总结 小结 背景 动机 问题 研究问题 思路 主要思路 核心思路 核心思想
核心想法 想法 方法 核心方法 方法论 主要方法 技术方案 方案 架构 模型 模型结构 训练 数据 数据集 实验
实验设置 实验结果 实验效果 结果 主要结果 关键结果 效果 评估 评测 分析 消融 消融实验 讨论 局限 局限性
不足 缺点 优点 优缺点 未来工作 展望 结论 要点 关键发现 发现 启发 收获 我的想法 我的看法 我的思考 看法
思考 感想 点评 评价 笔记 读书笔记 阅读笔记 备注 疑问 问题与思考 相关工作 参考 参考文献 链接 资源 代码
贡献 主要贡献 亮点 创新点 细节 实现 实现细节 应用 应用领域 应用场景 待办 后续 基线 数字 关键数字
"""
PART_NAMES = frozenset(
    {" ".join(p.split()) for p in _PARTS_EN.split(",") if p.strip()} | set(_PARTS_ZH.split())
)
_NOISE = re.compile(r"[^\w\s;\u4e00-\u9fff]+|\d+")


def is_part_heading(title: str) -> bool:
    """True when the heading names a part of a note (Summary, 实验结果), not an item of its own."""
    plain = " ".join(_NOISE.sub(" ", title.replace("_", " ")).lower().split())
    return plain in PART_NAMES or plain.replace(" ", "") in PART_NAMES


_BRACKETED = re.compile(r"[(（][^()（）]*+[)）]")  # no bracket inside: "((((…" costs linear time
_LATIN_WORD = re.compile(r"[A-Za-z][\w.+-]*")


def _names(text: str) -> set[str]:
    return {w.lower().rstrip(".-+") for w in _LATIN_WORD.findall(text) if is_name(w)}


def title_names(title: str) -> frozenset[str]:
    """The names an item's title gives it, its bracketed authors and venue left out:
    "vLLM / PagedAttention (Kwon et al., SOSP 2023)" is vllm and pagedattention."""
    return frozenset(_names(_BRACKETED.sub(" ", title)))


def is_overview(title: str, text: str, items: list[frozenset[str]]) -> bool:
    """A heading with no name in it over text naming two or more of the note's items ("为什么看这一组:
    two FlashAttention papers, MQA/GQA, vLLM") introduces them, it is none of them: a section,
    which an exact match on a paper's name must not rank above that paper's own entry."""
    if _LATIN_WORD.search(title):
        return False
    counts = Counter(name for names in items for name in names)
    said = {name for name in _names(text) if counts[name] == 1}  # "LLM" in many titles names none
    return sum(1 for names in items if names & said) >= 2
