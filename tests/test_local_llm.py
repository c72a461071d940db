"""A real llama.cpp server (xllamacpp) with the SmolLM2-135M GGUF file: serving, streaming, errors, no leftovers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from rag.answer.llm.local import LocalEndpoint, LocalModelError, LocalModelServer, gguf_path, is_local
from rag.net import free_port
from tests.smollm2 import ROOT

pytestmark = pytest.mark.slow


def _port(endpoint: LocalEndpoint) -> int:
    return int(endpoint.base_url.rsplit(":", 1)[1].split("/", 1)[0])


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _listen_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if int(hex_port, 16) == port and state == "0A":  # 0A = LISTEN
                found.add(address)
    return found


def _gone(pid: int, port: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while _alive(pid) or _accepts(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="module")
def served(smollm2: Path) -> Iterator[tuple[LocalModelServer, LocalEndpoint, list[str]]]:
    status: list[str] = []
    server = LocalModelServer(smollm2, threads=1, ctx=2048, on_status=status.append)
    with server as endpoint:
        yield server, endpoint, status


def test_is_local_and_path() -> None:
    assert is_local("gguf:/models/a.gguf")
    assert not is_local("gpt-4o-mini")
    assert not is_local(None)
    assert not is_local("")
    assert gguf_path("gguf:~/m.gguf") == Path.home() / "m.gguf"


def test_lists_the_alias_and_listens_on_loopback_only(served) -> None:
    server, endpoint, status = served
    assert endpoint.base_url.startswith("http://127.0.0.1:") and endpoint.base_url.endswith("/v1")
    assert endpoint.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert endpoint.label == "local: SmolLM2-135M-Instruct.Q4_1.gguf, 1 thread"
    assert status and status[0] == "loading model SmolLM2-135M-Instruct.Q4_1.gguf… 0 s"
    with urllib.request.urlopen(f"{endpoint.base_url}/models", timeout=10) as response:
        ids = [m["id"] for m in json.load(response)["data"]]
    assert ids == [endpoint.model]
    assert _listen_addresses(_port(endpoint)) == {"0100007F"}  # 127.0.0.1, nothing on 0.0.0.0 or ::
    assert server.start() == endpoint  # idempotent while running


def test_streams_a_chat_completion_in_several_deltas(served) -> None:
    _, endpoint, _ = served
    client = OpenAI(base_url=endpoint.base_url, api_key="not-needed", timeout=60)
    stream = client.chat.completions.create(model=endpoint.model, max_tokens=12, temperature=0, stream=True,
                                            messages=[{"role": "user", "content": "Name three colours."}])
    deltas = [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
    assert len(deltas) >= 3
    assert "".join(deltas).strip()


@pytest.mark.parametrize("make, expected", [
    (lambda tmp, model: tmp / "missing.gguf", "model file not found"),
    (lambda tmp, model: tmp, "not a regular file"),
    (lambda tmp, model: (tmp / "notes.gguf", (tmp / "notes.gguf").write_text("# notes\n"))[0], "not a GGUF"),
    (lambda tmp, model: (tmp / "cut.gguf", (tmp / "cut.gguf").write_bytes(model.read_bytes()[:1000]))[0],
     "llama.cpp could not serve cut.gguf: read: string length"),
], ids=["missing", "directory", "not-gguf", "truncated"])
def test_a_bad_model_file_is_one_line(tmp_path: Path, smollm2: Path, make, expected: str) -> None:
    server = LocalModelServer(make(tmp_path, smollm2), load_timeout=30)
    with pytest.raises(LocalModelError) as error:
        server.start()
    message = str(error.value)
    assert expected in message and "\n" not in message
    assert server.pid is None and server.endpoint is None


def test_missing_runtime_names_the_extra(smollm2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # what an environment without the package looks like
    with pytest.raises(LocalModelError, match=r"pip install 'notes-rag\[local\]'"):
        LocalModelServer(smollm2).start()


def test_a_load_timeout_is_one_line_and_leaves_nothing(smollm2: Path) -> None:
    server = LocalModelServer(smollm2, load_timeout=0)
    with pytest.raises(LocalModelError, match="did not load within 0 s"):
        server.start()
    assert server.pid is None


def test_stop_frees_the_port_and_ends_the_process(smollm2: Path) -> None:
    server = LocalModelServer(smollm2, ctx=512)
    endpoint = server.start()
    pid, port = server.pid, _port(endpoint)
    assert pid and _alive(pid) and _accepts(port)
    server.stop()
    assert not _alive(pid) and not _accepts(port)  # stop waits: no delay needed
    server.stop()  # idempotent


_CHILD = """
import os, signal, sys
from pathlib import Path
from rag.answer.llm.local import LocalModelServer
server = LocalModelServer(Path(sys.argv[1]), ctx=512)
endpoint = server.start()
print(server.pid, endpoint.base_url, flush=True)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no finalizer: the server must notice by itself
"""


@pytest.mark.parametrize("ending", ["exit", "kill"])
def test_no_server_outlives_the_app(smollm2: Path, ending: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(smollm2), ending], capture_output=True, text=True,
                          timeout=120, env=env)
    pid_text, base_url = done.stdout.split()
    pid, port = int(pid_text), int(base_url.rsplit(":", 1)[1].split("/", 1)[0])
    assert _gone(pid, port), f"llama.cpp server {pid} still running after the app's {ending}"


_PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-P", sys.argv[1], "serve", sys.argv[2], "--port", sys.argv[3]],
                         stdin=subprocess.PIPE, start_new_session=True)
print(child.pid, flush=True)
child.wait()
"""


def test_the_child_ends_when_the_parent_dies_while_the_model_loads(tmp_path: Path) -> None:
    """Issue 25 risk: a `kill -9` of the app while a model loaded left the llama.cpp child running until
    the load ended (the load holds the child's GIL: it cannot notice its stdin closing). A model on a
    FIFO nobody writes loads for ever; the child must still go within moments of its parent."""
    import rag.answer.llm.local as local

    model = tmp_path / "endless.gguf"
    os.mkfifo(model)
    port = free_port()
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, local.__file__, str(model), str(port)],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert parent.stdout
    child = int(parent.stdout.readline())
    try:
        time.sleep(3)  # importing xllamacpp, then stuck opening the model
        assert _alive(child)
        parent.kill()
        parent.wait(timeout=10)
        assert _gone(child, port), "the llama.cpp child outlived its killed parent"
    finally:
        if _alive(child):
            os.kill(child, 9)
