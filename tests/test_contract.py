"""One contract for every front end: the CLI's ``--json``, the app's API and MCP emit the same
shapes (rag/contract.py), MCP declares them from the same models, the CLI's documented fields
(../shared/docs/cli.md) keep their names, types and presence, requests are checked once in the
service, and every user error is a RagError. Fast tier: in-process, ``hash`` index."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import anyio
import pytest
from mcp import Client

from rag import contract
from rag.answer.mode import AnswerMode
from rag.app.mcp_server import build_server
from rag.app.web import NotesApp
from rag.contract import AskRequest, QuestionError, SearchRequest
from rag.embed.models import Models
from rag.errors import RagError
from rag.service import Notes
from rag.settings import MAX_ANSWER_K, MAX_SEARCH_K, Settings
from tests.battery import RagMain
from tests.conftest import QUOKKA, ROOT, index_notes

NOTES = {"quokka.md": QUOKKA,
         "wombat.md": "# Log\n\n## Wombat-MoE: atomic experts\n\n- 2026-03-01\n\nWombat-MoE splits experts into "
                      "atoms, [[quokka]] style.\n"}
QUESTION = "Quokka-Attention 把显存降低了多少?"
#: The documented fields (../shared/docs/cli.md) and their JSON types: never renamed, retyped or dropped.
HIT = {"rank": int, "score": float, "file": str, "path": str, "title": str, "line_start": int, "line_end": int,
       "url": (str, type(None)), "date": (str, type(None)), "snippet": str}
ANSWER = {"question": str, "answer": str, "citations": list, "mode": str, "refused": bool}
#: What `rag related --json` printed before the contract: each field is still there.
RELATED_ENTRY = ("file", "title", "line_start", "line_end")
RELATED = ("file", "path", "title", "line_start", "line_end", "url", "date", "tags", "score", "linked")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, models: Models) -> Settings:
    return index_notes(tmp_path_factory.mktemp("contract"), NOTES, models)


@pytest.fixture
def env(indexed: Settings) -> dict[str, str]:
    return {"RAG_CORPUS": str(indexed.index.corpus), "RAG_INDEX": str(indexed.index.path), "RAG_EMBEDDERS": "hash"}


@pytest.fixture
def notes(indexed: Settings, models: Models) -> Notes:
    return Notes(indexed, models)


def cli_json(rag_main: RagMain, env: dict[str, str], *argv: str) -> dict:
    run = rag_main(*argv, "--json", env=env)
    assert run.code == 0, run.err
    return json.loads(run.out)


def has_fields(obj: dict, types: dict[str, type | tuple[type, ...]]) -> None:
    for name, kind in types.items():
        assert name in obj and isinstance(obj[name], kind), (name, obj.get(name))
        assert not (kind is int and isinstance(obj[name], bool)), name


def test_cli_json_keeps_every_documented_field_and_is_the_contracts_shape(rag_main: RagMain,
                                                                          env: dict[str, str]) -> None:
    found = cli_json(rag_main, env, "search", QUESTION, "-k", "2")
    assert list(found) == list(contract.SearchOut.model_fields)
    for hit in found["hits"]:
        has_fields(hit, HIT)
        assert list(hit) == list(contract.HitOut.model_fields)
    answer = cli_json(rag_main, env, "ask", QUESTION, "--no-llm")
    has_fields(answer, ANSWER)
    assert list(answer) == list(contract.AnswerOut.model_fields) and answer["mode"] == "extractive"
    assert answer["citations"] and all(list(c) == ["n", *contract.HitOut.model_fields] for c in answer["citations"])
    for citation in answer["citations"]:
        has_fields(citation, {"n": int, **HIT})
    related = cli_json(rag_main, env, "related", "wombat.md:3", "-k", "1")
    assert set(RELATED_ENTRY) <= set(related["entry"]) and related["related"]
    assert all(set(RELATED) <= set(r) for r in related["related"])
    assert related["related"][0]["linked"] is True and related["related"][0]["file"] == "quokka.md"


def test_the_app_and_mcp_return_what_the_cli_prints(rag_main: RagMain, env: dict[str, str], notes: Notes) -> None:
    found = cli_json(rag_main, env, "search", QUESTION, "-k", "2")
    answer = cli_json(rag_main, env, "ask", QUESTION, "--no-llm")
    related = cli_json(rag_main, env, "related", "wombat.md:3", "-k", "1")
    assert json.loads(NotesApp(notes).ask(QUESTION, use_llm=False)) == answer

    async def mcp() -> list[dict]:  # through the SDK's client, as an agent gets them
        async with Client(build_server(notes)) as client:
            calls = [("search_notes", {"query": QUESTION, "k": 2}),
                     ("ask_notes", {"question": QUESTION, "mode": "extractive"}),
                     ("related_entries", {"file": "wombat.md", "line_start": 3, "k": 1})]
            return [(await client.call_tool(name, args)).structured_content for name, args in calls]

    by_mcp = anyio.run(mcp)
    notices = [{"notice"}, {"data_notice"}, {"notice"}]
    assert [{k: v for k, v in got.items() if k not in extra} for got, extra in zip(by_mcp, notices, strict=True)] \
        == [found, answer, related]
    assert all(extra <= set(got) for got, extra in zip(by_mcp, notices, strict=True))


def test_mcp_output_schemas_are_generated_from_the_contract(notes: Notes) -> None:
    """A field added to a response model appears in the tool's declared output, with no MCP copy."""
    tools = {t.name: t for t in anyio.run(build_server(notes).list_tools)}
    expected = {"search_notes": (contract.SearchOut, {"notice"}), "ask_notes": (contract.AnswerOut, {"data_notice"}),
                "related_entries": (contract.RelatedOut, {"notice"})}
    for name, (model, extra) in expected.items():
        schema = tools[name].output_schema
        assert set(schema["properties"]) == set(model.model_fields) | extra, name
        for sub, declared in model.model_json_schema().get("$defs", {}).items():
            assert schema["$defs"][sub]["properties"] == declared["properties"], (name, sub)
    assert tools["ask_notes"].input_schema["$defs"]["AnswerMode"]["enum"] == [m.value for m in AnswerMode]


@pytest.mark.parametrize("request_, message", [
    (SearchRequest(question=QUESTION, k=MAX_SEARCH_K + 1), f"from 1 to {MAX_SEARCH_K}"),
    (SearchRequest(question=QUESTION, k=True), "whole number"),
    (SearchRequest(question=QUESTION, k="3"), "whole number"),
    (SearchRequest(question=["x"]), "must be text"),
    (AskRequest(question=QUESTION, k=MAX_ANSWER_K + 1), f"from 1 to {MAX_ANSWER_K}"),
    (AskRequest(question=" \x00 "), "empty"),
    (AskRequest(question="q" * 2001), "the limit is 2000"),
])
def test_requests_are_checked_in_the_service(notes: Notes, request_: SearchRequest, message: str) -> None:
    ask = isinstance(request_, AskRequest)
    with pytest.raises(QuestionError, match=message):
        notes.ask(request_) if ask else notes.search(request_)


def test_k_comes_from_the_settings_unless_the_request_says(indexed: Settings, models: Models) -> None:
    notes = Notes(indexed.updated({"retrieval.k": 3}), models)
    assert len(notes.index().entries) > 3
    assert len(notes.search(SearchRequest(question="quokka wombat")).hits) == 3
    assert len(notes.search(SearchRequest(question="quokka wombat", k=1)).hits) == 1


def _error_classes() -> list[tuple[str, str]]:
    """(module, class) of every exception class defined in rag/, found by reading the code."""
    found = []
    for path in sorted((ROOT / "rag").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                    getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception", "Failure", "Unavailable",
                                                                       "Rejected")) for b in node.bases):
                found.append((module, node.name))
    return found


def test_every_error_of_rag_is_a_rag_error() -> None:
    """The CLI, the app and MCP catch RagError once: an error class outside it would be a traceback."""
    classes = _error_classes()
    assert len(classes) >= 14  # the scan finds them (settings, DSN, note, index, question, …)
    outside = [f"{m}.{name}" for m, name in classes if not issubclass(getattr(importlib.import_module(m), name),
                                                                      RagError)]
    assert outside == []


def test_a_rag_error_is_one_line_and_exit_2(rag_main: RagMain, tmp_path: Path) -> None:
    run = rag_main("search", "x", env={"RAG_CORPUS": str(tmp_path), "RAG_INDEX": str(tmp_path / "none"),
                                       "RAG_EMBEDDERS": "hash"})
    assert run.code == 2 and run.err.startswith("rag: ") and run.err.count("\n") == 1 and run.out == ""
