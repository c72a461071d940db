"""Which model answers (rag.answer.llm.model): remote as configured, local started on demand, bad ones in one line.

Fast: no model is loaded here (tests/test_local_answers.py serves a real one).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.answer.llm.client import list_models
from rag.answer.llm.local import LocalModelError
from rag.answer.llm.model import AnswerModel
from rag.app.web import MODE_LLM, NotesApp
from rag.contract import AskRequest
from rag.net import free_port
from rag.service import Notes
from rag.settings import Settings
from tests.conftest import RunRag
from tests.fake_openai import FakeOpenAI, Reply


def test_a_remote_model_is_used_as_configured_and_lists_what_the_endpoint_offers() -> None:
    with FakeOpenAI() as server:
        settings = Settings().updated({"llm.model": server.model, "llm.base_url": server.base_url})
        model = AnswerModel(settings)
        assert model.answer_settings() is settings and not model.local and model.ready and model.label is None
        assert model.answer_settings("other-model").llm.model == "other-model"
        assert model.source_budget == settings.answer.source_token_budget
        assert model.models() == [server.model]
    assert [r.path for r in server.requests] == ["/v1/models"]


def test_no_model_configured_lists_nothing_and_asks_nothing() -> None:
    with FakeOpenAI() as server:
        settings = Settings().updated({"llm.base_url": server.base_url})
        assert AnswerModel(settings).models() == []
        assert list_models(settings.llm, 1.0) == []
    assert server.requests == []


def test_an_endpoint_that_cannot_list_its_models_still_offers_the_configured_one() -> None:
    settings = Settings().updated({"llm.model": "m", "llm.base_url": f"http://127.0.0.1:{free_port()}/v1"})
    assert AnswerModel(settings).models() == ["m"]


def test_a_local_model_is_described_before_it_is_started(tmp_path: Path) -> None:
    settings = Settings().updated({"llm.model": f"gguf:{tmp_path}/q.gguf", "llm.threads": 2})
    model = AnswerModel(settings)
    assert model.local and not model.ready
    assert model.label == "local: q.gguf, 2 threads"
    assert model.source_budget == settings.answer.local_source_token_budget < settings.answer.source_token_budget
    small = AnswerModel(settings.updated({"llm.context": 1024, "answer.max_answer_tokens": 48}))
    assert small.source_budget == 488  # the prompt must fit the context, in the model's own tokens
    assert model.models() == ["q.gguf"]  # itself, without starting anything
    model.close()  # nothing started: nothing to stop, no error


@pytest.fixture
def bad_local(app_indexed: Settings, tmp_path: Path) -> Settings:
    (tmp_path / "notes.gguf").write_text("# not a model\n")
    return app_indexed.updated({"llm.model": f"gguf:{tmp_path}/notes.gguf"})


def test_a_bad_model_file_is_one_line_in_the_cli(bad_local: Settings, run_rag: RunRag) -> None:
    done = run_rag("ask", "--json", "--llm-model", bad_local.llm.model, "Quokka attention", settings=bad_local)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("rag: not a GGUF model file") and done.stderr.count("\n") == 1


def test_a_missing_model_file_is_a_warning_in_the_app(bad_local: Settings) -> None:
    settings = bad_local.updated({"llm.model": "gguf:/nonexistent/model.gguf"})
    with Notes(settings) as notes:
        app = NotesApp(notes)
        turns = list(app.respond("Quokka attention", [], 3, MODE_LLM, None, None, None))
        assert turns[-1][1][-1]["content"] == "⚠️ model file not found: /nonexistent/model.gguf"
        assert '"error": "model file not found' in app.ask("Quokka attention")
        with pytest.raises(LocalModelError):
            notes.ask(AskRequest(question="Quokka attention"))


def test_the_model_chosen_in_the_app_is_the_one_asked(app_indexed: Settings) -> None:
    with FakeOpenAI(default=Reply("Quokka-Attention cuts memory by 37% [1].")) as server:
        settings = app_indexed.updated({"llm.model": server.model, "llm.base_url": server.base_url})
        app = NotesApp(Notes(settings))
        assert app.model_choices() == [server.model]
        turns = list(app.respond("Quokka attention memory", [], 3, MODE_LLM, None, None, None, "other-model"))
    assert "[1]" in turns[-1][1][-1]["content"]
    assert [r.body.get("model") for r in server.requests if r.path.endswith("/chat/completions")] == ["other-model"]
