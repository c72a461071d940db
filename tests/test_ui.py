"""The app's logic (cards, highlighting, uploads, status) and the launched app through gradio_client."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from rag.answer import Answer, Citation
from rag.config import Config, LLMSettings
from rag.index import Index, build_index
from rag.notes import Entry
from rag.retrieve import Hit
from rag.ui import (
    NotesApp,
    UploadError,
    add_note,
    build_app,
    chat_history,
    format_answer,
    highlight,
    index_status,
    launch,
    model_text,
    parse_auth,
    parse_filters,
    query_terms,
    render_sources,
    safe_note_name,
)

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
REAL_NOTE = "001_662f7359960ed917.txt"  # holds OmniMoE, the "atomic experts" paper
QUOKKA = """# Reading log

## Quokka-Attention: Marsupial Sparse Attention for Long Context

- 链接: https://example.org/quokka
- 2026-03-02

Quokka-Attention 把注意力头按袋鼠跳跃的步长稀疏化，在 1M token 上下文里把显存降低了 37%。
"""


def make_hit(**changes: object) -> Hit:
    entry = Entry(file="001_a.txt", title="OmniMoE: Atomic Experts", line_start=42, line_end=68,
                  url="https://huggingface.co/papers/2602.05711", date="2026-02-09",
                  text="OmniMoE 把 MoE 专家拆成原子专家 (atomic experts).\n<b>bold</b>")
    entry = Entry(**{**entry.__dict__, **changes})
    return Hit(rank=1, score=0.05, entry=entry, snippet="OmniMoE 把 MoE 专家拆成原子专家 <script>x</script>",
               path="corpus/001_a.txt", chunk_lines=(42, 60))


# ---------------------------------------------------------------------------- rendering

def test_highlight_escapes_html_and_marks_terms() -> None:
    out = highlight("<img src=x onerror=alert(1)> MoE 与 amoeba 原子专家", ["moe", "原子专家"])
    assert "<img" not in out and "&lt;img src=x" in out
    assert "<mark>MoE</mark>" in out and "<mark>原子专家</mark>" in out
    assert "amoeba" in out and "a<mark>" not in out  # Latin terms match whole words only


def test_query_terms_skip_stopwords_and_single_letters() -> None:
    terms = query_terms("Which paper cut KV-cache memory by 80%?")
    assert "kv-cache" in terms and "memory" in terms
    assert "which" not in terms and "paper" not in terms
    assert terms.index("kv-cache") < terms.index("kv")  # longest first, so the whole term wins


def test_source_card_shows_title_location_date_link_snippet_and_preview() -> None:
    html = render_sources([Citation(1, make_hit())], "MoE 原子专家")
    assert 'id="rag-src-1"' in html and "[1]" in html
    assert "001_a.txt:42–68" in html and "2026-02-09" in html
    assert 'href="https://huggingface.co/papers/2602.05711"' in html
    assert "<mark>原子专家</mark>" in html
    assert "<details" in html and "&lt;b&gt;bold&lt;/b&gt;" in html  # whole entry, escaped
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_source_card_never_links_a_script_url() -> None:
    html = render_sources([Citation(2, make_hit(url="javascript:alert(1)", date=None))], "x")
    assert "javascript:" not in html and "href=" not in html
    assert "[2]" in html


def test_empty_sources_and_chat_footer_round_trip() -> None:
    assert "appear here" in render_sources([], "")
    answer = Answer("q", "OmniMoE 把专家拆成原子专家 [1]。", [Citation(1, make_hit())], "extractive", refused=False,
                    notice="LLM endpoint unreachable; this is an extractive answer")
    message = format_answer(answer)
    assert "[1] 001_a.txt:42" in message and "⚠️ LLM endpoint unreachable" in message
    history = chat_history([{"role": "user", "content": "q"}, {"role": "assistant", "content": message},
                            {"role": "assistant", "content": [{"type": "text", "text": "part"}]}])
    assert history[1]["content"].startswith("OmniMoE") and "001_a.txt:42" not in history[1]["content"]
    assert history[2] == {"role": "assistant", "content": "part"}


def test_model_text_names_model_and_host_never_the_key() -> None:
    config = Config(llm=LLMSettings(base_url="https://bob:sk-secret@api.example.com/v1?key=sk-secret",
                                    api_key="sk-secret", model="qwen-plus"))
    text = model_text(config)
    assert "qwen-plus" in text and "api.example.com/v1" in text
    assert "sk-secret" not in text and "bob" not in text
    assert "extractive" in model_text(Config())
    assert LLMSettings().public_endpoint == "the default OpenAI endpoint"
    assert LLMSettings(base_url="http://u:p@127.0.0.1:8000/v1").public_endpoint == "http://127.0.0.1:8000/v1"


def test_parse_filters() -> None:
    f = parse_filters("All notes", " 2026-02-01 ", "")
    assert f.file_glob is None and f.since == "2026-02-01" and f.until is None
    assert parse_filters("00*.txt", None, None).file_glob == "00*.txt"
    with pytest.raises(ValueError, match="not a date"):
        parse_filters(None, "last week", None)


# ---------------------------------------------------------------------------- uploads

@pytest.mark.parametrize(("name", "safe"), [
    ("notes.md", "notes.md"),
    ("../../etc/cron.d/evil.md", "evil.md"),
    ("C:\\Users\\me\\读书笔记 2026.txt", "读书笔记 2026.txt"),
    ("..hidden.md", "hidden.md"),
    ("a<b>|c.MD", "a_b__c.MD"),
])
def test_safe_note_name(name: str, safe: str) -> None:
    assert safe_note_name(name) == safe


@pytest.mark.parametrize("name", ["run.sh", "notes.md.exe", "../", ".md", "<>.md"])
def test_safe_note_name_rejects(name: str) -> None:
    with pytest.raises(UploadError):
        safe_note_name(name)


def test_add_note_checks_and_never_overwrites(tmp_path: Path) -> None:
    assert add_note(tmp_path, "../x/new.md", "# 新笔记\n内容".encode(), 1000) == "new.md"
    assert (tmp_path / "new.md").read_text(encoding="utf-8") == "# 新笔记\n内容"
    assert not (tmp_path.parent / "x").exists()
    with pytest.raises(UploadError, match="already in the corpus"):
        add_note(tmp_path, "new.md", b"other", 1000)
    with pytest.raises(UploadError, match="over the"):
        add_note(tmp_path, "big.md", b"x" * 1001, 1000)
    with pytest.raises(UploadError, match="binary"):
        add_note(tmp_path, "bin.md", b"\x00\x01\x02abc", 1000)
    with pytest.raises(UploadError, match="empty"):
        add_note(tmp_path, "blank.txt", b"  \n", 1000)
    # a GBK note is stored as UTF-8, so every later reader sees the same text
    assert add_note(tmp_path, "gbk.txt", "稀疏自动编码器分析音频模型".encode("gbk"), 1000) == "gbk.txt"
    assert (tmp_path / "gbk.txt").read_text(encoding="utf-8") == "稀疏自动编码器分析音频模型"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gbk.txt", "new.md"]


def test_add_files_takes_the_good_and_explains_the_rest(config: Config, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "good.md").write_text("## 新论文\n\n内容", encoding="utf-8")
    (uploads / "quokka.md").write_text("again", encoding="utf-8")  # the corpus has one already
    (uploads / "photo.png").write_bytes(b"\x89PNG")
    (uploads / "huge.txt").write_bytes(b"x" * 2000)
    app = NotesApp(config.with_(max_note_bytes=1000))
    added, problems = app.add_files([uploads / n for n in ("good.md", "quokka.md", "photo.png", "huge.txt")])
    assert added == ["good.md"] and (config.corpus / "good.md").is_file()
    assert len(problems) == 3 and all(p.startswith("- ⚠️ ") for p in problems)
    assert "already in the corpus" in problems[0] and ".md and .txt" in problems[1] and "cap" in problems[2]
    assert (config.corpus / "quokka.md").read_text(encoding="utf-8") == QUOKKA


# ---------------------------------------------------------------------------- the app

@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real note indexed once per run; tests copy this index instead of embedding it again.

    A fixed folder, so the browser tests (which import these fixtures) find it built.
    """
    root = tmp_path_factory.getbasetemp() / "ui-seed"
    (root / "corpus").mkdir(parents=True, exist_ok=True)
    shutil.copy(CORPUS / REAL_NOTE, root / "corpus" / REAL_NOTE)
    build_index(Config(corpus=root / "corpus", index=root / "index", embedders=("use-m3",)))
    return root / "index"


@pytest.fixture
def config(make_corpus: Callable[..., Config]) -> Config:
    """A corpus of one real note and one made-up one, not yet indexed."""
    return make_corpus({REAL_NOTE: (CORPUS / REAL_NOTE).read_bytes(), "quokka.md": QUOKKA})


@pytest.fixture
def indexed(config: Config, seed_index: Path) -> Config:
    """``config`` with its index built (only the made-up note is new to the copied seed)."""
    shutil.copytree(seed_index, config.index)
    build_index(config)
    return config


def last_turn(app: NotesApp, question: str, history: list[dict] | None = None, **settings: object) -> tuple:
    defaults = {"k": 4, "mode": "Extractive", "file": "All notes", "since": "", "until": ""}
    out = None
    for out in app.respond(question, history, **{**defaults, **settings}):  # noqa: B007 - the last one counts
        pass
    return out


def test_status_and_chat_without_index_say_how_to_build_it(config: Config) -> None:
    app = NotesApp(config)
    assert "No index yet" in app.status() and "Rebuild" in app.status()
    _, messages, _ = last_turn(app, "What is OmniMoE?")
    assert messages[-1]["role"] == "assistant" and "Rebuild index" in messages[-1]["content"]
    assert "Traceback" not in messages[-1]["content"]


def test_chat_answers_with_citations_and_new_index_without_restart(indexed: Config) -> None:
    config = indexed
    app = NotesApp(config)
    status = app.status()
    assert "**Notes:** 2 " in status and "use-m3" in status and "Last build" in status
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
    assert add_note(config.corpus, "wombat.md", "## Wombat-Cache\n\nWombat-Cache 把 KV-cache 压缩到立方体。\n".encode(),
                    config.max_note_bytes) == "wombat.md"
    assert "3" in app.build().summary()
    _, messages, sources = last_turn(app, "Wombat-Cache 是什么?")
    assert "wombat.md" in sources and "[1]" in messages[-1]["content"]


def test_index_status_lists_skipped_files(indexed: Config) -> None:
    config = indexed
    (config.corpus / "broken.txt").write_bytes(b"\x00\x00binary")
    build_index(config)
    status = index_status(Index.load(config.index))
    assert "Skipped files (1)" in status and "`broken.txt`: binary file" in status


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(indexed: Config) -> Iterator[str]:
    """The real app on a free loopback port; yields its URL."""
    config = indexed
    demo = build_app(config)
    port = free_port()
    launch(demo, config, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


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


def test_login_from_rag_auth(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_AUTH", "ana:s3cret")
    demo = build_app(config)  # no index yet: the page still comes up, offering to build it
    port = free_port()
    launch(demo, config, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get("/config").status_code == 401
            assert http.post("/login", data={"username": "ana", "password": "wrong"}).status_code == 400
            assert http.post("/login", data={"username": "ana", "password": "s3cret"}).status_code == 200
            assert http.get("/config").status_code == 200
    finally:
        demo.close()
    assert parse_auth("bo:pa:ss") == ("bo", "pa:ss") and parse_auth("") is None
    for bad in ("no-colon", ":pw", "user:"):
        with pytest.raises(ValueError, match="user:password"):
            parse_auth(bad)


def test_llm_endpoint_down_gives_extractive_answer_with_notice(indexed: Config) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    app = NotesApp(indexed.with_(llm=LLMSettings(base_url=down, api_key="sk-hidden", model="m", timeout=5)))
    _, messages, sources = last_turn(app, "What is Quokka-Attention?", mode="LLM")
    text = messages[-1]["content"]
    assert "⚠️" in text and "[1]" in text and "quokka.md" in sources
    assert "sk-hidden" not in text and "Traceback" not in text


def test_llm_answer_streams_and_follow_up_uses_the_chat(indexed: Config) -> None:
    from tests.fake_openai import FakeOpenAI, Reply

    first = "OmniMoE 把 MoE 专家拆成向量级的原子专家 [1]。"
    with FakeOpenAI([Reply(first, chunks=["OmniMoE 把 MoE ", "专家拆成向量级的", "原子专家 [1]。"]),
                     Reply("OmniMoE 相比 PEER 的推理加速"), Reply("比 PEER 快 10.9 倍 [1]。")]) as server:
        app = NotesApp(indexed.with_(llm=LLMSettings(base_url=server.base_url, api_key="sk-test", model="fake")))
        settings = {"k": 4, "mode": "LLM", "file": "All notes", "since": "", "until": ""}
        turns = list(app.respond("哪篇工作把 MoE 专家拆成原子专家?", None, **settings))
        shown = [messages[-1]["content"] for _, messages, _ in turns]
        assert any(0 < len(s) < len(first) and first.startswith(s) for s in shown)  # partial text came first
        assert shown[-1].startswith(first) and f"[1] {REAL_NOTE}:42" in shown[-1] and "⚠️" not in shown[-1]

        _, messages, sources = last_turn(app, "它快了多少?", turns[-1][1], mode="LLM")
        assert messages[-1]["content"].startswith("比 PEER 快 10.9 倍 [1]")
        assert REAL_NOTE in sources and "OmniMoE" in sources
        rewrite = server.requests[1].content("user")
        assert "原子专家" in rewrite and "它快了多少" in rewrite and "📎" not in rewrite  # history, no footer


def test_app_py_builds_the_missing_index_then_serves_on_loopback(make_corpus: Callable[..., Config]) -> None:
    config = make_corpus({"quokka.md": QUOKKA})
    port = free_port()
    env = {**os.environ, "RAG_CORPUS": str(config.corpus), "RAG_INDEX": str(config.index),
           "RAG_EMBEDDERS": "use-m3", "GRADIO_SERVER_PORT": str(port)}
    env.pop("GRADIO_SERVER_NAME", None)
    env.pop("RAG_AUTH", None)
    root = Path(__file__).resolve().parent.parent
    log = config.corpus.parent / "app.log"
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
        assert f"127.0.0.1:{port}" in text and (config.index / "CURRENT").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
