"""Fault battery, app API and load: the launched Gradio app through gradio_client and plain HTTP.
Bad inputs to /ask and /chat come back as one-line messages; with no model configured nothing
reaches the (listening) endpoint; 20 clients asking during a rebuild all get answers; with
RAG_AUTH every API route needs the login. Slow tier: real servers on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rag.app.web import MODE_EXTRACTIVE, MODE_LLM, NotesApp, build_app
from rag.build.builder import build_index
from rag.embed.models import Models
from rag.service import Notes
from rag.settings import Settings
from rag.store import open_store
from tests.battery import assert_citations_hold
from tests.conftest import QUOKKA, serving, settings_for
from tests.fake_openai import FakeOpenAI, Reply

pytestmark = pytest.mark.slow
KEY = "sk-APP-BATTERY-91d2"
QUESTION = "Quokka-Attention 把显存降低了多少?"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[FakeOpenAI]:
    """Listening at OPENAI_BASE_URL while no model is configured: it must receive nothing."""
    with FakeOpenAI(default=Reply("leaked [1]")) as fake:
        yield fake
    assert fake.requests == [], [r.path for r in fake.requests]


@pytest.fixture(scope="module")
def app_settings(tmp_path_factory: pytest.TempPathFactory, models: Models, endpoint: FakeOpenAI) -> Settings:
    root = tmp_path_factory.mktemp("app")
    (root / "corpus").mkdir()
    (root / "corpus" / "quokka.md").write_text(QUOKKA, encoding="utf-8")
    for i in range(30):
        (root / "corpus" / f"n{i:02d}.md").write_text(f"# N{i}\n\n## Paper {i}\n\nQuokka trick {i}.\n",
                                                      encoding="utf-8")
    settings = settings_for(root / "corpus", root / "index", **{"llm.base_url": endpoint.base_url,
                                                                "llm.api_key": KEY})
    build_index(settings.index, open_store(settings), models)
    return settings


@pytest.fixture(scope="module")
def url(app_settings: Settings, models: Models) -> Iterator[str]:
    with serving(app_settings, models) as address:
        yield address


@pytest.fixture(scope="module")
def client(url: str):  # type: ignore[no-untyped-def]
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


BAD_ASK = {
    "empty": (("", 6, None), "the question is empty"),
    "spaces": (("  \n\t ", 6, None), "the question is empty"),
    "null": ((None, 6, None), "the question must be text"),
    "NUL": (("\x00\x00", 6, True), "the question is empty"),
    "200 KB": (("长" * 200_000, 6, True), "the limit is 2000"),
    "k zero": ((QUESTION, 0, None), "k must be a whole number"),
    "k negative": ((QUESTION, -1, None), "k must be a whole number"),
    "k huge": ((QUESTION, 10**9, None), "k must be a whole number"),
    "k text": ((QUESTION, "six", None), "k must be a whole number"),
    "k float": ((QUESTION, 2.5, None), "k must be a whole number"),
    "question a list": ((["a", "b"], 6, None), "the question must be text"),
    "question a dict": (({"q": 1}, 6, None), "the question must be text"),
}


@pytest.mark.parametrize("name", BAD_ASK)
def test_bad_ask_is_a_one_line_error(name: str, client) -> None:  # type: ignore[no-untyped-def]
    args, message = BAD_ASK[name]
    reply = json.loads(client.predict(*args, api_name="/ask"))
    assert list(reply) == ["error"] and message in reply["error"] and "\n" not in reply["error"]


@pytest.mark.parametrize("use_llm", [True, None, False, "yes"])
def test_ask_forcing_llm_mode_without_a_model_sends_nothing(use_llm: object, client) -> None:  # type: ignore[no-untyped-def]
    """Issue 16 bug 2: ``Client(url).predict(question, 6, True, api_name='/ask')`` sent the notes and the key."""
    answer = json.loads(client.predict(QUESTION, 6, use_llm, api_name="/ask"))
    assert answer["mode"] == "extractive" and KEY not in json.dumps(answer)
    assert_citations_hold(answer)


BAD_CHAT = {
    "empty": ("", 6, MODE_LLM, "All notes", "", ""),
    "200 KB": ("x" * 200_000, 6, MODE_EXTRACTIVE, "All notes", "", ""),
    "bad since": (QUESTION, 6, MODE_EXTRACTIVE, "All notes", "yesterday", ""),
    "bad until": (QUESTION, 6, MODE_EXTRACTIVE, "All notes", "", "2026-02-30"),
    "glob": (QUESTION, 6, MODE_EXTRACTIVE, "[", "", ""),
    "LLM without a model": (QUESTION, 6, MODE_LLM, "All notes", "", ""),
}


@pytest.mark.parametrize("name", BAD_CHAT)
def test_clumsy_chat_gets_a_message_not_an_error(name: str, client) -> None:  # type: ignore[no-untyped-def]
    question, k, mode, file, since, until = BAD_CHAT[name]
    textbox, messages, _ = client.predict(question, [], k, mode, file, since, until, api_name="/chat")
    assert textbox == ""
    if not question:
        assert messages == []
        return
    reply = messages[-1]["content"]
    text = reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)
    assert "Something went wrong" not in text and "Traceback" not in text
    if name.startswith("bad") or name == "200 KB":
        assert "⚠️" in text


MALFORMED_CHAT = {
    "chat not a list": ((QUESTION, "not a chat", 6, MODE_LLM), "the chat must be a list of messages"),
    "message without content": ((QUESTION, [{"role": "user"}], 6, MODE_LLM), "the chat must be a list of messages"),
    "k null": ((QUESTION, [], None, MODE_LLM), "k must be a whole number"),
    "k text": ((QUESTION, [], "six", MODE_EXTRACTIVE), "k must be a whole number"),
    "unknown mode": ((QUESTION, [], 6, "Turbo"), "the mode must be 'LLM' or 'Extractive'"),
    "question a list": ((["a", "b"], [], 6, MODE_EXTRACTIVE), "the question must be text"),
    "date a number": ((QUESTION, [], 6, MODE_EXTRACTIVE, None, 20260207), "dates, model and tag must be text"),
}


@pytest.mark.parametrize("name", MALFORMED_CHAT)
def test_a_malformed_chat_payload_is_a_one_line_error(name: str, client, capfd) -> None:  # type: ignore[no-untyped-def]
    """What Gradio's own components used to reject with a server traceback and an empty error."""
    from gradio_client.exceptions import AppError

    args, message = MALFORMED_CHAT[name]
    with pytest.raises(AppError) as err:
        client.predict(*args, api_name="/chat")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "Traceback" not in capfd.readouterr().err
    assert json.loads(client.predict(QUESTION, 3, None, api_name="/ask"))["citations"]  # still serving


def test_twenty_clients_during_a_rebuild(url: str, app_settings: Settings) -> None:
    from gradio_client import Client

    corpus = app_settings.index.corpus
    for i in range(30):  # something to rebuild
        (corpus / f"n{i:02d}.md").write_text(f"# N{i}\n\n## Paper {i} v2\n\nQuokka trick {i}, revised.\n",
                                             encoding="utf-8")
    errors: list[str] = []
    rebuilt = threading.Event()

    def rebuild() -> None:
        Client(url, verbose=False).predict(api_name="/rebuild")
        rebuilt.set()

    def ask(i: int) -> dict:
        return json.loads(Client(url, verbose=False, download_files=False).predict(
            f"Quokka trick {i % 30}", 3, None, api_name="/ask"))

    builder = threading.Thread(target=rebuild)
    builder.start()
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(ask, range(20)))
    builder.join(120)
    assert rebuilt.is_set()
    for answer in answers:
        if "error" in answer or not answer["citations"]:
            errors.append(str(answer)[:200])
        else:
            assert_citations_hold(answer)
    assert errors == []


ROUTES = [("GET", "/config"), ("GET", "/gradio_api/info"), ("POST", "/gradio_api/call/ask"),
          ("POST", "/gradio_api/call/chat"), ("POST", "/gradio_api/call/rebuild"), ("POST", "/gradio_api/queue/join"),
          ("GET", "/gradio_api/queue/data?session_hash=x"), ("POST", "/gradio_api/upload"),
          ("GET", "/gradio_api/file=/etc/passwd"), ("POST", "/gradio_api/run/ask"), ("POST", "/gradio_api/api/ask"),
          ("GET", "/gradio_api/call/ask/x")]


@pytest.fixture(scope="module")
def guarded(app_settings: Settings, models: Models) -> Iterator[str]:
    with serving(app_settings.updated({"serve.auth": "ana:s3cret"}), models) as address:
        yield address.rstrip("/")


@pytest.mark.parametrize("method, route", ROUTES)
def test_every_api_route_needs_the_login(method: str, route: str, guarded: str) -> None:
    with httpx.Client(base_url=guarded, timeout=10) as http:
        assert http.request(method, route, json={"data": [QUESTION, 6, True]}).status_code in (401, 403)
        assert http.post("/login", data={"username": "ana", "password": "wrong"}).status_code == 400
        assert http.request(method, route, json={"data": [QUESTION, 6, True]}).status_code in (401, 403)


def test_the_login_opens_the_api(guarded: str) -> None:
    from gradio_client import Client

    answer = json.loads(Client(guarded, auth=("ana", "s3cret"), verbose=False).predict(QUESTION, 3, True,
                                                                                       api_name="/ask"))
    assert answer["mode"] == "extractive" and answer["citations"]


def test_chat_bubbles_keep_html_sanitised(app_settings: Settings, models: Models) -> None:
    demo = build_app(NotesApp(Notes(app_settings, models)))
    chatbots = [c for c in demo.config["components"] if c.get("type") == "chatbot"]
    assert chatbots and all(c["props"]["sanitize_html"] is True for c in chatbots)



def test_login_page_lists_no_note_names(guarded: str, app_settings: Settings) -> None:
    """Issue 25 bug 1: with RAG_AUTH, `/` embedded the API info, whose note-file choices named every
    note (`secret-diagnosis-2026.md`) before any login. Nothing about the notes shows until then."""
    with httpx.Client(base_url=guarded, timeout=10) as http:
        page = http.get("/").text
        for secret in ("quokka.md", "n00.md", str(app_settings.index.corpus), "Notes:", "Quokka"):
            assert secret not in page, secret
        assert http.post("/login", data={"username": "ana", "password": "s3cret"}).status_code == 200
        assert http.get("/config").status_code == 200  # the page loads, and fills the notes in, after the login


@pytest.mark.parametrize("api, data, message", [
    ("ask", [], "/ask takes 1 to 3 values (question, k, use_llm); got 0"),
    ("chat", [], "/chat takes 1 to 9 values"),
])
def test_api_calls_with_too_few_values_are_one_line(api: str, data: list, message: str, url: str, capfd) -> None:  # type: ignore[no-untyped-def]
    """Issue 25 bug 7: /ask and /chat with too few data items gave the client an empty error and the
    server log a traceback; now the missing trailing values take their defaults, a missing question is one line."""
    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as http:
        for payload, expected in ((data, message), ([QUESTION], "Quokka")):
            event = http.post(f"/gradio_api/call/{api}", json={"data": payload}).json()["event_id"]
            body = http.get(f"/gradio_api/call/{api}/{event}").text
            assert expected in body, body[:500]
    assert "Traceback" not in capfd.readouterr().err
