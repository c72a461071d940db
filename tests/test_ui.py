"""The app's state and events on real indexes, and the launched app through gradio_client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from rag.app.render import index_status, report_text
from rag.app.uploads import add_note
from rag.app.web import MODE_EXTRACTIVE, MODE_LLM, NotesApp, build_app, chat_payload_problem, launch
from rag.build.builder import build_index
from rag.embed.models import Models
from rag.net import free_port
from rag.service import Notes
from rag.settings import Settings, SettingsError
from rag.store import open_store
from tests.conftest import QUOKKA, REAL_NOTE


def make_app(settings: Settings, models: Models) -> NotesApp:
    return NotesApp(Notes(settings, models))


def test_a_chat_payload_is_checked_before_the_chat_meets_it() -> None:
    ok = [("q", None, 6, MODE_EXTRACTIVE, (None, None, None, None)),
          (None, [], 6.0, MODE_LLM, ("All notes", "", "", "m")),  # an empty question: the chat says so
          ("q", [{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"text": "b"}]}], 3,
           MODE_EXTRACTIVE, ("0*.txt", "2026-02-07", "nonsense date", None))]  # a bad date: the chat says so
    assert [chat_payload_problem(*args) for args in ok] == [None] * len(ok)
    bad = [(("q", "chat", 6, MODE_LLM, ()), "the chat must be"),
           (("q", [{"role": "system", "content": "x"}], 6, MODE_LLM, ()), "the chat must be"),
           (("q", [], True, MODE_LLM, ()), "k must be"),
           (("q", [], 2.5, MODE_LLM, ()), "k must be"),
           (("q", [], 6, "Turbo", ()), "the mode must be"),
           ((7, [], 6, MODE_LLM, ()), "the question must be text"),
           (("q", [], 6, MODE_LLM, (None, ["2026"])), "dates, model and tag must be text")]
    for args, start in bad:
        problem = chat_payload_problem(*args)
        assert problem is not None and start in problem and "\n" not in problem, args


def test_add_files_takes_the_good_and_explains_the_rest(app_corpus: Settings, models: Models, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "good.md").write_text("## 新论文\n\n内容", encoding="utf-8")
    (uploads / "quokka.md").write_text("again", encoding="utf-8")  # the corpus has one already
    (uploads / "photo.png").write_bytes(b"\x89PNG")
    (uploads / "huge.txt").write_bytes(b"x" * 2000)
    app = make_app(app_corpus.updated({"index.max_note_bytes": 1000}), models)
    added, problems = app.add_files([uploads / n for n in ("good.md", "quokka.md", "photo.png", "huge.txt")])
    assert added == ["good.md"] and (app_corpus.index.corpus / "good.md").is_file()
    assert len(problems) == 3 and all(p.startswith("- ⚠️ ") for p in problems)
    assert "already in the corpus" in problems[0] and ".md, .txt and .org" in problems[1] and "cap" in problems[2]
    assert (app_corpus.index.corpus / "quokka.md").read_text(encoding="utf-8") == QUOKKA


def last_turn(app: NotesApp, question: str, history: list[dict] | None = None, **settings: object) -> tuple:
    defaults = {"k": 4, "mode": "Extractive", "file": "All notes", "since": "", "until": ""}
    out = None
    for out in app.respond(question, history, **{**defaults, **settings}):  # noqa: B007 - the last one counts
        pass
    return out


def test_status_and_chat_without_index_say_how_to_build_it(app_corpus: Settings, models: Models) -> None:
    app = make_app(app_corpus, models)
    assert "No index yet" in app.status() and "Rebuild" in app.status()
    _, messages, _ = last_turn(app, "What is OmniMoE?")
    assert messages[-1]["role"] == "assistant" and "Rebuild index" in messages[-1]["content"]
    assert "Traceback" not in messages[-1]["content"]


def test_chat_answers_with_citations_and_new_index_without_restart(app_indexed: Settings, models: Models) -> None:
    app_corpus = app_indexed
    app = make_app(app_corpus, models)
    status = app.status()
    assert "**Notes:** 2 " in status and "`hash`" in status and "Last build" in status
    assert app.note_choices() == ["All notes", REAL_NOTE, "quokka.md"]

    _, messages, sources = last_turn(app, "哪篇工作把 MoE 专家拆成原子专家?")
    answer = messages[-1]["content"]
    assert "[1]" in answer and f"[1] {REAL_NOTE}:42" in answer
    assert 'id="rag-src-1"' in sources and REAL_NOTE in sources and "OmniMoE" in sources

    # a follow-up goes with the history; a filter to the other note keeps OmniMoE out
    _, messages, sources = last_turn(app, "它的推理加速是多少?", messages, file="quokka.md")
    assert len(messages) == 4 and REAL_NOTE not in sources
    _, messages, _ = last_turn(app, "x", None, since="yesterday")
    assert "not a date" in messages[-1]["content"]

    # a note added later is found by the same app after a rebuild
    wombat = "## Wombat-Cache\n\nWombat-Cache 把 KV-cache 压缩到立方体。\n".encode()
    assert add_note(app_corpus.index.corpus, "wombat.md", wombat, app_corpus.index.max_note_bytes) == "wombat.md"
    report = app.build()
    assert report.added == ["wombat.md"] and report.notes == 3
    _, messages, sources = last_turn(app, "Wombat-Cache 是什么?")
    assert "wombat.md" in sources and "[1]" in messages[-1]["content"]


def test_index_status_lists_skipped_files(app_indexed: Settings, models: Models) -> None:
    app_corpus = app_indexed
    (app_corpus.index.corpus / "broken.txt").write_bytes(b"\x00\x00binary")
    build_index(app_corpus.index, open_store(app_corpus), models)
    status = index_status(open_store(app_corpus).load())
    assert "Skipped files (1)" in status and "`broken.txt`: binary file" in status


@pytest.mark.slow
def test_gradio_client_chat_and_ask_api(served: str) -> None:
    from gradio_client import Client

    client = Client(served, verbose=False, download_files=False)
    textbox, messages, sources = client.predict("哪篇工作把 MoE 专家拆成原子专家?", [], 3, "Extractive",
                                                "All notes", "", "", api_name="/chat")
    assert textbox == ""
    reply = messages[-1]
    assert reply["role"] == "assistant"
    text = reply["content"] if isinstance(reply["content"], str) else str(reply["content"])
    assert "[1]" in text
    assert REAL_NOTE in sources and "OmniMoE" in sources

    result = json.loads(client.predict("What is Quokka-Attention?", 3, False, api_name="/ask"))
    assert result["mode"] == "extractive" and "[1]" in result["answer"]
    assert result["citations"][0]["file"] == "quokka.md"


def test_login_from_rag_auth(app_corpus: Settings, models: Models) -> None:
    port = free_port()
    app_corpus = app_corpus.updated({"serve.port": port, "serve.auth": "ana:s3cret"})
    demo = build_app(make_app(app_corpus, models))  # no index yet: the page still comes up, offering to build it
    launch(demo, app_corpus, prevent_thread_lock=True, quiet=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get("/config").status_code == 401
            assert http.post("/login", data={"username": "ana", "password": "wrong"}).status_code == 400
            assert http.post("/login", data={"username": "ana", "password": "s3cret"}).status_code == 200
            assert http.get("/config").status_code == 200
    finally:
        demo.close()
    assert app_corpus.updated({"serve.auth": "bo:pa:ss"}).serve.login == ("bo", "pa:ss")
    for bad in ("no-colon", ":pw", "user:"):
        with pytest.raises(SettingsError, match="user:password"):
            app_corpus.updated({"serve.auth": bad})


def test_llm_endpoint_down_gives_extractive_answer_with_notice(app_indexed: Settings, models: Models) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    app = make_app(app_indexed.updated({"llm.base_url": down, "llm.api_key": "sk-hidden", "llm.model": "m",
                                    "llm.timeout": 5}), models)
    _, messages, sources = last_turn(app, "What is Quokka-Attention?", mode="LLM")
    text = messages[-1]["content"]
    assert "⚠️" in text and "[1]" in text and "quokka.md" in sources
    assert "sk-hidden" not in text and "Traceback" not in text


def test_llm_answer_streams_and_follow_up_uses_the_chat(app_indexed: Settings, models: Models) -> None:
    from tests.fake_openai import FakeOpenAI, Reply

    first = "OmniMoE 把 MoE 专家拆成向量级的原子专家 [1]。推理比 PEER 快 10.9 倍 [1]。"
    chunks = ["OmniMoE 把 MoE ", "专家拆成向量级的", "原子专家 [1]。推理比", " PEER 快 10.9 倍 [1]。"]
    with FakeOpenAI([Reply(first, chunks=chunks),
                     Reply("OmniMoE 相比 PEER 的推理加速"), Reply("比 PEER 快 10.9 倍 [1]。")]) as server:
        app = make_app(app_indexed.updated({"llm.base_url": server.base_url, "llm.api_key": "sk-test",
                                        "llm.model": "fake"}), models)
        settings = {"k": 4, "mode": "LLM", "file": "All notes", "since": "", "until": ""}
        turns = list(app.respond("哪篇工作把 MoE 专家拆成原子专家?", None, **settings))
        shown = [messages[-1]["content"] for _, messages, _ in turns]
        assert "OmniMoE 把 MoE 专家拆成向量级的原子专家 [1]。" in shown  # its first (checked) sentence came first
        assert shown[-1].startswith(first) and f"[1] {REAL_NOTE}:42" in shown[-1] and "⚠️" not in shown[-1]

        _, messages, sources = last_turn(app, "它快了多少?", turns[-1][1], mode="LLM")
        assert messages[-1]["content"].startswith("比 PEER 快 10.9 倍 [1]")
        assert REAL_NOTE in sources and "OmniMoE" in sources
        rewrite = server.requests[1].content("user")
        assert "原子专家" in rewrite and "它快了多少" in rewrite and "📎" not in rewrite  # history, no footer


@pytest.mark.slow
def test_app_py_builds_the_missing_index_then_serves_on_loopback(make_corpus: Callable[..., Settings]) -> None:
    app_corpus = make_corpus({"quokka.md": QUOKKA})
    port = free_port()
    env = {**os.environ, "RAG_CORPUS": str(app_corpus.index.corpus), "RAG_INDEX": str(app_corpus.index.path),
           "RAG_EMBEDDERS": "use-m3", "GRADIO_SERVER_PORT": str(port)}
    env.pop("GRADIO_SERVER_NAME", None)
    env.pop("RAG_AUTH", None)
    root = Path(__file__).resolve().parent.parent
    log = app_corpus.index.corpus.parent / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300  # a generous bound on a loaded machine, not a speed claim
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/config", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(1)
        else:
            pytest.fail(f"app.py did not come up:\n{log.read_text()}")
        text = log.read_text()
        assert "building it from" in text and "indexed 1 notes" in text
        assert f"127.0.0.1:{port}" in text and (app_corpus.index.path / "CURRENT").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_upload_over_the_chunk_cap_is_indexed_in_part_and_the_log_says_so(app_corpus: Settings, models: Models,
                                                                              tmp_path: Path) -> None:
    """Issue 25 risk: an upload under the size cap was accepted, then skipped whole by the chunk cap."""
    app = make_app(app_corpus.updated({"index.max_chunks_per_note": 40}), models)
    dump = tmp_path / "dump.md"
    dump.write_text("".join(f"## Wombat log {i}\n\nWombat burrow reading {i}.\n\n" for i in range(60)),
                    encoding="utf-8")
    assert app.add_files([dump]) == (["dump.md"], [])
    log = report_text(app.build())
    assert "✂️ dump.md: indexed in part, its first 40 of 60 chunks" in log
    assert "dump.md" in app.note_choices()
