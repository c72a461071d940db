"""Citation parsing, cleaning and the streaming filter (fast: pure text)."""

from __future__ import annotations

import random
import time

import pytest

from rag.answer.citations import CitationStream, cited_numbers, clean_citations, neutralise, with_citations


def stream_through(text: str, pieces: list[str], valid: int) -> str:
    stream = CitationStream(valid)
    out = "".join(stream.feed(p) for p in pieces) + stream.finish()
    assert stream.raw == text
    return out


def test_clean_citations_keeps_valid_and_reports_removed() -> None:
    assert clean_citations("a [1] b [3] c [2, 9].", 2) == ("a [1] b c [2].", [3, 9])
    assert clean_citations("x [1，2、5]", 2) == ("x [1][2]", [5])
    assert clean_citations("see [0] and [1]", 1) == ("see and [1]", [0])
    assert clean_citations("array[i] and [a] stay", 1) == ("array[i] and [a] stay", [])


def test_cited_numbers() -> None:
    assert cited_numbers("[2] then [1, 2] and [3、1]") == [1, 2, 3]
    assert cited_numbers("no citation, ［21］ is neutral") == []


def test_neutralise_makes_note_brackets_no_citation() -> None:
    text = "as shown in [21] and [3, 4], see [link](x)"
    assert neutralise(text) == "as shown in ［21］ and ［3, 4］, see [link](x)"
    assert cited_numbers(neutralise(text)) == []


def test_stream_holds_an_open_citation_until_it_is_decided() -> None:
    stream = CitationStream(2)
    assert stream.feed("See [") == "See"
    assert stream.feed("1") == ""
    assert stream.feed("] and [1") == " [1] and"
    assert stream.feed("0] end") == " end"
    assert stream.feed(".") == "."
    assert stream.finish() == ""


@pytest.mark.parametrize("text", [
    "OmniMoE schedules per expert [1][7], see also [2, 7].",
    "A [1]. B [9]. C [2，3] [4] end [",
    "trailing spaces   [5]  and more [1]   ",
    "数组 a[0] 不是引用 [1]；[12] 不在范围内。",
    "[1][2][3][4][5][6][7]",
])
def test_stream_equals_cleaning_the_whole_text(text: str) -> None:
    expected, _ = clean_citations(text, 3)
    rng = random.Random(7)
    for _ in range(30):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 12))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert stream_through(text, pieces, 3) == expected
    assert stream_through(text, list(text), 3) == expected  # one character per delta


def test_stream_cost_is_linear_in_deltas() -> None:
    """20k deltas: the old filter re-cleaned the whole text per delta (2k deltas took 14 s)."""
    pieces = ["word [1] ", "and [", "2] more ", "text [9]. "] * 5000
    start = time.process_time()
    out = stream_through("".join(pieces), pieces, 2)
    assert time.process_time() - start < 2.0
    assert out == clean_citations("".join(pieces), 2)[0]


def test_stream_releases_a_bracket_that_is_no_citation() -> None:
    stream = CitationStream(2)
    assert stream.feed("[" + "1, " * 30) == "[" + ("1, " * 30).rstrip()  # too long to be a citation
    assert stream.feed("x") == " x"


def test_a_sentence_of_stops_without_end_is_cited_in_linear_time() -> None:
    """". . . ." for 40 000 characters took six seconds when a pattern looked for the final stops."""
    start = time.perf_counter()
    assert with_citations("a" + ". " * 20_000 + "x", [1]).endswith("x [1]")
    assert time.perf_counter() - start < 0.5
    assert with_citations("快了 3 倍。\u3000", [1]) == "快了 3 倍 [1]。\u3000"
