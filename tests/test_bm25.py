"""Our BM25 and the term counts it is built from (rag/store/bm25.py, rag/store/terms.py)."""

from __future__ import annotations

import random

import bm25s
import numpy as np

from rag.store import Lexicon
from rag.store.bm25 import Bm25
from rag.store.terms import Terms
from rag.text.lexical import tokenize
from tests.tiny_notes import NOTES


def corpus() -> list[list[str]]:
    """The tiny notes' paragraphs as token lists, and an empty chunk."""
    return [tokenize(p) for text in NOTES.values() for p in text.split("\n\n") if p.strip()] + [[]]


def test_scores_are_bm25s_lucene_scores_to_the_bit() -> None:
    docs = corpus()
    ours = Bm25.of(Terms.of(docs))
    reference = bm25s.BM25()  # the library that built this index before: same variant, k1, b, dtype
    reference.index(docs, show_progress=False)
    rng = random.Random(0)
    for _ in range(100):
        doc = rng.choice([d for d in docs if d])
        query = [*rng.sample(doc, min(4, len(doc))), "never-seen", doc[0]]  # an unknown and a repeated token
        np.testing.assert_array_equal(ours.get_scores(query), reference.get_scores(query))


def test_rows_taken_extended_and_compacted_are_the_rows_built_anew() -> None:
    docs = corpus()
    reused = Terms.of(docs).take([5, 2, 9, 3])  # an update keeps some chunks, in a new order
    grown = reused.extend([["brand-new", "word"], docs[0]]).compact()
    anew = Terms.of([docs[5], docs[2], docs[9], docs[3], ["brand-new", "word"], docs[0]])
    assert grown.bags() == anew.bags() and set(grown.vocab) == set(anew.vocab)
    assert Lexicon.of(grown) == Lexicon.of(anew) and grown.lengths().tolist() == anew.lengths().tolist()
    query = [*docs[9][:3], "brand-new"]
    np.testing.assert_array_equal(Bm25.of(grown).get_scores(query), Bm25.of(anew).get_scores(query))


def test_compact_drops_the_words_of_removed_chunks() -> None:
    terms = Terms.of([["kept", "shared"], ["gone", "shared"]]).take([0]).compact()
    assert set(terms.vocab) == {"kept", "shared"} and Lexicon.of(terms).doc_freq == {"kept": 1, "shared": 1}


def test_a_blob_round_trips() -> None:
    docs = corpus()
    index = Bm25.of(Terms.of(docs))
    again = Bm25.from_bytes(index.to_bytes())
    assert again.vocab == index.vocab and again.num_docs == len(docs)
    np.testing.assert_array_equal(again.get_scores(docs[1][:5]), index.get_scores(docs[1][:5]))
