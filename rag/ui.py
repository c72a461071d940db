"""The Gradio app: a chat that streams cited answers, the cited entries beside it, and the index.

Everything the page shows is rendered by plain functions here (cards, highlighting, status text,
upload checks) so it is tested without a browser; the Gradio wiring in :func:`build_app` only
connects them. The app reads the index through :class:`rag.index.IndexHandle`, so a rebuild (from
the page or from ``rag index``) is picked up by the next question without a restart.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
import threading
import traceback
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import lexical
from .answer import Answer, Citation, iter_answer
from .config import Config
from .corpus import NoteError, decode_note
from .index import BuildReport, Index, IndexHandle, IndexUnavailable, Progress, build_index, current_generation
from .notes import NOTE_SUFFIXES
from .retrieve import Filters, Retriever

if TYPE_CHECKING:
    import gradio as gr

ALL_NOTES = "All notes"
MODE_LLM = "LLM"
MODE_EXTRACTIVE = "Extractive"
#: Longer entries are cut in the preview; the card still names file and lines of the whole entry.
PREVIEW_CHARS = 12_000
#: Separates an answer from its compact source list in the chat, so history can drop the list.
SOURCES_MARK = "\n\n<small>📎 Sources:"
EXAMPLES = [
    "哪篇工作把 MoE 专家拆成原子专家?",
    "Which paper cut KV-cache memory by 80%?",
    "有哪些用稀疏自动编码器分析音频模型的工作？",
    "What is Metis-HOME?",
]
CSS = """
#rag-sources { max-height: 78vh; overflow-y: auto; }
.rag-empty { color: var(--body-text-color-subdued); padding: 1.5em 0.5em; }
.rag-card { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 10px 12px;
            margin: 0 0 10px 0; background: var(--background-fill-secondary); }
.rag-card-head { font-weight: 600; line-height: 1.35; }
.rag-n { display: inline-block; min-width: 2.2em; color: var(--color-accent); font-weight: 700; }
.rag-meta { font-size: 0.85em; color: var(--body-text-color-subdued); margin: 4px 0; }
.rag-meta code { font-size: 0.95em; }
.rag-snippet { font-size: 0.92em; margin: 6px 0; }
.rag-card mark { background: #fde68a; color: #1f2937; padding: 0 1px; border-radius: 2px; }
.rag-preview summary { cursor: pointer; font-size: 0.88em; color: var(--color-accent); }
.rag-preview pre { white-space: pre-wrap; word-break: break-word; max-height: 420px; overflow-y: auto;
                   font-size: 0.85em; background: var(--background-fill-primary); padding: 8px;
                   border-radius: 6px; }
"""


# ---------------------------------------------------------------------------- rendering

def query_terms(question: str) -> list[str]:
    """Words of the question worth highlighting, longest first (so "kv-cache" wins over "kv")."""
    return sorted({t for t in lexical.tokenize(question) if len(t) > 1}, key=lambda t: (-len(t), t))


def highlight(text: str, terms: Sequence[str]) -> str:
    """``text`` as HTML-escaped markup with every term wrapped in ``<mark>``.

    Latin terms match whole words only ("moe" must not light up inside "amoeba"); Chinese has no
    word boundaries, so CJK terms match anywhere.
    """
    if not terms:
        return html.escape(text)
    parts = [re.escape(t) if not t.isascii() else rf"(?<![a-z0-9]){re.escape(t)}(?![a-z0-9])" for t in terms]
    pattern = re.compile("|".join(parts), re.IGNORECASE)
    out: list[str] = []
    pos = 0
    for m in pattern.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        out.append(f"<mark>{html.escape(m.group())}</mark>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out).replace("</mark><mark>", "")  # 原子 + 专家 → one mark


def safe_url(url: str | None) -> str | None:
    """Only http(s) links become clickable; a ``javascript:`` URL in a note stays text."""
    if url and urlsplit(url).scheme.lower() in ("http", "https"):
        return url
    return None


def source_card(citation: Citation, terms: Sequence[str]) -> str:
    """One cited entry: title, file:lines, date, link, highlighted snippet, and the whole entry."""
    hit = citation.hit
    entry = hit.entry
    link = safe_url(entry.url)
    title = html.escape(entry.title or entry.file)
    head = f'<a href="{html.escape(link)}" target="_blank" rel="noopener noreferrer">{title}</a>' if link else title
    meta = [f"<code>{html.escape(entry.file)}:{entry.line_start}–{entry.line_end}</code>"]
    if entry.date:
        meta.append(html.escape(entry.date))
    if link:
        meta.append(f'<a href="{html.escape(link)}" target="_blank" rel="noopener noreferrer">'
                    f"{html.escape(urlsplit(link).netloc)} ↗</a>")
    text = entry.text
    cut = len(text) > PREVIEW_CHARS
    body = highlight(text[:PREVIEW_CHARS], terms) + ("\n… (cut here; the whole entry is in the file)" if cut else "")
    lines = entry.line_end - entry.line_start + 1
    return (f'<div class="rag-card" id="rag-src-{citation.n}">'
            f'<div class="rag-card-head"><span class="rag-n">[{citation.n}]</span>{head}</div>'
            f'<div class="rag-meta">{" · ".join(meta)}</div>'
            f'<p class="rag-snippet">{highlight(hit.snippet, terms)}</p>'
            f'<details class="rag-preview"><summary>Show the whole entry ({lines} lines)</summary>'
            f"<pre>{body}</pre></details></div>")


def render_sources(citations: Sequence[Citation], question: str) -> str:
    """The source panel: a card per citation, or a hint of what will appear there."""
    if not citations:
        return '<div class="rag-empty">The entries an answer cites appear here, with their text.</div>'
    terms = query_terms(question)
    return "".join(source_card(c, terms) for c in citations)


def sources_footer(citations: Sequence[Citation]) -> str:
    """A compact list under an answer in the chat, so older answers keep their [n] meaning."""
    if not citations:
        return ""
    items = " · ".join(f"[{c.n}] {html.escape(c.hit.entry.file)}:{c.hit.entry.line_start}" for c in citations)
    return f"{SOURCES_MARK} {items}</small>"


def format_answer(answer: Answer) -> str:
    """The chat message for a finished answer: text, the notice if any, the sources line."""
    text = answer.text
    if answer.notice:
        text += f"\n\n> ⚠️ {answer.notice}"
    return text + sources_footer(answer.citations)


def message_text(content: Any) -> str:
    """Plain text of a chat message, whatever shape Gradio hands it in (str, parts, dict)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, list):
        return "".join(message_text(part) for part in content)
    return ""


def chat_history(messages: Sequence[dict] | None) -> list[dict]:
    """The conversation as the answer layer wants it: role + plain text, no source footers."""
    out = []
    for m in messages or []:
        text = message_text(m.get("content")).split(SOURCES_MARK)[0].strip()
        if m.get("role") in ("user", "assistant") and text:
            out.append({"role": m["role"], "content": text})
    return out


def model_text(config: Config) -> str:
    """Which model answers, and where; never the key."""
    if not config.llm.enabled:
        return ("**Answer model:** none configured, answers are extractive (quotes from the notes). "
                "Set `RAG_LLM_MODEL` and `OPENAI_BASE_URL` to use an LLM.")
    return f"**Answer model:** `{config.llm.model}` at `{config.llm.public_endpoint}`"


def index_status(index: Index | None, problem: str | None = None) -> str:
    """The Index tab: counts, embedders, last build, skipped files with reasons."""
    if index is None:
        return f"### No index yet\n{problem or ''}\n\nPress **Rebuild index** to build it from the notes folder."
    m = index.manifest
    counts = m["counts"]
    embedders = " + ".join(["BM25", *(f"`{e}`" for e in m["settings"]["embedders"])])
    built = str(m.get("built_at", "unknown")).replace("T", " ")
    lines = [
        f"- **Notes:** {counts['notes']} · **Entries:** {counts['entries']} · **Chunks:** {counts['chunks']}",
        f"- **Retrievers:** {embedders}",
        f"- **Last build:** {built} (generation `{index.generation}`)",
        f"- **Corpus:** `{m.get('corpus', '?')}`",
    ]
    skipped = m.get("skipped") or []
    if skipped:
        lines.append(f"\n**Skipped files ({len(skipped)}):**\n")
        lines.extend(f"- `{s['file']}`: {s['reason']}" for s in skipped)
    return "\n".join(lines)


def report_text(report: BuildReport) -> str:
    """The outcome of a build, one line plus the files it skipped."""
    lines = [f"✅ {report.summary()}"]
    lines.extend(f"- skipped `{s.file}`: {s.reason}" for s in report.skipped)
    return "\n".join(lines)


def parse_filters(file: str | None, since: str | None, until: str | None) -> Filters:
    """Filters from the settings fields; a bad date is a ValueError with the message to show."""
    dates = []
    for label, value in (("From", since), ("To", until)):
        value = (value or "").strip()
        if value:
            try:
                value = date.fromisoformat(value).isoformat()
            except ValueError:
                raise ValueError(f"{label} date {value!r} is not a date like 2026-02-07") from None
        dates.append(value or None)
    file = (file or "").strip()
    return Filters(file_glob=None if file in ("", ALL_NOTES) else file, since=dates[0], until=dates[1])


# ---------------------------------------------------------------------------- uploads

class UploadError(ValueError):
    """An uploaded file that is not added; the message is shown as is."""


def safe_note_name(name: str) -> str:
    """A plain file name for the corpus folder: no folders, no dot-files, a note suffix.

    Browsers may send a full path (``C:\\Users\\…``) or ``../`` tricks; only the last part
    survives, and any character outside letters, digits, ``._-`` and spaces becomes ``_``.
    """
    base = unicodedata.normalize("NFC", re.split(r"[/\\]", name)[-1]).strip()
    base = re.sub(r"[^\w.\- ]", "_", base).lstrip(". ")
    if len(base) > 120:
        stem, dot, suffix = base.rpartition(".")
        base = stem[: 119 - len(suffix)] + dot + suffix
    if not base.lower().endswith((".md", ".txt")):
        raise UploadError(f"{name}: only .md and .txt notes can be added")
    if base.lower() in NOTE_SUFFIXES or not base.rpartition(".")[0].strip("._- "):
        raise UploadError(f"{name}: the file name has no usable characters")
    return base


def add_note(corpus: Path, name: str, data: bytes, max_bytes: int) -> str:
    """Check an uploaded note and write it into the corpus as UTF-8; returns its file name.

    The checks are the indexer's own (size cap, text decoding), so a note accepted here is not
    skipped later. The text goes to a hidden temporary file first and is then hard-linked under
    its name, so a watcher never sees half a note and an existing note is never overwritten.
    """
    safe = safe_note_name(name)
    if len(data) > max_bytes:
        raise UploadError(f"{safe}: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB cap")
    try:
        text = decode_note(data)
    except NoteError as exc:
        raise UploadError(f"{safe}: {exc}") from None
    root = corpus.resolve()
    target = root / safe
    if target.parent != root:
        raise UploadError(f"{name}: not a plain file name")
    tmp = root / f".upload-{os.getpid()}-{threading.get_ident()}.tmp"
    tmp.write_text(text, encoding="utf-8", newline="")
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise UploadError(f"{safe}: a note with this name is already in the corpus; rename the file") from None
    finally:
        tmp.unlink()
    return safe


# ---------------------------------------------------------------------------- the app's state

class NotesApp:
    """What the page's events act on: the live index, a retriever per generation, builds."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.handle = IndexHandle(config.index)
        self._retriever: Retriever | None = None
        self._lock = threading.Lock()

    def retriever(self) -> Retriever:
        """The retriever of the live index generation (a new one after each rebuild)."""
        with self._lock:
            index = self.handle.get()
            if self._retriever is None or self._retriever.index is not index:
                self._retriever = Retriever(index, self.config)
            return self._retriever

    def warm_up(self) -> None:
        """Load the index and the models now, so the first question is as fast as the rest."""
        self.retriever().warm_up()

    def _index(self) -> tuple[Index | None, str | None]:
        try:
            return self.retriever().index, None
        except IndexUnavailable as exc:
            return None, str(exc)

    def status(self) -> str:
        return index_status(*self._index())

    def note_choices(self) -> list[str]:
        index, _ = self._index()
        files = sorted(index.manifest["notes"]) if index is not None else []
        return [ALL_NOTES, *files]

    def build(self, progress: Progress | None = None) -> BuildReport:
        """An incremental build; ``progress`` gets (stage, done, total) like the CLI's bar."""
        report = build_index(self.config, progress=progress)
        self.retriever()  # load the new generation now, not on the next question
        return report

    def add_files(self, paths: Sequence[str | Path]) -> tuple[list[str], list[str]]:
        """Copy uploaded files into the corpus: (names added, one problem line per file refused)."""
        added, problems = [], []
        for path in map(Path, paths):
            try:
                with open(path, "rb") as f:
                    data = f.read(self.config.max_note_bytes + 1)  # enough to tell it is too big
                added.append(add_note(self.config.corpus, path.name, data, self.config.max_note_bytes))
            except (UploadError, OSError) as exc:
                problems.append(f"- ⚠️ {exc}")
        return added, problems

    def respond(self, message: str, messages: list[dict] | None, k: int, mode: str, file: str | None,
                since: str | None, until: str | None) -> Iterator[tuple[str, list[dict], str]]:
        """Stream one chat turn: (cleared textbox, the chat, the source panel)."""
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
            filters = parse_filters(file, since, until)
        except ValueError as exc:
            yield show(f"⚠️ {exc}")
            return
        yield show("…")
        try:
            text = ""
            for part in iter_answer(question, self.retriever(), self.config, k=int(k), filters=filters,
                                    history=history or None, use_llm=mode == MODE_LLM):
                if isinstance(part, str):
                    text += part
                    yield show(text)
                else:
                    reply = format_answer(part)
                    sources = render_sources(part.citations, part.standalone_question or question)
        except IndexUnavailable as exc:
            reply = f"⚠️ {exc}\n\nOpen the **Index** tab and press **Rebuild index** to build it."
        except Exception as exc:  # the page must show a message, never die mid-stream
            traceback.print_exc(file=sys.stderr)
            reply = f"⚠️ Something went wrong ({exc.__class__.__name__}: {exc}); the details are in the server log."
        yield show(reply)

    def ask(self, question: str, k: int = 6, use_llm: bool | None = None) -> str:
        """The whole answer as ``rag ask --json`` prints it, for API clients.

        A JSON string, not a dict: Gradio would take each hit's ``path`` key for a file to serve.
        """
        answer = None
        for part in iter_answer(question, self.retriever(), self.config, k=k, use_llm=use_llm):
            answer = part
        assert isinstance(answer, Answer)
        return json.dumps(answer.to_json(), ensure_ascii=False)


# ---------------------------------------------------------------------------- Gradio wiring

def _gradio() -> Any:
    """Gradio, imported with its usage analytics off unless the user turned them on."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio

    return gradio


def build_app(config: Config, app: NotesApp | None = None) -> gr.Blocks:
    """The page. Launch it with :func:`launch` (theme and CSS go to ``launch`` in Gradio 6)."""
    gr = _gradio()
    app = app or NotesApp(config)

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

    with gr.Blocks(title="notes-rag") as demo:
        gr.Markdown("## 📚 notes-rag · ask your paper notes\nAnswers cite the note entries they come from "
                    "as [n]; the cited entries are listed on the right.")
        with gr.Tab("Ask"), gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Chat", height=520, elem_id="rag-chat",
                                     placeholder="Ask in Chinese or English; follow-up questions use the chat.")
                textbox = gr.Textbox(placeholder="Ask your notes… 例如：哪篇工作把 MoE 专家拆成原子专家?",
                                     show_label=False, submit_btn=True, elem_id="rag-question", lines=1)
                examples = gr.Examples(EXAMPLES, inputs=[textbox], label="Examples (click to ask)")
                with gr.Accordion("Settings", open=False):
                    with gr.Row():
                        k = gr.Slider(1, 12, value=6, step=1, label="Number of sources")
                        mode = gr.Radio([MODE_LLM, MODE_EXTRACTIVE], label="Answer mode",
                                        value=MODE_LLM if config.llm.enabled else MODE_EXTRACTIVE,
                                        interactive=config.llm.enabled,
                                        info=None if config.llm.enabled else "no LLM configured")
                    with gr.Row():
                        note = gr.Dropdown(app.note_choices(), value=ALL_NOTES, label="Note file",
                                           allow_custom_value=True, info="a note, or a glob such as 00*.txt")
                        since = gr.Textbox(label="From date", placeholder="YYYY-MM-DD")
                        until = gr.Textbox(label="To date", placeholder="YYYY-MM-DD")
                    gr.Markdown(model_text(config))
                clear = gr.Button("Clear chat", size="sm", variant="secondary")
            with gr.Column(scale=2):
                gr.Markdown("#### Sources")
                sources = gr.HTML(render_sources([], ""), elem_id="rag-sources")
        with gr.Tab("Index"):
            status = gr.Markdown(app.status(), elem_id="rag-status")
            with gr.Row():
                rebuild_btn = gr.Button("Rebuild index", variant="primary", elem_id="rag-rebuild")
                upload_btn = gr.UploadButton("Add notes (.md / .txt)", file_count="multiple",
                                             file_types=[".md", ".txt"], elem_id="rag-upload")
            log = gr.Markdown(elem_id="rag-log")
            gr.Markdown(f"Added notes are saved in `{config.corpus}` (UTF-8, at most "
                        f"{config.max_note_bytes / 1e6:.1f} MB each) and indexed at once; "
                        "no restart needed.")

        chat_in, chat_out = [textbox, chatbot, k, mode, note, since, until], [textbox, chatbot, sources]
        textbox.submit(app.respond, chat_in, chat_out, api_name="chat")
        examples.load_input_event.then(app.respond, chat_in, chat_out, api_name=False)
        clear.click(lambda: ([], render_sources([], "")), None, [chatbot, sources], api_name=False)
        rebuild_btn.click(rebuild, None, [log, status, note], api_name="rebuild", concurrency_id="build",
                          concurrency_limit=1)
        upload_btn.upload(upload, upload_btn, [log, status, note], api_name=False, concurrency_id="build")
        demo.load(lambda: (app.status(), gr.Dropdown(choices=app.note_choices())), None, [status, note],
                  api_name=False)
        gr.api(app.ask, api_name="ask")
    return demo


def parse_auth(raw: str | None) -> tuple[str, str] | None:
    """``RAG_AUTH=user:password`` → the login pair (the password may contain ``:``)."""
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not (sep and user and password):
        raise ValueError("RAG_AUTH must look like user:password")
    return user, password


def launch(demo: gr.Blocks, config: Config, host: str | None = None, port: int | None = None,
           **kwargs: Any) -> None:
    """Launch on 127.0.0.1 unless told otherwise, never shared, optional login from ``RAG_AUTH``."""
    gr = _gradio()
    auth = parse_auth(os.environ.get("RAG_AUTH"))
    demo.queue(default_concurrency_limit=2).launch(
        server_name=host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        server_port=port or int(os.environ.get("GRADIO_SERVER_PORT") or 7860),
        auth=auth, share=False, max_file_size=config.max_note_bytes,
        theme=gr.themes.Soft(primary_hue="indigo"), css=CSS, footer_links=["api"], **kwargs)


def _print_progress(stage: str, done: int, total: int) -> None:
    if total and done in (0, total):
        print(f"  {stage}: {done}/{total}", file=sys.stderr)


def serve(config: Config, host: str | None = None, port: int | None = None) -> None:
    """``rag serve`` and ``python app.py``: build the index if there is none, then serve the page."""
    try:
        parse_auth(os.environ.get("RAG_AUTH"))  # a typo here should stop us before any slow work
    except ValueError as exc:
        raise SystemExit(f"rag: {exc}") from None
    if current_generation(config.index) is None:
        print(f"no index in {config.index} yet: building it from {config.corpus} first …", file=sys.stderr)
        print(build_index(config, progress=_print_progress).summary(), file=sys.stderr)
    app = NotesApp(config)
    try:
        app.warm_up()
    except IndexUnavailable as exc:
        print(f"warning: {exc}; the page offers to rebuild it", file=sys.stderr)
    launch(build_app(config, app), config, host=host, port=port)


def main() -> None:
    """Entry point of ``python app.py``: the defaults and environment, like ``rag serve``."""
    try:
        serve(Config.from_env())
    except IndexUnavailable as exc:
        print(f"rag: {exc}", file=sys.stderr)
        sys.exit(2)
