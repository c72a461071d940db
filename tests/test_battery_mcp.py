"""Fault battery, MCP over stdio (issue 25): a mistyped argument is one short line, a malformed
JSON-RPC line with an id gets an error reply, the server ends within moments of its client closing
stdin mid-answer, and the Postgres pool's warnings are one line each. The real `rag mcp` process,
spoken to in raw JSON-RPC."""

from __future__ import annotations

import io
import json
import logging
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr

import pytest

from rag.app import mcp_server
from tests.battery import CODE_ROOT, clean_env, run_subprocess
from tests.conftest import QUOKKA
from tests.fake_openai import FakeOpenAI, Reply

pytestmark = pytest.mark.slow
HELLO = [{"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"}]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("mcp")
    (root / "corpus").mkdir()
    (root / "corpus" / "quokka.md").write_text(QUOKKA, encoding="utf-8")
    env = {"RAG_CORPUS": str(root / "corpus"), "RAG_INDEX": str(root / "index"), "RAG_EMBEDDERS": "hash"}
    assert run_subprocess("index", env=env, cwd=root).code == 0
    return env


@contextmanager
def mcp(env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`rag mcp` over pipes; its stdout lines are read into ``proc.lines`` (a queue), so a reply that
    never comes fails the test instead of hanging it."""
    proc = subprocess.Popen([sys.executable, "-m", "rag.app.cli", "mcp"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=CODE_ROOT,
                            env=clean_env(env) | {"PYTHONPATH": str(CODE_ROOT)})
    proc.lines = queue.Queue()  # type: ignore[attr-defined]
    threading.Thread(target=lambda: [proc.lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[attr-defined,union-attr]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def send(proc: subprocess.Popen, *lines: object) -> None:
    assert proc.stdin
    for line in lines:
        proc.stdin.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    proc.stdin.flush()


def replies(proc: subprocess.Popen, ids: set[object]) -> dict[object, dict]:
    """Messages by id until every id in ``ids`` has its reply (a minute at most)."""
    got: dict[object, dict] = {}
    while not ids <= got.keys():
        try:
            line = proc.lines.get(timeout=60)  # type: ignore[attr-defined]
        except queue.Empty:
            raise AssertionError(f"no reply for {ids - got.keys()}") from None
        message = json.loads(line)
        got[message.get("id")] = message
    return got


def test_a_mistyped_tool_argument_is_one_short_line(env: dict[str, str]) -> None:
    """Issue 25 bug 8: a mistyped argument came back as 4 lines of pydantic text with a URL."""
    with mcp(env) as proc:
        send(proc, *HELLO, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                            "params": {"name": "search_notes", "arguments": {"query": "Quokka", "k": "many"}}})
        result = replies(proc, {0, 1})[1]["result"]
    text = "".join(c.get("text", "") for c in result["content"])
    assert result["isError"] and "\n" not in text and "pydantic.dev" not in text, text
    assert text.startswith("Error executing tool search_notes: argument k: Input should be a valid integer"), text


def test_malformed_jsonrpc_lines_with_an_id_get_an_error_reply(env: dict[str, str]) -> None:
    """Risk: such lines were dropped without a word, and a client would wait for its id for ever."""
    with mcp(env) as proc:
        send(proc, *HELLO, '{"jsonrpc": "2.0", "id": 7, "method": 3}', '{"id": "eight"}', "not json at all",
             {"jsonrpc": "2.0", "id": 9, "method": "ping"})
        got = replies(proc, {0, 7, "eight", 9})
    assert got[7]["error"]["code"] == got["eight"]["error"]["code"] == -32600
    assert got[9]["result"] == {}  # still serving


def test_the_server_ends_soon_after_stdin_closes_mid_answer(env: dict[str, str]) -> None:
    """Risk: after its client closed stdin mid-answer, the server lingered up to llm.deadline (300 s)."""
    with FakeOpenAI(default=Reply("late [1]", delay=120)) as fake, mcp(
            env | {"RAG_LLM_MODEL": "m", "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "k"}) as proc:
        send(proc, *HELLO, {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "ask_notes", "arguments": {"question": "Quokka-Attention 把显存降低了多少?", "mode": "llm"}}})
        replies(proc, {0})
        deadline = time.monotonic() + 60
        while not fake.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fake.requests, "the answer never reached the model"
        assert proc.stdin
        proc.stdin.close()
        closed = time.monotonic()
        proc.wait(timeout=30)
        assert time.monotonic() - closed < 10
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def test_pool_warnings_on_mcp_stderr_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Risk: the Postgres pool's reconnect warnings printed multi-line text (a traceback) on MCP's stderr."""
    pool = logging.getLogger("psycopg.pool")
    monkeypatch.setattr(pool, "handlers", list(pool.handlers))
    monkeypatch.setattr(pool, "propagate", pool.propagate)
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        mcp_server._one_line_pool_log()
        try:
            raise ConnectionError("server closed the connection\nunexpectedly")
        except ConnectionError:
            pool.warning("error connecting in 'pool-1': %s", "connection refused\n\tIs the server running?",
                         exc_info=True)
    assert stderr.getvalue() == "notes-rag: psycopg.pool: error connecting in 'pool-1': connection refused\n"
