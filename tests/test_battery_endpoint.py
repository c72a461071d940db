"""Fault battery, endpoint: a misbehaving OpenAI-compatible server (tests/fake_openai.py) behind
``rag ask``, and no model configured. A failing endpoint is one notice line and the extractive
answer (exit 0), never a traceback or the key; with no model, nothing is sent anywhere, through
any layer (CLI, app, MCP), whatever the caller asks. Fast tier: in-process, ``hash`` index."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import pytest

from rag.app.mcp_server import NotesTools
from rag.app.web import MODE_LLM, NotesApp
from rag.build.builder import build_index
from rag.embed.models import Models
from rag.service import Notes
from rag.settings import Settings
from rag.store import open_store
from tests.battery import Run, assert_citations_hold, assert_no_traceback
from tests.conftest import QUOKKA, settings_for
from tests.fake_openai import FakeOpenAI, Reply, closed_port

RagMain = Callable[..., Run]
KEY = "sk-BATTERY-7c1e"
QUESTION = "Quokka-Attention 把显存降低了多少?"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, models: Models) -> Settings:
    root = tmp_path_factory.mktemp("endpoint")
    (root / "corpus").mkdir()
    (root / "corpus" / "quokka.md").write_text(QUOKKA, encoding="utf-8")
    settings = settings_for(root / "corpus", root / "index")
    build_index(settings.index, open_store(settings), models)
    return settings


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def env_for(settings: Settings, **more: str) -> dict[str, str]:
    return {"RAG_CORPUS": str(settings.index.corpus), "RAG_INDEX": str(settings.index.path),
            "RAG_EMBEDDERS": "hash", "OPENAI_API_KEY": KEY, **more}


FAULTS: dict[str, tuple[Reply, str]] = {
    "HTTP 500": (Reply("boom " + KEY, status=500), "HTTP 500"),
    "HTTP 401": (Reply("bad key " + KEY, status=401), "API key"),
    "HTTP 403": (Reply("forbidden", status=403), "API key"),
    "HTTP 404": (Reply("no such model", status=404), "model name"),
    "HTTP 429": (Reply("slow down", status=429), "rate-limiting"),
    "HTTP 503": (Reply("busy", status=503), "HTTP 503"),
    "timeout": (Reply("late", delay=3), "timed out"),
    "dropped connection": (Reply(drop=True), "unreachable"),
    "stall mid-stream": (Reply("Quokka cuts 37% [1] and", stall_after=2, delay=3), "timed out"),
    "200 HTML": (Reply(body=b"<html>Login to the proxy</html>", content_type="text/html"), "no completion stream"),
    "200 plain JSON": (Reply(body=b'{"choices": [{"message": {"content": "hi"}}]}',
                             content_type="application/json"), "no completion stream"),
    "200 empty body": (Reply(body=b"", content_type="application/json"), "no completion stream"),
    "choices null": (Reply(events=[{"choices": None}, "[DONE]"]), "no completion stream"),
    "choices a string": (Reply(events=[{"choices": "abc"}, "[DONE]"]), "no completion stream"),
    "content an int": (Reply(events=[{"choices": [{"delta": {"content": 5}}]}, "[DONE]"]), "empty answer"),
    "content a list": (Reply(events=[{"choices": [{"delta": {"content": ["a"]}}]}, "[DONE]"]), "empty answer"),
    "content a dict": (Reply(events=[{"choices": [{"delta": {"content": {"a": 1}}}]}, "[DONE]"]), "empty answer"),
    "no text at all": (Reply(chunks=[]), "empty answer"),
    "event not JSON": (Reply(events=["{not json " + KEY, "[DONE]"]), "unusable reply"),
    "error event": (Reply(events=[{"error": {"message": "internal " + KEY}}]), "unusable reply"),
    "bytes not UTF-8": (Reply(body=b'data: {"choices":[{"delta":{"content":"\xff\xfe"}}]}\n\n'), "unusable reply"),
    "endless stream": (Reply("more quokka [1] ", endless=True), "took longer than"),
}


@pytest.mark.parametrize("name", FAULTS)
def test_endpoint_fault_is_one_notice_and_the_extractive_answer(name: str, rag_main: RagMain, indexed: Settings,
                                                                server: FakeOpenAI) -> None:
    """Issue 16 bugs 6 and 7 among them: 200 replies that are no stream, non-string content."""
    reply, expected = FAULTS[name]
    server.add(reply)
    env = env_for(indexed, RAG_LLM_MODEL="fake", OPENAI_BASE_URL=server.base_url, RAG_LLM_TIMEOUT="0.4",
                  RAG_LLM_DEADLINE="0.8")
    run = rag_main("ask", QUESTION, "-k", "3", env=env)
    assert_no_traceback(run)
    assert run.code == 0
    assert len(run.err_lines) == 1 and expected in run.err and "answering from the notes" in run.err, run.err
    assert run.out.startswith("笔记中提到") and "[1] Quokka-Attention" in run.out
    assert KEY not in run.out + run.err and "boom" not in run.err and "internal" not in run.err


@pytest.mark.parametrize("text", ["Quokka cuts memory by 37% [1]. See also [2] and [99].", "No citation at all.",
                                  "[1" * 500, "[1] " * 5000])
def test_odd_but_working_replies_keep_the_answer_contract(text: str, rag_main: RagMain, indexed: Settings,
                                                          server: FakeOpenAI) -> None:
    server.add(Reply(text, chunks=[text[i:i + 1000] for i in range(0, len(text), 1000)]))
    env = env_for(indexed, RAG_LLM_MODEL="fake", OPENAI_BASE_URL=server.base_url)
    run = rag_main("ask", QUESTION, "--json", env=env)
    assert run.code == 0 and run.err == "", run.err
    answer = json.loads(run.out)
    assert answer["mode"] == "llm" and len(answer["answer"]) <= 12_002
    assert_citations_hold(answer)


def test_closed_port_is_one_line(rag_main: RagMain, indexed: Settings) -> None:
    url = f"http://user:{KEY}@127.0.0.1:{closed_port()}/v1"
    run = rag_main("ask", QUESTION, env=env_for(indexed, RAG_LLM_MODEL="fake", OPENAI_BASE_URL=url))
    assert run.code == 0 and len(run.err_lines) == 1 and "unreachable at http://127.0.0.1:" in run.err
    assert KEY not in run.err + run.out


# ---------------------------------------------------------------------------- no model: nothing leaves

@pytest.fixture
def listening() -> Iterator[FakeOpenAI]:
    """A fake endpoint that must receive nothing."""
    with FakeOpenAI(default=Reply("leaked [1]")) as fake:
        yield fake
    assert fake.requests == [], [r.path for r in fake.requests]


@pytest.mark.parametrize("args", [["ask", QUESTION], ["ask", QUESTION, "--json"], ["search", QUESTION]])
def test_cli_without_a_model_sends_nothing(args: list[str], rag_main: RagMain, indexed: Settings,
                                           listening: FakeOpenAI) -> None:
    run = rag_main(*args, env=env_for(indexed, OPENAI_BASE_URL=listening.base_url))
    assert run.code == 0 and run.err == ""


def _no_model(indexed: Settings, base_url: str | None, models: Models) -> Notes:
    return Notes(indexed.updated({"llm.base_url": base_url, "llm.api_key": KEY}), models)


@pytest.mark.parametrize("use_llm", [True, None, False, 1, "yes"])
def test_app_api_ask_without_a_model_sends_nothing(use_llm: object, indexed: Settings, models: Models,
                                                   listening: FakeOpenAI) -> None:
    """Issue 16 bug 2: ``Client(url).predict(question, 6, True, api_name='/ask')`` forced LLM mode."""
    answer = json.loads(NotesApp(_no_model(indexed, listening.base_url, models)).ask(QUESTION, 6, use_llm))
    assert answer.get("mode", "extractive") == "extractive" and KEY not in json.dumps(answer)


def test_app_chat_in_llm_mode_without_a_model_sends_nothing(indexed: Settings, models: Models,
                                                            listening: FakeOpenAI) -> None:
    app = NotesApp(_no_model(indexed, listening.base_url, models))
    history = [{"role": "user", "content": "quokka?"}, {"role": "assistant", "content": "Quokka [1]."}]
    *_, (_, messages, _) = app.respond("and its memory?", history, 6, MODE_LLM, None, None, None)
    assert "no LLM model is configured" in messages[-1]["content"]


@pytest.mark.parametrize("mode", ["auto", "extractive", "llm"])
def test_mcp_ask_without_a_model_sends_nothing(mode: str, indexed: Settings, models: Models,
                                               listening: FakeOpenAI) -> None:
    tools = NotesTools(_no_model(indexed, listening.base_url, models))
    if mode == "llm":
        with pytest.raises(Exception, match="needs a configured model"):
            tools.ask_notes(QUESTION, mode=mode)  # type: ignore[arg-type]
    else:
        assert tools.ask_notes(QUESTION, mode=mode).mode == "extractive"  # type: ignore[arg-type]


def test_no_base_url_and_no_model_opens_no_connection_at_all(indexed: Settings, models: Models,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With OPENAI_BASE_URL unset there is the default OpenAI endpoint to fall back to: never silently."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("no connection allowed in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    notes = _no_model(indexed, None, models)
    app = NotesApp(notes)
    assert json.loads(app.ask(QUESTION, 6, True))["mode"] == "extractive"
    *_, (_, messages, _) = app.respond(QUESTION, [], 6, MODE_LLM, None, None, None)
    assert "[1]" in messages[-1]["content"]
    assert NotesTools(notes).ask_notes(QUESTION).mode == "extractive"
    assert attempts == []


def test_the_openai_client_is_never_built_without_a_model(rag_main: RagMain, indexed: Settings,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import openai

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an OpenAI client was built with no model configured")

    monkeypatch.setattr(openai, "OpenAI", refuse)
    run = rag_main("ask", QUESTION, env=env_for(indexed))
    assert run.code == 0 and run.out.startswith("笔记中提到")

