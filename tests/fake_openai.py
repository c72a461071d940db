"""A real OpenAI-compatible HTTP server on 127.0.0.1 with scripted replies, for tests.

It speaks ``POST /v1/chat/completions`` as JSON or as SSE (``stream: true``) and ``GET
/v1/models``, records every request it receives (path, headers, JSON body), and answers from a
script: a queue of :class:`Reply` objects, then ``default`` (a Reply or a function of the request
body). Use it as a context manager::

    with FakeOpenAI([Reply("Answer [1]")]) as server:
        llm = LLMSettings(base_url=server.base_url, api_key="sk-test", model="fake")
        ...
        server.requests[0].body["messages"]
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rag.net import free_port


@dataclass
class Reply:
    """One scripted answer. ``status`` >= 400 sends an OpenAI-style error body instead."""

    text: str = ""
    status: int = 200
    delay: float = 0.0  # seconds before answering (a timeout test sets more than the client allows)
    chunks: list[str] | None = None  # streamed pieces; default: the text cut into small pieces
    drop: bool = False  # close the connection without answering
    stall_after: int | None = None  # stream this many pieces, then go silent for ``delay`` s
    body: bytes | None = None  # a 200 reply of these bytes with ``content_type`` (HTML, plain JSON)
    content_type: str = "text/event-stream"
    events: list[object] | None = None  # raw SSE ``data:`` payloads (JSON-encoded unless a str)
    endless: bool = False  # stream pieces of ``text`` until the client hangs up
    claims: list[dict] | None = None  # a structured answer: {"covered", "claims"} as JSON text
    covered: bool = True

    def __post_init__(self) -> None:
        if self.claims is not None:
            self.text = json.dumps({"covered": self.covered, "claims": self.claims}, ensure_ascii=False)


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict = field(default_factory=dict)

    @property
    def messages(self) -> list[dict]:
        return self.body.get("messages", [])

    def content(self, role: str) -> str:
        """All message contents of one role, joined (e.g. the system prompt)."""
        return "\n".join(str(m.get("content", "")) for m in self.messages if m.get("role") == role)

    def last(self, role: str) -> str:
        """The last message of one role: the real question after any worked example turns."""
        return next(str(m.get("content", "")) for m in reversed(self.messages) if m.get("role") == role)


def split_text(text: str, size: int = 4) -> list[str]:
    """Small pieces, so a client has to reassemble a stream (and ``[12]`` can be split)."""
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class FakeOpenAI:
    def __init__(self, replies: Iterable[Reply] = (),
                 default: Reply | Callable[[dict], Reply] | None = None, model: str = "fake-model",
                 formats: bool | None = None) -> None:
        self.replies = list(replies)
        self.formats = formats
        self.default = default or Reply("OK")
        self.model = model
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()  # wakes delayed replies
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def _next_reply(self, body: dict) -> Reply:
        with self._lock:
            if self.replies:
                return self.replies.pop(0)
        return self.default(body) if callable(self.default) else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet: tests capture output
                pass

            def _headers(self) -> dict[str, str]:
                return {k.lower(): v for k, v in self.headers.items()}

            def _json(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                server.requests.append(Request(self.path, self._headers()))
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                server.requests.append(Request(self.path, self._headers(), body))
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                    return
                if body.get("response_format") is not None and server.formats is False:
                    self._json(400, {"error": {"message": "response_format is not supported",
                                               "type": "invalid_request_error", "code": 400}})
                    return
                reply = server._next_reply(body)
                if reply.delay and reply.stall_after is None and server._stop.wait(reply.delay):
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up
                    self._answer(reply, body)

            def _answer(self, reply: Reply, body: dict) -> None:
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply.body is not None:
                    self.send_response(200)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    return
                if reply.status >= 400:
                    self._json(reply.status, {"error": {"message": reply.text or "scripted failure",
                                                        "type": "server_error", "code": reply.status}})
                    return
                ident = f"chatcmpl-{len(server.requests)}"
                created = int(time.time())
                model = body.get("model", server.model)
                if not body.get("stream"):
                    self._json(200, {
                        "id": ident, "object": "chat.completion", "created": created, "model": model,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": reply.text}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

                def event(delta: dict, finish: str | None = None) -> None:
                    chunk = {"id": ident, "object": "chat.completion.chunk", "created": created,
                             "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()

                if reply.events is not None:
                    for payload in reply.events:
                        data = payload if isinstance(payload, str) else json.dumps(payload)
                        self.wfile.write(f"data: {data}\n\n".encode())
                    self.wfile.flush()
                    return
                event({"role": "assistant", "content": ""})
                while reply.endless and not server._stop.wait(0.002):
                    event({"content": reply.text or "more "})
                for i, piece in enumerate(reply.chunks if reply.chunks is not None else split_text(reply.text)):
                    if i == reply.stall_after and server._stop.wait(reply.delay):
                        return
                    event({"content": piece})
                event({}, finish="stop")
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        return Handler


def closed_port() -> int:
    """A loopback port nothing listens on (for "connection refused")."""
    return free_port()
