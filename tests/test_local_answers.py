"""Answers by a real local model (SmolLM2-135M through llama.cpp) via `rag ask`, the app and a Gradio client.

The tiny model writes nonsense, which is what the citation checks are for: whatever it says, every
[n] that survives must point at an entry retrieval returned. A fake API key is in the environment
and the settings throughout; it must never show in any output or log, nor outlive its process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.answer.answer import Answer, collect
from rag.answer.citations import cited_numbers
from rag.answer.generate import answer_sentences
from rag.answer.prompts import FAILURES
from rag.app.render import message_text
from rag.app.web import MODE_LLM, NotesApp, build_app, launch
from rag.contract import AskRequest, SearchRequest
from rag.net import free_port
from rag.service import Notes
from rag.settings import Settings
from tests.conftest import RunRag

pytestmark = pytest.mark.slow

FAKE_KEY = "sk-FAKE-llmint-5f1c0ffee0ddba11"
QUESTION = "哪篇工作把 MoE 专家拆成原子专家?"
K = 4
#: A short prompt and answer: the tiny model is quick, but a shared 2-core machine is not. Its
#: answer is JSON claims: 160 tokens hold two or three. Greedy, so that a run is repeatable.
SMALL = {"answer.k": K, "answer.local_source_token_budget": 300, "answer.max_answer_tokens": 160,
         "llm.temperature": 0.0}


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _servers_of(model: Path) -> list[int]:
    """Pids of llama.cpp servers (rag/answer/llm/local.py children) serving this very file."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"local_llm.py") for a in argv) and str(model.resolve()).encode() in argv:
            found.append(int(proc.name))
    return found


def _port(base_url: str | None) -> int:
    return int(str(base_url).rsplit(":", 1)[1].split("/", 1)[0])


@pytest.fixture
def local(app_indexed: Settings, smollm2: Path, tmp_path: Path) -> Settings:
    """Settings answering with SmolLM2, through a link of its own so its server can be told from others'."""
    model = tmp_path / "models" / "smol-test.gguf"
    model.parent.mkdir()
    model.symlink_to(smollm2)
    return app_indexed.updated({"llm.model": f"gguf:{model}", "llm.api_key": FAKE_KEY, **SMALL})


def check_citations(answer: Answer, notes: Notes) -> None:
    """Every surviving [n] is a citation, and each citation is the entry retrieval ranked n-th."""
    hits = notes.search(SearchRequest(question=QUESTION, k=K)).hits
    assert set(cited_numbers(answer.text)) == {c.n for c in answer.citations}
    for c in answer.citations:
        assert 1 <= c.n <= K and c.hit.entry.id == hits[c.n - 1].entry.id


def test_rag_ask_json_answers_by_the_local_model_and_leaves_nothing(local: Settings, run_rag: RunRag,
                                                                   tmp_path: Path) -> None:
    model = Path(str(local.llm.model).removeprefix("gguf:"))
    config = tmp_path / "rag.toml"
    config.write_text("".join(f"[{section}]\n" + "".join(f"{k.split('.')[1]} = {v}\n" for k, v in SMALL.items()
                                                          if k.startswith(section + "."))
                              for section in ("answer", "llm")))
    done = run_rag("ask", "--json", "--config", str(config), "--llm-model", str(local.llm.model), QUESTION,
                   settings=local, env={"OPENAI_API_KEY": FAKE_KEY}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert FAKE_KEY not in done.stdout + done.stderr and "Traceback" not in done.stderr
    result = json.loads(done.stdout)
    assert result["mode"] == "llm" and result["notice"] is None
    assert set(cited_numbers(result["answer"])) == {c["n"] for c in result["citations"]}
    with Notes(local.updated({"llm.model": None})) as notes:
        hits = notes.search(SearchRequest(question=QUESTION, k=K)).hits
    for c in result["citations"]:
        hit = hits[c["n"] - 1].entry
        assert (c["file"], c["line_start"], c["title"]) == (hit.file, hit.line_start, hit.title)
    assert _servers_of(model) == []  # the server ended with `rag ask`


def test_the_answer_streams_and_the_server_stops_with_the_notes(local: Settings, capfd) -> None:
    with Notes(local) as notes:
        stream = notes.ask(AskRequest(question=QUESTION))  # starts the server first
        pid, port = notes.model.pid, _port(notes.model.answer_settings().llm.base_url)
        deltas: list[str] = []
        answer = collect(stream, deltas.append)
        assert answer.mode == "llm" and answer.notice is None and answer.format == "claims"
        assert deltas and "".join(deltas) == answer.text  # claim by claim
        check_citations(answer, notes)
        assert pid and _accepts(port)
    assert notes.model.pid is None and not _accepts(port) and not Path(f"/proc/{pid}").exists()
    out, err = capfd.readouterr()
    assert FAKE_KEY not in out + err


def test_killing_the_server_mid_stream_gives_one_line_and_the_notes(local: Settings) -> None:
    with Notes(local) as notes:
        stream = notes.ask(AskRequest(question=QUESTION))
        first = next(stream)
        os.kill(notes.model.pid or 0, signal.SIGKILL)
        rest: list[str] = []
        answer = collect(stream, rest.append)
        assert first and answer.mode == "extractive" and answer.citations
        assert answer.notice and "\n" not in answer.notice and "answering from the notes instead" in answer.notice
        assert FAKE_KEY not in answer.notice
        assert not notes.model.ready  # the next LLM answer starts a new server
        again = collect(notes.ask(AskRequest(question=QUESTION)))
        assert again.mode == "llm"


def test_the_app_shows_loading_then_streams_the_local_answer(local: Settings, capfd) -> None:
    with Notes(local) as notes:
        app = NotesApp(notes)
        assert app.model_label == "local: smol-test.gguf, 1 thread" and app.model_choices() == ["smol-test.gguf"]
        shown = [messages[-1]["content"] for _, messages, _ in
                 app.respond(QUESTION, [], K, MODE_LLM, None, None, None, "smol-test.gguf")]
        assert shown[0].startswith("⏳ loading model smol-test.gguf…")
        answers = [s for s in shown if not s.startswith(("⏳", "…"))]
        assert len(set(answers)) >= 2  # the answer growing claim by claim, then the finished message
        result = json.loads(app.ask(QUESTION, k=K))
        assert result["mode"] == "llm"
        assert set(cited_numbers(result["answer"])) == {c["n"] for c in result["citations"]}
        pid = notes.model.pid
    assert pid and not Path(f"/proc/{pid}").exists()
    out, err = capfd.readouterr()
    assert FAKE_KEY not in out + err + "".join(shown)


@pytest.fixture
def launched(local: Settings) -> Iterator[tuple[str, Notes]]:
    port = free_port()
    settings = local.updated({"serve.port": port})
    notes = Notes(settings)
    demo = build_app(NotesApp(notes))
    launch(demo, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", notes
    finally:
        demo.close()
        notes.close()


def test_a_gradio_client_gets_the_local_answer(launched: tuple[str, Notes], capfd) -> None:
    from gradio_client import Client

    url, notes = launched
    client = Client(url, verbose=False, download_files=False)
    job = client.submit(QUESTION, [], K, MODE_LLM, "All notes", "", "", "smol-test.gguf", api_name="/chat")
    updates = [message_text(messages[-1]["content"]) for _, messages, _ in job]
    final = message_text(job.result()[1][-1]["content"])
    assert len(updates) >= 3 and not final.startswith(("⏳", "⚠️"))
    result = json.loads(client.predict(QUESTION, K, True, api_name="/ask"))
    assert result["mode"] == "llm"
    assert {c["n"] for c in result["citations"]} == set(cited_numbers(result["answer"]))
    pid = notes.model.pid
    notes.close()
    deadline = time.monotonic() + 10
    while pid and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid and not Path(f"/proc/{pid}").exists()
    out, err = capfd.readouterr()
    assert FAKE_KEY not in out + err + json.dumps(result) + final
    assert "Traceback" not in err


def test_a_small_local_model_answers_in_cited_sentences_without_repeating(local: Settings) -> None:
    """SmolLM2 through the schema: whatever it says, every sentence that reaches the user carries a
    valid [n], none repeats, and no character is broken (before: one paragraph ten times, uncited).
    When it gives no claim with a source, the user gets the cited extractive answer and is told so."""
    questions = [QUESTION, "OmniMoE 比 PEER 快多少？", "Which note is about Quokka-Attention and what does it save?"]
    answered = 0
    with Notes(local) as notes:
        for question in questions:
            answer = collect(notes.ask(AskRequest(question=question)))
            assert "\ufffd" not in answer.text
            if answer.mode != "llm":
                assert (answer.notice or "").startswith(FAILURES["no_claims"]) and answer.citations, answer.text
                continue
            assert answer.format == "claims"
            if answer.refused:
                continue
            answered += 1
            said = answer_sentences(answer.text)
            valid = {c.n for c in answer.citations}
            assert said and all(set(cited_numbers(s)) & valid for s in said), answer.text
            assert len(said) == len(set(said)), answer.text
    assert answered  # the model answered at least one of them: the assertions above were exercised
