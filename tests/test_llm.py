"""LLM transport through the real openai client against a real local HTTP server (tests/fake_openai.py).

Every way an endpoint can fail becomes one safe line (LLMFailure), never the key or the server's
text; with no model configured nothing is sent at all.
"""

from __future__ import annotations

import time

import pytest

from rag.answer.llm.client import DEFAULT_BASE_URL, LLMFailure, _client, stream_chat
from rag.settings import LLMSettings, Settings
from tests.fake_openai import FakeOpenAI, Reply, closed_port

KEY = "sk-test-SECRET-4f9a1c"
MESSAGES = [{"role": "user", "content": "hi"}]


def llm_settings(base_url: str | None, model: str | None = "fake-model", **kw: object) -> LLMSettings:
    return Settings().updated({"llm.base_url": base_url, "llm.model": model, "llm.api_key": KEY,
                               **{f"llm.{k}": v for k, v in kw.items()}}).llm


def chat(server: FakeOpenAI, **kw: object) -> str:
    return "".join(stream_chat(MESSAGES, llm_settings(server.base_url, **kw), max_tokens=50))


def test_streams_text_with_the_key_to_the_server_only() -> None:
    with FakeOpenAI([Reply("Hello there [1].")]) as server:
        assert chat(server) == "Hello there [1]."
    request = server.requests[0]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["stream"] is True and request.body["model"] == "fake-model"
    assert request.body["max_tokens"] == 50 and len(server.requests) == 1  # no retries


def test_no_model_configured_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI([Reply("should never be asked")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # even an endpoint in the environment
        for llm in (llm_settings(server.base_url, model=None), llm_settings(None, model=None)):
            with pytest.raises(LLMFailure, match="no LLM model is configured"):
                list(stream_chat(MESSAGES, llm, max_tokens=10))
    assert server.requests == []


def test_endpoint_is_the_configured_one_never_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    client = _client(llm_settings(None, model="gpt-x").model_copy(update={"api_key": None}))
    assert str(client.base_url).rstrip("/") == DEFAULT_BASE_URL  # the user's explicit choice: a model, no URL
    assert client.api_key == "not-needed"
    assert str(_client(llm_settings("http://127.0.0.1:8/v1")).base_url).rstrip("/") == "http://127.0.0.1:8/v1"


FAULTS = {  # reply → what the one line must say
    "401": (Reply(f"Incorrect API key {KEY}", status=401), "rejected the API key (HTTP 401)"),
    "403": (Reply("forbidden", status=403), "HTTP 403"),
    "404": (Reply("no such model", status=404), "check the model name"),
    "429": (Reply("slow down", status=429), "rate-limiting"),
    "500": (Reply("boom " + KEY, status=500), "failed (HTTP 500)"),
    "503": (Reply("unavailable", status=503), "failed (HTTP 503)"),
    "timeout": (Reply("late", delay=3), "timed out after 0.5 s"),
    "drop": (Reply(drop=True), "unreachable"),
    "stall": (Reply("partial answer here", stall_after=2, delay=3), "timed out"),
    "html": (Reply(body=b"<html><body>Login " + KEY.encode() + b"</body></html>", content_type="text/html"),
             "no completion stream"),
    "plain json": (Reply(body=b'{"choices": [{"message": {"content": "hi"}}]}', content_type="application/json"),
                   "no completion stream"),
    "choices null": (Reply(events=[{"id": "x", "choices": None}, "[DONE]"]), "no completion stream"),
    "choices string": (Reply(events=[{"choices": "abc"}, "[DONE]"]), "no completion stream"),
    "data number": (Reply(events=["123", "[DONE]"]), "no completion stream"),
    "content int": (Reply(events=[{"choices": [{"delta": {"content": 5}}]}, "[DONE]"]), "empty answer"),
    "content list": (Reply(events=[{"choices": [{"delta": {"content": ["a"]}}]}, "[DONE]"]), "empty answer"),
    "content dict": (Reply(events=[{"choices": [{"delta": {"content": {"a": 1}}}]}, "[DONE]"]), "empty answer"),
    "delta string": (Reply(events=[{"choices": [{"delta": "abc"}]}, "[DONE]"]), "empty answer"),
    "empty choices": (Reply(events=[{"choices": []}, "[DONE]"]), "empty answer"),
    "bad json": (Reply(events=["{not json " + KEY, "[DONE]"]), "unusable reply"),
    "error event": (Reply(events=[{"error": {"message": "internal " + KEY}}]), "unusable reply"),
    "not utf-8": (Reply(body=b'data: {"choices":[{"delta":{"content":"\xff\xfe"}}]}\n\n'), "unusable reply"),
}


@pytest.mark.parametrize("kind", FAULTS)
def test_each_failure_is_one_safe_line(kind: str) -> None:
    reply, expected = FAULTS[kind]
    with FakeOpenAI([reply]) as server, pytest.raises(LLMFailure) as caught:
        chat(server, timeout=0.5)
    message = str(caught.value)
    assert expected in message and message.endswith("answering from the notes instead (extractive)")
    assert "\n" not in message and KEY not in message and "boom" not in message and "internal" not in message
    assert caught.value.__cause__ is None  # no chained server error
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_unreachable_endpoint_names_it_without_secrets() -> None:
    url = f"http://user:{KEY}@127.0.0.1:{closed_port()}/v1?key={KEY}"
    with pytest.raises(LLMFailure) as caught:
        list(stream_chat(MESSAGES, llm_settings(url), max_tokens=10))
    assert "unreachable at http://127.0.0.1:" in str(caught.value) and KEY not in str(caught.value)


def test_non_string_content_among_text_is_skipped() -> None:
    events = [{"choices": [{"delta": {"content": "A"}}]}, {"choices": [{"delta": {"content": 7}}]},
              {"choices": None}, {"choices": [{"delta": {"content": ["x"]}}]},
              {"choices": [{"delta": {"content": "B"}}]}, "[DONE]"]
    with FakeOpenAI([Reply(events=events)]) as server:
        assert chat(server) == "AB"


def test_a_never_ending_stream_stops_at_the_deadline() -> None:
    with FakeOpenAI([Reply("more and more ", endless=True)]) as server:
        start = time.monotonic()
        received: list[str] = []
        with pytest.raises(LLMFailure, match=r"took longer than 1 s"):
            received.extend(stream_chat(MESSAGES, llm_settings(server.base_url, deadline=1.0), max_tokens=10))
        assert time.monotonic() - start < 5
    assert received  # it was streaming all along: the per-read timeout alone would never fire
