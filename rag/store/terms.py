"""Each chunk's BM25 tokens as counts: a sparse chunk × term matrix over one vocabulary.

Why not lists of tokens: a build keeps every unchanged note's chunks, and at 10,000 notes their
tokens are millions of Python strings to parse, count and write again for a one-note change. As
arrays, the unchanged rows are taken with one numpy gather, and BM25 (:mod:`.bm25`) and the
document frequencies are computed from them without a Python loop over tokens. Only the order of
a chunk's tokens is lost, and nothing downstream of tokenizing uses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np


@dataclass(frozen=True)
class Terms:
    """Rows are chunks, in index order; row ``i``'s terms are ``ids[indptr[i]:indptr[i+1]]``
    (ascending, each once) with their counts. ``vocab`` may hold words no row uses."""

    vocab: tuple[str, ...]
    indptr: np.ndarray  # int64, one more than there are rows
    ids: np.ndarray  # int32 ids into vocab
    counts: np.ndarray  # int32, ≥ 1

    @classmethod
    def empty(cls) -> Terms:
        return cls((), np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32))

    @classmethod
    def of(cls, tokens: Iterable[Sequence[str]]) -> Terms:
        return cls.empty().extend(tokens)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def extend(self, tokens: Iterable[Sequence[str]]) -> Terms:
        """These rows, then one row per token list; new words join the end of the vocabulary."""
        word_id = {w: i for i, w in enumerate(self.vocab)}
        vocab = list(self.vocab)
        lengths, ids, counts = [], [], []
        for row in tokens:
            bag: dict[int, int] = {}
            for token in row:
                i = word_id.get(token)
                if i is None:
                    i = word_id[token] = len(vocab)
                    vocab.append(token)
                bag[i] = bag.get(i, 0) + 1
            lengths.append(len(bag))
            for i in sorted(bag):
                ids.append(i)
                counts.append(bag[i])
        indptr = np.concatenate([self.indptr, self.indptr[-1] + np.cumsum(lengths, dtype=np.int64)])
        return Terms(tuple(vocab), indptr, np.concatenate([self.ids, np.asarray(ids, np.int32)]),
                     np.concatenate([self.counts, np.asarray(counts, np.int32)]))

    def take(self, rows: Sequence[int] | np.ndarray) -> Terms:
        """These rows, in this order."""
        rows = np.asarray(rows, np.int64)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # the position in ids of every kept entry: each row's start, then one step per entry
        positions = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return Terms(self.vocab, indptr, self.ids[positions], self.counts[positions])

    def compact(self) -> Terms:
        """The same rows over only the words they use (a removed note's words leave the vocabulary)."""
        used = np.bincount(self.ids, minlength=len(self.vocab)) > 0
        if used.all():
            return self
        new_id = np.cumsum(used, dtype=np.int64) - 1
        vocab = tuple(w for w, keep in zip(self.vocab, used, strict=True) if keep)
        return Terms(vocab, self.indptr, new_id[self.ids].astype(np.int32), self.counts)

    def doc_freq(self) -> np.ndarray:
        """How many rows use each word of the vocabulary."""
        return np.bincount(self.ids, minlength=len(self.vocab))

    def lengths(self) -> np.ndarray:
        """Tokens in each row, repeats counted (BM25's document length)."""
        total = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
        return total[self.indptr[1:]] - total[self.indptr[:-1]]

    def bags(self) -> list[list[str]]:
        """Each row's tokens, each repeated by its count, sorted (for stores that keep tokens as
        text: the same chunk gives the same list whatever vocabulary it was built in)."""
        words = [self.vocab[i] for i in self.ids.tolist()]
        counts = self.counts.tolist()
        bounds = self.indptr.tolist()
        return [sorted(w for j in range(a, b) for w in [words[j]] * counts[j]) for a, b in pairwise(bounds)]
