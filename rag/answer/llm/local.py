"""A local GGUF model behind llama.cpp's own OpenAI-compatible server, so answers use one client path.

The server (PyPI ``xllamacpp``) runs in a child process this module owns, never in the app's own
process, because in-process it (measured, xllamacpp 2026.10.11549):

- holds the GIL for the whole model load, freezing every Python thread (no progress, no UI);
- hangs the interpreter at exit in 3 of 5 runs when a Server is still alive then.

The child binds 127.0.0.1 only, on a port picked here. It exits when its stdin closes: on
:meth:`LocalModelServer.stop`, at interpreter exit (a ``weakref.finalize`` hook), or when the parent
dies in any way, even SIGKILL, since the kernel then closes the pipe. That is sturdier than
``PR_SET_PDEATHSIG``, which fires when the *thread* that started the child ends (Gradio starts work
in pool threads). While the model loads the child cannot read its stdin (the load holds the GIL), so
a watcher process forked before the load reads it instead and ends the child at EOF
(:func:`_watch_stdin`). The child has its own session, so a Ctrl-C meant for the app does not reach it.

Run by hand: ``python -m rag.answer.llm.local serve PATH [--threads N] [--ctx N] [--port N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rag.errors import RagError

GGUF_PREFIX = "gguf:"
GGUF_MAGIC = b"GGUF"
HOST = "127.0.0.1"
INSTALL_HINT = "pip install 'notes-rag[local]'"
_POLL_SECONDS = 0.2
_STOP_GRACE_SECONDS = 5.0


class LocalModelError(RagError):
    """A local model that cannot be served; the message is one line meant for the user."""


@dataclass(frozen=True)
class LocalEndpoint:
    """Where a started local model answers: an OpenAI-compatible ``base_url`` (ends in ``/v1``)."""

    base_url: str
    model: str  # the name to send as ``model``; /v1/models lists it
    label: str  # safe to show, e.g. "local: SmolLM2-135M-Instruct.Q4_1.gguf, 1 thread"


def is_local(model: str | None) -> bool:
    """Whether a model setting names a local GGUF file (``gguf:PATH``) rather than a remote model."""
    return bool(model) and model.startswith(GGUF_PREFIX)


def gguf_path(model: str) -> Path:
    """The file a ``gguf:PATH`` setting names (``~`` expanded; relative to the working directory)."""
    return Path(model.removeprefix(GGUF_PREFIX)).expanduser()


def check_gguf(path: Path) -> Path:
    """Fail in one line on anything that is not a readable GGUF file, before a server is started."""
    if not path.exists():
        raise LocalModelError(f"model file not found: {path}")
    if not path.is_file():
        raise LocalModelError(f"model path is not a regular file: {path}")
    try:
        with path.open("rb") as f:
            magic = f.read(len(GGUF_MAGIC))
    except OSError as e:
        raise LocalModelError(f"cannot read model file {path}: {e.strerror or e}") from None
    if magic != GGUF_MAGIC:
        raise LocalModelError(f"not a GGUF model file (no GGUF header): {path}")
    return path


def _health(port: int) -> int | None:
    """HTTP status of /health (503 while the model loads, 200 when ready); None if nothing listens."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def _first_error(log: IO[bytes]) -> str:
    """The child's first error line, the most specific one (llama.cpp logs ``0.00.003.658 E msg``)."""
    log.seek(0)
    lines = [line.strip() for line in log.read().decode("utf-8", "replace").splitlines() if line.strip()]
    errors = [" ".join(line.split(" E ", 1)[1].split()) for line in lines if " E " in line]
    return (errors or lines[-1:] or ["the server exited without a message"])[0]


def _end_child(process: subprocess.Popen, log: IO[bytes]) -> None:
    """Close the child's stdin (it exits by itself), then terminate, then kill; close its log."""
    with contextlib.suppress(OSError):
        if process.stdin:
            process.stdin.close()
    try:
        process.wait(_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log.close()


class LocalModelServer:
    """One GGUF model served by llama.cpp on 127.0.0.1 in a child process; a context manager.

    ``on_status`` is called about once a second while the model loads ("loading model… 3 s"), from
    the thread that called :meth:`start`.
    """

    def __init__(self, path: Path, *, threads: int = 1, ctx: int = 4096, load_timeout: float = 120.0,
                 on_status: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self.ctx = ctx
        self.load_timeout = load_timeout
        self.on_status = on_status
        self.endpoint: LocalEndpoint | None = None
        self._process: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def label(self) -> str:
        """What the app shows: "local: x.gguf, 1 thread" (the file's name only, never its folder)."""
        return f"local: {self.path.name}, {self.threads} thread{'' if self.threads == 1 else 's'}"

    @property
    def pid(self) -> int | None:
        """The server process id while it runs (tests check it is gone after stop)."""
        return self._process.pid if self._process and self._process.poll() is None else None

    def start(self) -> LocalEndpoint:
        """Start the server and wait until it answers /health with 200; idempotent while running."""
        if self.endpoint and self.pid:
            return self.endpoint
        self.stop()
        check_gguf(self.path)
        if importlib.util.find_spec("xllamacpp") is None:
            raise LocalModelError(f"local models need the xllamacpp package: {INSTALL_HINT}")
        from rag.net import free_port  # the parent's side only: this file also runs as the child

        port = free_port()
        log = tempfile.TemporaryFile()  # noqa: SIM115 -- outlives this call; _end_child closes it
        # -P: the script's folder (rag/) must not shadow top-level modules in the child
        command = [sys.executable, "-P", str(Path(__file__).resolve()), "serve", str(self.path.resolve()),
                   "--threads", str(self.threads), "--ctx", str(self.ctx), "--port", str(port)]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
                                         start_new_session=True)
        self._finalizer = weakref.finalize(self, _end_child, self._process, log)
        try:
            self._wait_ready(port, log)
        except BaseException:
            self.stop()
            raise
        self.endpoint = LocalEndpoint(base_url=f"http://{HOST}:{port}/v1", model=self.path.name, label=self.label)
        return self.endpoint

    def _wait_ready(self, port: int, log: IO[bytes]) -> None:
        assert self._process is not None
        started = time.monotonic()
        reported = -1
        while True:
            elapsed = time.monotonic() - started
            if self._process.poll() is not None:
                raise LocalModelError(f"llama.cpp could not serve {self.path.name}: {_first_error(log)}")
            if _health(port) == 200:
                return
            if elapsed > self.load_timeout:
                raise LocalModelError(f"{self.path.name} did not load within {self.load_timeout:g} s "
                                      "(raise the load timeout, or use a smaller model)")
            if self.on_status and int(elapsed) > reported:
                reported = int(elapsed)
                self.on_status(f"loading model {self.path.name}… {reported} s")
            time.sleep(_POLL_SECONDS)

    def stop(self) -> None:
        """Stop the server and wait until its process is gone (so its port is free); idempotent."""
        if self._finalizer:
            self._finalizer()
        self._process = None
        self._finalizer = None
        self.endpoint = None

    def __enter__(self) -> LocalEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _watch_stdin() -> None:
    """Fork a watcher that kills this process once stdin reaches EOF: the parent stopped us or died,
    maybe while the model still loads, when no thread of ours can act for minutes."""
    server = os.getpid()
    if os.fork():
        return
    try:
        while os.read(0, 65536):
            pass
        if os.getppid() == server:  # still ours (not reparented after the server ended)
            os.kill(server, signal.SIGKILL)
    finally:
        os._exit(0)


def _serve(path: str, threads: int, ctx: int, port: int) -> int:
    """Child side: serve until stdin closes (the parent stopped us or died), then exit at once."""
    _watch_stdin()
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = path
    params.model_alias = {Path(path).name}
    params.hostnames = [HOST]
    params.port = port
    params.n_ctx = ctx
    params.n_parallel = 1  # one answer at a time gets the whole context
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.ui = False
    params.verbosity = 1  # errors and warnings only: the parent reads the last error on a failed load
    try:
        _server = xllamacpp.Server(params)  # returns once the model is loaded; kept alive by this name
    except RuntimeError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    sys.stdin.buffer.read()  # blocks, GIL released, until EOF
    # os._exit skips interpreter teardown, where a live llama.cpp server can hang the exit.
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.answer.llm.local",
                                     description="Serve a GGUF model on 127.0.0.1 until stdin closes.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("path")
    serve.add_argument("--threads", type=int, default=1)
    serve.add_argument("--ctx", type=int, default=4096)
    serve.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    return _serve(args.path, args.threads, args.ctx, args.port)


if __name__ == "__main__":
    sys.exit(main())
