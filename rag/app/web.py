"""The Gradio app: a chat that streams cited answers, the cited entries beside it, and the index.

Thin by design: what the page shows is rendered by :mod:`rag.app.render`, notes are added by
:mod:`rag.app.uploads`, and questions and rebuilds go through :class:`rag.service.Notes`, whose live
handle picks up a rebuild (from the page or from ``rag index``) without a restart.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.answer.answer import Answer, collect
from rag.answer.llm.local import LocalModelError
from rag.answer.mode import AnswerMode
from rag.build.builder import BuildReport, Progress
from rag.contract import AnswerOut, AskRequest
from rag.errors import RagError
from rag.retrieve.related import Related
from rag.retrieve.searcher import Filters
from rag.service import Notes
from rag.settings import Settings
from rag.store import IndexUnavailable, LoadedIndex

from .api import MODE_EXTRACTIVE, MODE_LLM, chat_payload_problem, page_class
from .launch import check_bind
from .render import (
    ALL_NOTES,
    ALL_TAGS,
    CSS,
    chat_history,
    example_questions,
    format_answer,
    index_status,
    model_text,
    parse_filters,
    render_sources,
    report_text,
)
from .uploads import UploadError, add_note

if TYPE_CHECKING:
    import gradio as gr

RELATED_PER_SOURCE = 3


class NotesApp:
    """What the page's events act on: the notes service, plus how to show a model."""

    def __init__(self, notes: Notes, model_label: str | None = None) -> None:
        self.notes = notes
        self.settings = notes.settings
        self.model_label = model_label or notes.model.label

    def model_choices(self) -> list[str]:
        """The models the endpoint offers, the configured one first; [] (and no request) without one."""
        return self.notes.model.models()

    def load_model(self) -> Iterator[str]:
        """Start a local model in a thread, yielding its loading lines about once a second.

        The page keeps moving while a model loads for seconds; a model that cannot be served
        raises LocalModelError (one line) once the thread has given up.
        """
        failed: list[LocalModelError] = []

        def start() -> None:
            try:
                self.notes.model.answer_settings()
            except LocalModelError as exc:
                failed.append(exc)

        loader = threading.Thread(target=start, name="load-model", daemon=True)
        loader.start()
        while loader.is_alive():
            loader.join(1.0)
            yield self.notes.model.status or "loading model…"
        if failed:
            raise failed[0]

    def warm_up(self) -> None:
        """Load the index and the models now, so the first question is as fast as the rest."""
        self.notes.searcher().warm_up()

    def _index(self) -> tuple[LoadedIndex | None, str | None]:
        try:
            return self.notes.index(), None
        except IndexUnavailable as exc:
            return None, str(exc)

    def status(self) -> str:
        index, problem = self._index()
        try:
            files = self.notes.status()
        except IndexUnavailable as exc:  # no corpus folder
            files, problem = None, problem or str(exc)
        return index_status(index, problem, files)

    def note_choices(self) -> list[str]:
        index, _ = self._index()
        return [ALL_NOTES, *(sorted(index.manifest.notes) if index is not None else [])]

    def tag_choices(self) -> list[str]:
        index, _ = self._index()
        tags = {t for e in index.entries for t in e.tags} if index is not None else set()
        return [ALL_TAGS, *sorted(tags, key=str.lower)]

    def examples(self) -> list[str]:
        """Example questions about the user's own notes (none before the first build)."""
        index, _ = self._index()
        return example_questions(index.entries) if index is not None else []

    def related(self, answer: Answer, filters: Filters) -> dict[int, list[Related]]:
        """Entries related to each cited one, within the question's filters, for the source cards
        (none when the index moved on)."""
        out: dict[int, list[Related]] = {}
        for c in answer.citations:
            try:
                out[c.n] = self.notes.related(c.hit.entry.file, c.hit.entry.line_start, RELATED_PER_SOURCE,
                                              filters)[1]
            except (LookupError, IndexUnavailable):
                continue
        return out

    def build(self, progress: Progress | None = None) -> BuildReport:
        """An incremental build; ``progress`` gets (stage, done, total) like the CLI's bar. The new
        generation is loaded at once, so the next question does not wait for it."""
        report = self.notes.build(progress=progress)
        self.notes.searcher()
        return report

    def add_files(self, paths: Sequence[str | Path]) -> tuple[list[str], list[str]]:
        """Copy uploaded files into the corpus: (names added, one problem line per file refused)."""
        added, problems = [], []
        cap = self.settings.index.max_note_bytes
        for path in map(Path, paths):
            try:
                with open(path, "rb") as f:
                    data = f.read(cap + 1)  # enough to tell it is too big
                added.append(add_note(self.settings.index.corpus, path.name, data, cap))
            except (UploadError, OSError) as exc:
                problems.append(f"- ⚠️ {exc}")
        return added, problems

    def respond(self, message: str, messages: list[dict] | None, k: int, mode: str, file: str | None,
                since: str | None, until: str | None, model: str | None = None,
                tag: str | None = None) -> Iterator[tuple[str, list[dict], str]]:
        """Stream one chat turn: (cleared textbox, the chat, the source panel).

        ``model`` is one the endpoint offers (the page's model list); a local model that is not
        loaded yet shows its loading lines in the chat first.
        """
        question = (message or "").strip()
        sources = render_sources([], "")
        if not question:
            yield "", list(messages or []), sources
            return
        history = chat_history(messages)
        turn = [*(messages or []), {"role": "user", "content": question}]

        def show(reply: str) -> tuple[str, list[dict], str]:
            return "", [*turn, {"role": "assistant", "content": reply}], sources

        try:
            filters = parse_filters(file, since, until, tag)
            if mode == MODE_LLM and not self.notes.model.ready:
                for line in self.load_model():
                    yield show(f"⏳ {line}")
            stream = self.notes.ask(AskRequest(
                question=question, k=int(k), filters=filters, history=history or None, model=model or None,
                mode=AnswerMode.LLM if mode == MODE_LLM else AnswerMode.EXTRACTIVE))
        except IndexUnavailable as exc:
            yield show(f"⚠️ {exc}\n\nOpen the **Index** tab and press **Rebuild index** to build it.")
            return
        except (ValueError, RagError) as exc:
            yield show(f"⚠️ {exc}")
            return
        yield show("…")
        text = ""
        try:
            while True:
                try:
                    text += next(stream)
                except StopIteration as done:
                    answer = done.value
                    break
                yield show(text)
            reply = format_answer(answer)
            sources = render_sources(answer.citations, answer.standalone_question or question,
                                     self.related(answer, filters))
        except IndexUnavailable as exc:
            reply = f"⚠️ {exc}\n\nOpen the **Index** tab and press **Rebuild index** to build it."
        except Exception as exc:  # the page must show a message, never die mid-stream
            traceback.print_exc(file=sys.stderr)
            reply = f"⚠️ Something went wrong ({exc.__class__.__name__}); the details are in the server log."
        yield show(reply)

    def ask(self, question: str, k: int = 6, use_llm: bool | None = None) -> str:
        """The whole answer as ``rag ask --json`` prints it, for API clients.

        A JSON string, not a dict: Gradio would take each hit's ``path`` key for a file to serve.
        Bad input is a one-line error in the JSON (``{"error": …}``), not a server traceback.
        """
        try:
            answer = collect(self.notes.ask(AskRequest(question=question, k=k, mode=AnswerMode.of(use_llm))))
        except RagError as exc:
            return json.dumps({"error": str(exc)}, ensure_ascii=False)
        return AnswerOut.of(answer).model_dump_json()


# ---------------------------------------------------------------------------- Gradio wiring

def build_app(app: NotesApp) -> gr.Blocks:
    """The page. Launch it with :func:`launch` (theme and CSS go to ``launch`` in Gradio 6)."""
    import gradio as gr

    settings = app.settings
    llm_on = settings.llm.enabled

    def rebuild(progress=gr.Progress()):  # noqa: B008 - Gradio injects the tracker by this default
        def tick(stage: str, done: int, total: int) -> None:
            progress((done, total) if total else None, desc=stage)

        try:
            log = report_text(app.build(progress=tick))
        except IndexUnavailable as exc:
            log = f"⚠️ {exc}"
        return log, app.status(), gr.Dropdown(choices=app.note_choices())

    def upload(paths: list[str] | None, progress=gr.Progress()):  # noqa: B008
        added, problems = app.add_files(paths or [])
        if not added:
            return "\n".join(problems or ["No file received."]), app.status(), gr.Dropdown(choices=app.note_choices())
        log, status, choices = rebuild(progress)
        added_line = f"Added {', '.join(f'`{a}`' for a in added)} to the corpus."
        return "\n\n".join(p for p in [added_line, "\n".join(problems), log] if p), status, choices

    def model_list() -> gr.Dropdown:
        """Once per page load, with a short timeout: the endpoint's models, the configured one first."""
        choices = app.model_choices()
        return gr.Dropdown(choices=choices, value=choices[0] if choices else None)

    with page_class()(title="notes-rag") as demo:
        gr.Markdown("## 📚 notes-rag · ask your paper notes\nAnswers cite the note entries they come from "
                    "as [n]; the cited entries are listed on the right.")
        with gr.Tab("Ask"), gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Chat", height=520, elem_id="rag-chat",
                                     placeholder="Ask in Chinese or English; follow-up questions use the chat.")
                textbox = gr.Textbox(placeholder="Ask your notes… 例如：哪篇工作把 MoE 专家拆成原子专家?",
                                     show_label=False, submit_btn=True, elem_id="rag-question", lines=1)
                questions = app.examples()
                examples = gr.Examples(questions, inputs=[textbox], label="Examples from your notes (click to ask)") \
                    if questions else None
                with gr.Accordion("Settings", open=False):
                    with gr.Row():
                        k = gr.Slider(1, 12, value=settings.answer.k, step=1, label="Number of sources")
                        mode = gr.Radio([MODE_LLM, MODE_EXTRACTIVE], label="Answer mode",
                                        value=MODE_LLM if llm_on else MODE_EXTRACTIVE,
                                        interactive=llm_on,
                                        info=None if llm_on else "no LLM configured")
                    with gr.Row():
                        # filled in on load: the page's config is shown before a login (the API info)
                        note = gr.Dropdown([ALL_NOTES], value=ALL_NOTES, label="Note file",
                                           allow_custom_value=True, info="a note, or a glob such as 00*.txt")
                        since = gr.Textbox(label="From date", placeholder="YYYY-MM-DD")
                        until = gr.Textbox(label="To date", placeholder="YYYY-MM-DD")
                    with gr.Row():
                        tag = gr.Dropdown(app.tag_choices(), value=ALL_TAGS, label="Tag", allow_custom_value=True,
                                          info="entries with this tag (front matter or #tag)")
                        llm_model = gr.Dropdown([], value=None, label="Model", visible=llm_on,
                                                allow_custom_value=True, elem_id="rag-model",
                                                info="the models the endpoint offers")
                    gr.Markdown(model_text(settings.llm, app.model_label))
                clear = gr.Button("Clear chat", size="sm", variant="secondary")
            with gr.Column(scale=2):
                gr.Markdown("#### Sources")
                sources = gr.HTML(render_sources([], ""), elem_id="rag-sources")
        with gr.Tab("Index"):
            status = gr.Markdown("", elem_id="rag-status")  # filled in on load, after any login
            with gr.Row():
                rebuild_btn = gr.Button("Rebuild index", variant="primary", elem_id="rag-rebuild")
                upload_btn = gr.UploadButton("Add notes (.md / .txt)", file_count="multiple",
                                             file_types=[".md", ".txt"], elem_id="rag-upload")
                refresh_btn = gr.Button("Refresh status", variant="secondary", elem_id="rag-refresh")
            log = gr.Markdown(elem_id="rag-log")
            gr.Markdown(f"Added notes are saved in `{settings.index.corpus}` (UTF-8, at most "
                        f"{settings.index.max_note_bytes / 1e6:.1f} MB each) and indexed at once; "
                        "no restart needed.")

        def chat(message: str, history: list[dict] | None = None, k: int = settings.answer.k,
                 mode: str = MODE_EXTRACTIVE, file: str | None = ALL_NOTES, since: str | None = None,
                 until: str | None = None, model: str | None = None,
                 tag: str | None = ALL_TAGS) -> Iterator[tuple[str, list[dict], str]]:
            """The chat for API clients: (cleared textbox, the chat, the source panel) as it streams.

            Its own endpoint rather than the page's event, whose components reject a malformed payload
            with a server traceback and an empty error; here it is one line back to the client.
            """
            if problem := chat_payload_problem(message, history, k, mode, (file, since, until, model, tag)):
                raise gr.Error(problem, print_exception=False)
            yield from app.respond(message, history, k, mode, file, since, until, model, tag)

        chat_in = [textbox, chatbot, k, mode, note, since, until, llm_model, tag]
        chat_out = [textbox, chatbot, sources]
        textbox.submit(app.respond, chat_in, chat_out, api_name=False)
        if examples is not None:
            examples.load_input_event.then(app.respond, chat_in, chat_out, api_name=False)
        clear.click(lambda: ([], render_sources([], "")), None, [chatbot, sources], api_name=False)
        rebuild_btn.click(rebuild, None, [log, status, note], api_name="rebuild", concurrency_id="build",
                          concurrency_limit=1)
        upload_btn.upload(upload, upload_btn, [log, status, note], api_name=False, concurrency_id="build")
        refresh_btn.click(app.status, None, status, api_name=False)  # during a build too: it reads, never waits
        demo.load(lambda: (app.status(), gr.Dropdown(choices=app.note_choices())), None, [status, note],
                  api_name=False)
        if llm_on:  # with no model configured, nothing may be asked of any endpoint
            demo.load(model_list, None, llm_model, api_name=False)
        gr.api(chat, api_name="chat")
        gr.api(app.ask, api_name="ask")
    return demo


def launch(demo: gr.Blocks, settings: Settings, **kwargs: Any) -> None:
    """Launch on 127.0.0.1 unless told otherwise, never shared, optional login from ``RAG_AUTH``."""
    import gradio as gr

    demo.queue(default_concurrency_limit=2).launch(
        server_name=settings.serve.host, server_port=settings.serve.port, auth=settings.serve.login,
        share=False, max_file_size=settings.index.max_note_bytes, theme=gr.themes.Soft(primary_hue="indigo"),
        css=CSS, footer_links=["api"], **kwargs)


def _print_progress(stage: str, done: int, total: int) -> None:
    if total and done in (0, total):
        print(f"  {stage}: {done}/{total}", file=sys.stderr)


def serve(settings: Settings) -> None:
    """``rag serve`` and ``python app.py``: build the index if there is none or it no longer fits
    the settings and the code (:meth:`Notes.stale`), then serve the page.
    Where it listens is checked first (LaunchError), before a build that may take minutes."""
    check_bind(settings.serve.host, settings.serve.port, settings.serve.login is not None, "the app",
               "--port or GRADIO_SERVER_PORT")
    notes = Notes(settings)
    missing = notes.store.current() is None
    if missing or (stale := notes.stale()):
        why = "no index yet: building it" if missing else f"{stale}: rebuilding it"
        print(f"{notes.store.location}: {why} from {settings.index.corpus} first …", file=sys.stderr)
        print(notes.build(progress=_print_progress).summary(), file=sys.stderr)
    app = NotesApp(notes)
    try:
        app.warm_up()
    except IndexUnavailable as exc:
        print(f"warning: {exc}; the page offers to rebuild it", file=sys.stderr)
    if notes.model.local:  # load it while the page comes up; the first answer shows the rest of the wait
        threading.Thread(target=_preload, args=(notes,), name="preload-model", daemon=True).start()
    try:
        launch(build_app(app), settings)
    finally:
        notes.close()


def _preload(notes: Notes) -> None:
    try:
        notes.model.answer_settings()
        print(f"model ready: {notes.model.label}", file=sys.stderr)
    except LocalModelError as exc:
        print(f"warning: {exc}", file=sys.stderr)
