"""Structured answers and the check of every claim: JSON claims with source ids through the real
openai client and a real local HTTP server (tests/fake_openai.py), the text-protocol fallback, the
support check, post-hoc attribution, ``strict``, loops and broken characters. Fast: no model."""

from __future__ import annotations

import json
from collections.abc import Generator

import pytest

from rag.answer.answer import Answer, collect, iter_answer
from rag.answer.claims import Claim, ClaimParser, make_claim, response_format
from rag.answer.generate import answer_sentences
from rag.answer.support import check_sentence, supported
from rag.build.builder import build_index
from rag.contract import AnswerOut
from rag.embed.models import Models
from rag.ingest.notes import Entry
from rag.retrieve.searcher import Searcher
from rag.settings import Settings
from rag.store import open_store
from tests.conftest import QUOKKA
from tests.fake_openai import FakeOpenAI, Reply
from tests.tiny_notes import llm_settings, tiny_searcher

OMNI = "How much faster is OmniMoE than PEER?"


@pytest.fixture(scope="module")
def searcher(tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    return tiny_searcher(tmp_path_factory.mktemp("corpus"))


def llm(base_url: str, **kw: object) -> Settings:
    return llm_settings(base_url, "sk-test", **kw)


def ask(question: str, searcher: Searcher, settings: Settings) -> tuple[list[str], Answer]:
    deltas: list[str] = []
    stream: Generator[str, None, Answer] = iter_answer(question, searcher, settings, k=3)
    answer = collect(stream, deltas.append)
    return deltas, answer


def test_claims_are_asked_with_an_enum_of_the_sources_and_streamed_as_cited_sentences(searcher: Searcher) -> None:
    claims = [{"text": "OmniMoE splits experts into vector-level atomic experts.", "sources": [1]},
              {"text": "It is 10.9x faster than PEER in inference latency. It schedules per expert.",
               "sources": [1, 3]}]
    with FakeOpenAI([Reply(claims=claims)]) as server:
        deltas, answer = ask(OMNI, searcher, llm(server.base_url))
    fmt = server.requests[0].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    item = fmt["json_schema"]["schema"]["properties"]["claims"]["items"]
    assert item["properties"]["sources"]["items"]["enum"] == [1, 2, 3]  # the three sources sent
    assert '"covered"' in server.requests[0].content("system")  # the model is told the protocol
    assert [m["role"] for m in server.requests[0].messages] == ["system", "user"]  # the schema is the example
    assert deltas == ["OmniMoE splits experts into vector-level atomic experts [1].",
                      " It is 10.9x faster than PEER in inference latency [1][3]. It schedules per expert [1][3]."]
    assert answer.text == "".join(deltas) and answer.format == "claims" and AnswerOut.of(answer).format == "claims"
    assert [c.n for c in answer.citations] == [1, 3] and not answer.refused and answer.unsupported == []


def test_a_claim_without_a_valid_source_never_reaches_the_user(searcher: Searcher) -> None:
    claims = [{"text": "OmniMoE uses atomic experts.", "sources": [1]},
              {"text": "OmniMoE won a best paper award.", "sources": [7]},  # no such source
              {"text": "OmniMoE is open source.", "sources": []},
              {"text": "OmniMoE is 10.9x faster than PEER [9].", "sources": [1, 9]}]  # 9 dropped, 1 kept
    with FakeOpenAI([Reply(claims=claims)]) as server:  # an endpoint that does not enforce the enum
        _, answer = ask(OMNI, searcher, llm(server.base_url))
    assert answer.text == "OmniMoE uses atomic experts [1]. OmniMoE is 10.9x faster than PEER [1]."
    assert "award" not in answer.text and "open source" not in answer.text
    with FakeOpenAI([Reply(claims=claims[1:3])]) as server:  # it meant to answer: none of it holds a source
        _, answer = ask(OMNI, searcher, llm(server.base_url))
    assert answer.mode == "extractive" and not answer.refused and "award" not in answer.text
    assert answer.notice == "the model's answer held no claim with a source it was given; answering from the notes " \
                            "instead (extractive)"


def test_covered_false_is_a_refusal_that_lists_the_closest_entries(searcher: Searcher) -> None:
    with FakeOpenAI([Reply(claims=[], covered=False)]) as server:
        _, answer = ask("How much memory does OmniMoE need per expert?", searcher, llm(server.base_url))
    assert answer.refused and answer.format == "claims" and answer.mode == "llm"
    assert answer.text.startswith("Your notes don't seem to cover this.") and "OmniMoE" in answer.text
    assert [c.n for c in answer.citations] == [1, 2, 3]


def test_an_endpoint_rejecting_response_format_gets_the_text_protocol(searcher: Searcher) -> None:
    with FakeOpenAI([Reply("OmniMoE is 10.9x faster than PEER [1].")], formats=False) as server:
        _, answer = ask(OMNI, searcher, llm(server.base_url))
    first, second = server.requests
    assert "response_format" in first.body and "response_format" not in second.body
    assert '"covered"' not in second.content("system") and "[1]" in second.content("system")
    assert answer.format == "text" and answer.text == "OmniMoE is 10.9x faster than PEER [1]." and not answer.notice


def test_numbers_a_cited_source_does_not_state_are_flagged_and_strict_drops_them(searcher: Searcher) -> None:
    claims = [{"text": "OmniMoE is 12x faster than PEER.", "sources": [1]},  # the note says 10.9
              {"text": "OmniMoE is 10.9x faster than PEER.", "sources": [1]},
              {"text": "Whisper's false speech detections fell by 70%.", "sources": [1]},  # true, of [2]
              {"text": "OmniMoE uses atomic experts. It won 3 awards.", "sources": [1]}]  # checked apart
    for strict in (False, True):
        with FakeOpenAI([Reply(claims=claims)]) as server:
            _, answer = ask(OMNI, searcher, llm(server.base_url, **{"answer.strict": strict}))
        assert answer.unsupported == ["OmniMoE is 12x faster than PEER [1].",
                                      "Whisper's false speech detections fell by 70% [1].", "It won 3 awards [1]."]
        assert ("12x" in answer.text) is not strict and ("awards" in answer.text) is not strict
        assert "10.9x faster than PEER [1]." in answer.text and "OmniMoE uses atomic experts [1]." in answer.text


def test_prose_sentences_are_checked_and_an_uncited_one_gets_the_source_that_states_it(searcher: Searcher) -> None:
    question = "OmniMoE PEER speed and Whisper false speech detections"
    order = [h.entry.title.split(":")[0] for h in searcher.search(question, k=3).hits]
    omni, audio = order.index("OmniMoE") + 1, order.index("AudioSAE") + 1
    reply = (f"OmniMoE is 10.9x faster than PEER [{omni}]. Steering SAE features cut Whisper's false speech "
             f"detections by 70%. OmniMoE needs 3 GPUs [{omni}].")
    with FakeOpenAI([Reply(reply)]) as server:
        deltas, answer = ask(question, searcher, llm(server.base_url))
    assert f"by 70% [{audio}]." in answer.text and "".join(deltas) == answer.text  # attributed while streaming
    assert answer.unsupported == [f"OmniMoE needs 3 GPUs [{omni}]."] and answer.format == "text"


def test_a_looping_model_is_stopped_at_the_first_repeated_sentence(searcher: Searcher) -> None:
    with FakeOpenAI([Reply("OmniMoE uses atomic experts [1]. ", endless=True)]) as server:
        _, answer = ask(OMNI, searcher, llm(server.base_url))
    assert answer.text == "OmniMoE uses atomic experts [1]." and answer.mode == "llm"
    assert answer.notice == "the model began repeating itself; the answer ends there"
    loop = [{"text": "OmniMoE uses atomic experts.", "sources": [1]}] * 6
    with FakeOpenAI([Reply(claims=loop)]) as server:
        _, answer = ask(OMNI, searcher, llm(server.base_url))
    assert answer.text == "OmniMoE uses atomic experts [1]." and "repeating" in (answer.notice or "")


def test_characters_are_never_split_or_broken_in_the_stream(searcher: Searcher) -> None:
    events = [{"choices": [{"index": 0, "delta": {"content": c}}]} for c in
              ["OmniMoE 快了 10.9 倍 \ud83d", "\ude80 [1]\ufffd。"]]  # a surrogate pair split; a broken byte
    with FakeOpenAI([Reply(events=[json.dumps(e) for e in events])]) as server:
        deltas, answer = ask(OMNI, searcher, llm(server.base_url))
    assert answer.text == "OmniMoE 快了 10.9 倍 🚀 [1]。"
    assert all("\ufffd" not in d and not any("\ud800" <= ch <= "\udfff" for ch in d) for d in deltas)


def test_the_claim_parser_reads_objects_as_they_close_whatever_the_cut() -> None:
    reply = json.dumps({"covered": True, "claims": [{"text": 'a "quoted" {brace} [x]', "sources": [1]},
                                                   {"text": "二", "sources": [2]}]}, ensure_ascii=False)
    for size in (1, 3, 7):
        parser, seen = ClaimParser(), []
        for i in range(0, len(reply), size):
            seen += parser.feed(reply[i:i + size])
            if seen == [] and parser.raw.endswith('"text"'):
                assert parser.covered is True  # known before the first claim
        assert seen == [{"text": 'a "quoted" {brace} [x]', "sources": [1]}, {"text": "二", "sources": [2]}]
    assert response_format(2)["json_schema"]["schema"]["required"] == ["covered", "claims"]
    claim = make_claim({"text": "1. 专家拆成原子专家 [3]", "sources": [1, 3, 4, True]}, 3)
    assert claim == Claim("专家拆成原子专家", (1, 3))  # no list number, no [n] of its own, only valid ids
    assert [make_claim({"text": t, "sources": [1]}, 3) for t in ("...", "1.2", " ")] == [None, None, None]
    assert make_claim({"text": "1.5B beats 7B", "sources": [1]}, 3) == Claim("1.5B beats 7B", (1,))


def test_a_repeat_penalty_is_sent_only_when_set(searcher: Searcher) -> None:
    claims = [{"text": "OmniMoE uses atomic experts.", "sources": [1]}]
    with FakeOpenAI(default=Reply(claims=claims)) as server:
        ask(OMNI, searcher, llm(server.base_url))
        ask(OMNI, searcher, llm(server.base_url, **{"llm.repeat_penalty": 1.2}))
    plain, penalised = (r.body for r in server.requests)
    assert "repeat_penalty" not in plain  # a remote OpenAI endpoint would refuse the unknown field
    assert penalised["repeat_penalty"] == 1.2


def test_the_support_check_reads_numbers_names_and_words_across_languages() -> None:
    note = Entry(file="n.md", title="HySparse：混合稀疏注意力", line_start=1, line_end=3, url=None, date=None,
                 text="HySparse 把 KV Cache 显存直降 80%，长文本任务提升 1.50 倍。")
    other = Entry(file="n.md", title="OmniMoE", line_start=5, line_end=7, url=None, date=None,
                  text="OmniMoE 把专家拆成原子专家，比 PEER 快 10.9 倍。")
    assert supported("HySparse cuts KV-cache memory by 80% [1].", [note])  # English on Chinese notes
    assert supported("HySparse 的长文本任务提升 1.5 倍 [1]。", [note])  # 1.50 is 1.5
    assert not supported("HySparse cuts KV-cache memory by 90% [1].", [note])  # a number it does not state
    assert not supported("FlashNorm cuts KV-cache memory by 80% [1].", [note])  # a name it does not hold
    assert not supported("1.0 [1].", [note])  # a bare number says nothing
    assert check_sentence("OmniMoE 比 PEER 快 10.9 倍。", [note, other]) == ("OmniMoE 比 PEER 快 10.9 倍 [2]。", True)
    assert check_sentence("Sparse models are popular in industry now.", [note, other])[1] is False
    assert check_sentence("Two papers do this:", [note, other]) == ("Two papers do this:", True)  # says nothing


def test_a_small_model_reads_the_best_sentences_of_each_source_not_whole_entries(searcher: Searcher) -> None:
    claims = [{"text": "OmniMoE is 10.9x faster than PEER.", "sources": [1]}]
    settings = llm("http://127.0.0.1:1/v1", **{"answer.excerpt_sentences": 1})
    with FakeOpenAI(default=Reply(claims=claims)) as server:
        settings = settings.updated({"llm.base_url": server.base_url})
        collect(iter_answer(OMNI, searcher, settings, k=3, small_model=True))
        collect(iter_answer(OMNI, searcher, settings, k=3))
    brief, whole = (r.last("user") for r in server.requests)
    bounded, plain = (r.body["response_format"]["json_schema"]["schema"]["properties"]["claims"]
                      for r in server.requests)
    assert bounded["maxItems"] == 6 and bounded["items"]["properties"]["sources"]["minItems"] == 1  # llama.cpp
    assert "maxItems" not in plain and "minItems" not in plain["items"]["properties"]["sources"]  # any provider
    assert "Expert-centric scheduling" in whole and "Expert-centric scheduling" not in brief
    assert "10.9" in brief and 'location="' in whole and 'location="' not in brief
    assert len(brief) < len(whole) / 2


def test_an_answer_is_cut_into_sentences_with_their_citations() -> None:
    text = "OmniMoE: atomic experts, 10.9x faster [1]. See also. [2][3] 它快了 10.9 倍 [1]。\n- HySparse [2]"
    assert answer_sentences(text) == ["OmniMoE: atomic experts, 10.9x faster [1].", "See also. [2][3]",
                                      "它快了 10.9 倍 [1]。", "- HySparse [2]"]


def test_rag_ask_strict_leaves_out_what_the_cited_note_does_not_say(make_corpus, models: Models, rag_main) -> None:
    settings = make_corpus({"quokka.md": QUOKKA})
    build_index(settings.index, open_store(settings), models)
    claims = [{"text": "Quokka-Attention cuts memory by 37% in a 1M token context.", "sources": [1]},
              {"text": "Quokka-Attention cuts memory by 90%.", "sources": [1]}]
    env = {"RAG_CORPUS": str(settings.index.corpus), "RAG_INDEX": str(settings.index.path), "RAG_EMBEDDERS": "hash",
           "RAG_LLM_MODEL": "fake"}
    with FakeOpenAI(default=Reply(claims=claims)) as server:
        plain = rag_main("ask", "How much memory does Quokka-Attention save?", "--json",
                         env={**env, "OPENAI_BASE_URL": server.base_url})
        strict = rag_main("ask", "How much memory does Quokka-Attention save?", "--json", "--strict",
                          env={**env, "OPENAI_BASE_URL": server.base_url})
    assert plain.code == strict.code == 0, plain.err + strict.err
    shown, kept = json.loads(plain.out), json.loads(strict.out)
    assert shown["format"] == kept["format"] == "claims"
    assert shown["unsupported"] == kept["unsupported"] == ["Quokka-Attention cuts memory by 90% [1]."]
    assert "90%" in shown["answer"] and "90%" not in kept["answer"]
    assert kept["answer"] == "Quokka-Attention cuts memory by 37% in a 1M token context [1]."


def test_a_models_own_not_covered_sentence_is_no_unsupported_claim_even_when_strict(searcher: Searcher) -> None:
    with FakeOpenAI([Reply("笔记中没有涉及这个问题。")], formats=False) as server:
        _, answer = ask("OmniMoE 每个专家需要多少显存？", searcher, llm(server.base_url, **{"answer.strict": True}))
    assert answer.refused and answer.format == "text" and answer.unsupported == []
    assert answer.text.startswith("笔记中没有涉及这个问题。\n- OmniMoE")  # then the closest entries
