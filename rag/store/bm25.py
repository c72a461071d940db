"""BM25 over :class:`~rag.store.terms.Terms`: each (term, chunk) score computed once at commit,
kept term-major, so a question costs one scatter-add per token.

The scoring is Lucene's variant with k1 1.5 and b 0.75, the formula and float32 arithmetic of
``bm25s`` (which built this index before; tests/test_bm25.py checks they agree to the bit). It is
our own because building from token lists in Python was the largest cost of a one-note update
of a large vault: from count arrays it is a few numpy operations.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import orjson

from .terms import Terms

K1, B = 1.5, 0.75
#: The arrays a saved index holds, by file name.
FILES = ("bm25-indptr.npy", "bm25-docs.npy", "bm25-scores.npy")


@dataclass(frozen=True)
class Bm25:
    """Term ``t``'s postings are ``docs[indptr[t]:indptr[t+1]]`` (ascending) with their scores."""

    vocab: tuple[str, ...]
    indptr: np.ndarray  # int64, len(vocab) + 1
    docs: np.ndarray  # int32 chunk rows
    scores: np.ndarray  # float32
    num_docs: int

    @classmethod
    def of(cls, terms: Terms) -> Bm25:
        n = len(terms)
        lengths = terms.lengths()
        avg = lengths.mean() if n else 1.0
        df = terms.doc_freq()
        # bm25s: the idf in float64, stored as float32; the term-frequency part in float64
        seen, where = np.unique(df, return_inverse=True)  # math.log, as bm25s, on the few distinct counts
        idf = np.array([math.log(1 + (n - d + 0.5) / (d + 0.5)) for d in seen.tolist()], np.float32)[where]
        rows = np.repeat(np.arange(n, dtype=np.int32), np.diff(terms.indptr))
        tf = terms.counts.astype(np.float64)
        tfc = tf / (K1 * ((1 - B) + B * lengths[rows].astype(np.float64) / avg) + tf)
        scores = (idf[terms.ids].astype(np.float64) * tfc).astype(np.float32)
        order = np.lexsort((rows, terms.ids))
        indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
        return cls(terms.vocab, indptr, rows[order], scores[order], n)

    @cached_property
    def _word_id(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab)}

    @property
    def doc_freq(self) -> np.ndarray:
        return np.diff(self.indptr)

    def get_scores(self, tokens: list[str]) -> np.ndarray:
        """Every chunk's score for ``tokens`` (a repeated token counts again; unknown ones none)."""
        scores = np.zeros(self.num_docs, np.float32)
        for token in tokens:
            t = self._word_id.get(token)
            if t is not None:
                start, end = self.indptr[t], self.indptr[t + 1]
                np.add.at(scores, self.docs[start:end], self.scores[start:end])
        return scores

    # ------------------------------------------------------------------ files

    def save(self, folder: Path) -> None:
        """The three arrays as ``.npy`` files in ``folder`` (the vocabulary is the caller's to keep)."""
        for name, array in zip(FILES, (self.indptr, self.docs, self.scores), strict=True):
            np.save(folder / name, array)

    @classmethod
    def load(cls, folder: Path, vocab: tuple[str, ...], num_docs: int) -> Bm25:
        """Memory-mapped: a question reads the postings of its own terms only (the chunk rows are
        read once here, to check that none points past the index)."""
        indptr, docs, scores = (np.load(folder / name, mmap_mode="r", allow_pickle=False) for name in FILES)
        return cls.checked(vocab, indptr, docs, scores, num_docs)

    @classmethod
    def checked(cls, vocab: tuple[str, ...], indptr: np.ndarray, docs: np.ndarray, scores: np.ndarray,
                num_docs: int) -> Bm25:
        """ValueError when the arrays do not fit together (a damaged index)."""
        if len(indptr) != len(vocab) + 1 or len(docs) != len(scores) or int(indptr[-1]) != len(docs) \
                or scores.dtype != np.float32 or (len(docs) and int(docs.max()) >= num_docs):
            raise ValueError("BM25 arrays do not fit together")
        return cls(vocab, indptr, docs, scores, num_docs)

    def to_bytes(self) -> bytes:
        """One blob (for a database column): the arrays and the vocabulary."""
        out = io.BytesIO()
        np.savez(out, indptr=self.indptr, docs=self.docs, scores=self.scores,
                 vocab=np.frombuffer(orjson.dumps(self.vocab), np.uint8), num_docs=np.int64(self.num_docs))
        return out.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Bm25:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            vocab = tuple(orjson.loads(z["vocab"].tobytes()))
            return cls.checked(vocab, z["indptr"], z["docs"], z["scores"], int(z["num_docs"]))
