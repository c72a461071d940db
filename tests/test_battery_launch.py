"""Fault battery, starting a server (issue 25): `rag serve` and `rag mcp --http` on a busy port, or on a
public address without a login, are one line and exit 2 before anything is built or loaded. Real
processes and real sockets (on the old code they served, or died with a traceback or exit 3). Fast
tier: each is refused in about a second."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.battery import assert_one_line_error, run_subprocess
from tests.conftest import QUOKKA

COMMANDS = {"serve": ["serve", "--port"], "mcp --http": ["mcp", "--http", "--port"]}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "quokka.md").write_text(QUOKKA, encoding="utf-8")
    return {"RAG_CORPUS": str(tmp_path / "corpus"), "RAG_INDEX": str(tmp_path / "index"), "RAG_EMBEDDERS": "hash"}


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_busy_port_is_one_line_and_exit_2(command: str, busy_port: int, env: dict[str, str], tmp_path: Path) -> None:
    """Issue 25 bugs 7 and 8: `rag serve` gave gradio's OSError traceback; `rag mcp --http` exited 3."""
    run = run_subprocess(*COMMANDS[command], str(busy_port), env=env, cwd=tmp_path, timeout=90)
    assert_one_line_error(run, f":{busy_port}", "another program is using it", "choose another port")
    assert not (tmp_path / "index").exists()  # refused before building anything


@pytest.mark.parametrize("command", COMMANDS)
def test_a_public_address_without_a_login_is_refused(command: str, env: dict[str, str], tmp_path: Path) -> None:
    """Risk: `rag serve` bound 0.0.0.0 without RAG_AUTH silently (`rag mcp` already refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = run_subprocess(*COMMANDS[command], str(port), "--host", "0.0.0.0", env=env, cwd=tmp_path, timeout=90)
    assert_one_line_error(run, "refusing to serve", "0.0.0.0", "RAG_AUTH")
