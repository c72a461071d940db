"""`rag mcp` through the official SDK's own client, over stdio and streamable HTTP, against real indexes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from rag.app.mcp_server import build_server
from rag.build.builder import build_index
from rag.embed.models import Models
from rag.service import Notes
from rag.settings import Settings
from rag.store import open_store
from tests.conftest import CORPUS, ROOT, RunRag

NOTES = {
    "moe.md": "# Notes\n\n## OmniMoE\n把 MoE 专家拆成原子专家，按专家重组 token 请求。\n\n"
              "## HySparse\nKV Cache 显存直降 80%，混合稀疏注意力。\n",
    "audio.md": "## AudioSAE\nSparse autoencoders on Whisper and HuBERT reduce hallucinations.\n",
}
TOOLS = {"search_notes", "ask_notes", "get_entry", "related_entries", "list_notes"}


def env_for(settings: Settings, **more: str) -> dict[str, str]:
    return {**os.environ, "RAG_CORPUS": str(settings.index.corpus), "RAG_INDEX": str(settings.index.path),
            "RAG_EMBEDDERS": ",".join(settings.index.embedders), **more}


def stdio(settings: Settings, stderr_to: Path, **env: str) -> Client:
    """A real client spawning `rag mcp` over stdio; the server's stderr goes to a file we read after."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag.app.cli", "mcp"], cwd=str(ROOT),
                                   env=env_for(settings, **env))
    return Client(stdio_client(params, errlog=stderr_to.open("w")), read_timeout_seconds=120)


def structured(result: Any) -> dict:
    assert not result.is_error, result.content
    return result.structured_content


def error_line(result: Any) -> str:
    assert result.is_error
    text = "".join(getattr(c, "text", "") for c in result.content)
    assert "Traceback" not in text and text.count("\n") == 0, text
    return text


@pytest.fixture
def indexed(make_corpus, models: Models) -> Settings:
    settings = make_corpus(NOTES)
    build_index(settings.index, open_store(settings), models)
    return settings


@pytest.mark.slow
def test_stdio_client_lists_and_calls_every_tool(indexed: Settings, run_rag: RunRag, tmp_path: Path) -> None:
    cli = json.loads(run_rag("search", "原子专家", "--json", "-k", "3", settings=indexed).stdout)

    async def session() -> None:
        async with stdio(indexed, tmp_path / "stderr.txt") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == TOOLS
            assert "data" in tools["search_notes"].description and tools["search_notes"].input_schema
            found = structured(await client.call_tool("search_notes", {"query": "原子专家", "k": 3}))
            assert [h["title"] for h in found["hits"]] == [h["title"] for h in cli["hits"]]
            assert found["hits"][0] == cli["hits"][0] and "instructions" in found["notice"]
            answer = structured(await client.call_tool("ask_notes", {"question": "哪篇工作把 MoE 专家拆成原子专家?"}))
            assert answer["mode"] == "extractive" and not answer["refused"]
            assert answer["citations"] and answer["citations"][0]["title"] == "OmniMoE"
            top = found["hits"][0]
            where = {"file": top["file"], "line_start": top["line_start"]}
            entry = structured(await client.call_tool("get_entry", where))
            assert entry["title"] == "OmniMoE" and "原子专家" in entry["text"]
            related = structured(await client.call_tool("related_entries", {**where, "k": 2}))
            assert related["entry"]["title"] == "OmniMoE" and len(related["related"]) == 2
            assert all((r["file"], r["line_start"]) != (top["file"], top["line_start"]) for r in related["related"])
            listed = structured(await client.call_tool("list_notes", {}))
            assert {n["file"]: n["entries"] for n in listed["notes"]} == {"audio.md": 1, "moe.md": 3}
            # bad arguments: one line each, as tool errors
            assert "empty" in error_line(await client.call_tool("search_notes", {"query": "   "}))
            assert "2026-02-07" in error_line(await client.call_tool("search_notes", {"query": "x", "since": "2/1"}))
            assert "from 1 to" in error_line(await client.call_tool("search_notes", {"query": "x", "k": 0}))
            assert "not an indexed note" in error_line(await client.call_tool("get_entry",
                                                                             {"file": "nope.md", "line_start": 1}))
            assert "RAG_LLM_MODEL" in error_line(await client.call_tool("ask_notes", {"question": "x", "mode": "llm"}))
            # a rebuild by someone else is picked up without a restart
            (indexed.index.corpus / "new.md").write_text("## Wombatron\nA marsupial transformer.\n", encoding="utf-8")
            assert run_rag("index", settings=indexed).returncode == 0
            again = structured(await client.call_tool("search_notes", {"query": "Wombatron marsupial", "k": 1}))
            assert again["hits"][0]["title"] == "Wombatron"

    anyio.run(session)
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()


def test_stdout_carries_nothing_but_protocol(indexed: Settings) -> None:
    """Raw JSON-RPC over a pipe: every line the server writes to stdout is a JSON-RPC message."""
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "search_notes",
                                                                        "arguments": {"query": "KV Cache 80%"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "search_notes",
                                                                        "arguments": {"query": 42}}},
    ]
    proc = subprocess.Popen([sys.executable, "-m", "rag.app.cli", "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env_for(indexed))
    assert proc.stdin and proc.stdout
    for request in requests:
        proc.stdin.write(json.dumps(request) + "\n")
    proc.stdin.flush()
    lines = []
    while len([m for m in lines if "id" in m]) < 3:  # a client keeps stdin open until its answers arrive
        line = proc.stdout.readline()
        assert line, "the server closed stdout before answering"
        lines.append(json.loads(line))  # fails on any non-JSON line
    proc.stdin.close()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.wait(timeout=60) == 0 and proc.stdout.read() == ""
    assert all(m.get("jsonrpc") == "2.0" for m in lines)
    by_id = {m["id"]: m for m in lines if "id" in m}
    assert by_id[2]["result"]["structuredContent"]["hits"][0]["title"] == "HySparse"
    assert by_id[3].get("error") or by_id[3]["result"]["isError"]
    assert "Traceback" not in stderr


def test_missing_index_is_a_tool_error(make_corpus, models: Models) -> None:
    settings = make_corpus(NOTES)  # never indexed

    async def session() -> None:  # the SDK's client on the server in this process (stdio: the test above)
        async with Client(build_server(Notes(settings, models))) as client:
            assert "rag index" in error_line(await client.call_tool("search_notes", {"query": "MoE"}))
            assert "rag index" in error_line(await client.call_tool("list_notes", {}))

    anyio.run(session)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError("MCP HTTP server did not start")


@pytest.mark.slow
@pytest.mark.parametrize("auth", [None, "ada:s3cret:pw"])
def test_http_transport_on_loopback(indexed: Settings, auth: str | None) -> None:
    port = free_port()
    extra = {"RAG_AUTH": auth} if auth else {}
    proc = subprocess.Popen([sys.executable, "-m", "rag.app.cli", "mcp", "--http", "--port", str(port)], cwd=ROOT,
                            env=env_for(indexed, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(port, proc)
        url = f"http://127.0.0.1:{port}/mcp"
        if auth:
            refused = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            assert refused.status_code == 401

        async def session() -> None:
            transport: Any = url
            if auth:
                http = httpx2.AsyncClient(auth=httpx2.BasicAuth(*auth.split(":", 1)), timeout=60)
                transport = streamable_http_client(url, http_client=http)
            async with Client(transport, read_timeout_seconds=60) as client:
                assert {t.name for t in (await client.list_tools()).tools} == TOOLS
                found = structured(await client.call_tool("search_notes", {"query": "原子专家", "k": 1}))
                assert found["hits"][0]["title"] == "OmniMoE"

        anyio.run(session)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_real_notes_same_top_entry_as_rag_search(real_settings: Settings, run_rag: RunRag, tmp_path: Path) -> None:
    question = "哪篇工作把 MoE 专家拆成原子专家"
    cli = json.loads(run_rag("search", question, "--json", "--corpus", str(CORPUS),
                             "--index", str(real_settings.index.path)).stdout)

    async def session() -> None:
        async with stdio(real_settings, tmp_path / "stderr.txt") as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            found = structured(await client.call_tool("search_notes", {"query": question}))
            assert found["hits"][0] == cli["hits"][0]
            assert "OmniMoE" in found["hits"][0]["title"]

    anyio.run(session)
