"""What the app shows, as plain functions of typed data: source cards, highlighting, status text.

Kept apart from the Gradio wiring (:mod:`rag.app.web`) so every piece of the page is tested without a
browser. Everything from a note is HTML-escaped here; only http(s) links become clickable.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from rag.answer.answer import Answer, Citation
from rag.build.builder import BuildReport
from rag.build.status import CorpusStatus
from rag.ingest.corpus import display_name
from rag.ingest.markup import title_head, untagged
from rag.ingest.notes import Entry
from rag.retrieve.related import Related
from rag.retrieve.searcher import Filters
from rag.settings import LLMSettings
from rag.store import LoadedIndex
from rag.store.manifest import Skip
from rag.text import language, lexical

ALL_NOTES = "All notes"
ALL_TAGS = "All tags"
#: An example question names an item by at most this many characters (a longer "title" is a sentence).
MAX_EXAMPLE_NAME = 24
#: Longer entries are cut in the preview; the card still names file and lines of the whole entry.
PREVIEW_CHARS = 12_000
#: A card lists at most this many of an entry's fields, none longer than MAX_FIELD_CHARS, none it shows already.
MAX_CARD_FIELDS = 4
MAX_FIELD_CHARS = 40
_CARD_SHOWN = frozenset("title name aliases alias aka authors author tags tag url link date type arxiv".split())
#: Separates an answer from its compact source list in the chat, so history can drop the list.
SOURCES_MARK = "\n\n<small>📎 Sources:"
#: The Index tab lists at most this many files of each state.
STATUS_LIST = 50
CSS = """
#rag-sources { max-height: 78vh; overflow-y: auto; }
.rag-empty { color: var(--body-text-color-subdued); padding: 1.5em 0.5em; }
.rag-card { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 10px 12px;
            margin: 0 0 10px 0; background: var(--background-fill-secondary); }
.rag-card-head { font-weight: 600; line-height: 1.35; }
.rag-n { display: inline-block; min-width: 2.2em; color: var(--color-accent); font-weight: 700; }
.rag-meta { font-size: 0.85em; color: var(--body-text-color-subdued); margin: 4px 0; }
.rag-meta code { font-size: 0.95em; }
.rag-why { font-size: 0.8em; color: var(--body-text-color-subdued); margin: 2px 0; }
.rag-snippet { font-size: 0.92em; margin: 6px 0; }
.rag-card mark { background: #fde68a; color: #1f2937; padding: 0 1px; border-radius: 2px; }
.rag-tag { color: var(--color-accent); }
.rag-related { font-size: 0.82em; color: var(--body-text-color-subdued); margin-top: 6px; }
.rag-preview summary { cursor: pointer; font-size: 0.88em; color: var(--color-accent); }
.rag-preview pre { white-space: pre-wrap; word-break: break-word; max-height: 420px; overflow-y: auto;
                   font-size: 0.85em; background: var(--background-fill-primary); padding: 8px;
                   border-radius: 6px; }
"""



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


def source_card(citation: Citation, terms: Sequence[str], related: Sequence[Related] = ()) -> str:
    """One cited entry: title, file:lines, date, tags, link, highlighted snippet, the whole entry,
    and the entries related to it (wikilinks, then nearest by the index's vectors)."""
    hit = citation.hit
    entry = hit.entry
    link = safe_url(entry.url)
    title = html.escape(entry.title or entry.file)
    head = f'<a href="{html.escape(link)}" target="_blank" rel="noopener noreferrer">{title}</a>' if link else title
    meta = [f"<code>{html.escape(entry.file)}:{entry.line_start}–{entry.line_end}</code>"]
    if entry.date:
        meta.append(html.escape(entry.date))
    if entry.tags:
        meta.append(" ".join(f'<span class="rag-tag">#{html.escape(t)}</span>' for t in entry.tags))
    if link:
        meta.append(f'<a href="{html.escape(link)}" target="_blank" rel="noopener noreferrer">'
                    f"{html.escape(urlsplit(link).netloc)} ↗</a>")
    text = entry.text
    cut = len(text) > PREVIEW_CHARS
    body = highlight(text[:PREVIEW_CHARS], terms) + ("\n… (cut here; the whole entry is in the file)" if cut else "")
    lines = entry.line_end - entry.line_start + 1
    plural = "" if lines == 1 else "s"
    why = f'<div class="rag-why" title="why it was found">{html.escape(line)}</div>' if (line := hit.why.line()) else ""
    fields = f'<div class="rag-meta">{html.escape(line)}</div>' if (line := fields_line(entry)) else ""
    return (f'<div class="rag-card" id="rag-src-{citation.n}">'
            f'<div class="rag-card-head"><span class="rag-n">[{citation.n}]</span>{head}</div>'
            f'<div class="rag-meta">{" · ".join(meta)}</div>{fields}{why}'
            f'<p class="rag-snippet">{highlight(hit.snippet, terms)}</p>'
            f'<details class="rag-preview"><summary>Show the whole entry ({lines} line{plural})</summary>'
            f"<pre>{body}</pre></details>{related_list(related)}</div>")


def fields_line(entry: Entry) -> str:
    """The entry's own fields in one line, "Edward J. Hu et al. · status: re-read · venue: ICLR
    2022": who wrote it and what its note says of it, beside what the card shows already."""
    authors = f"{entry.authors[0]} et al." if len(entry.authors) > 2 else ", ".join(entry.authors)
    fields = [f"{k}: {v}" for k, v in entry.properties
              if k not in _CARD_SHOWN and len(v) <= MAX_FIELD_CHARS][:MAX_CARD_FIELDS]
    return " · ".join(p for p in (authors, *fields) if p)


def related_list(related: Sequence[Related]) -> str:
    """A line of related entries under a card: title and file:line, 🔗 for a wikilink."""
    if not related:
        return ""
    items = " · ".join(f'{"🔗 " if r.linked else ""}{html.escape(r.entry.title)} '
                       f"<code>{html.escape(r.entry.file)}:{r.entry.line_start}</code>" for r in related)
    return f'<div class="rag-related">Related: {items}</div>'


def _subject(title: str) -> str:
    """What a title is about: its head before a colon ("HyDE" of "HyDE: Precise …"), else all of it;
    never its first words cut mid-phrase ("flexibility trap in" of "flexibility trap in diffusion llm")."""
    head = title_head(title)
    return head if re.search(r"[:：]", title) else untagged(title)


def example_questions(entries: Sequence[Entry], n: int = 4) -> list[str]:
    """Questions about the user's own notes for the page's examples: the newest items of
    different notes, asked by their short name, in the language of the title. None: no items."""
    items = sorted((e for e in entries if e.kind == "item"), key=lambda e: (e.date or "", e.file), reverse=True)
    questions: list[str] = []
    files: set[str] = set()
    for e in items:
        name = next((a for a in e.aliases if len(a) <= 40), None) or _subject(e.title)
        if e.file in files or not 2 <= len(name) <= MAX_EXAMPLE_NAME:
            continue  # a title that is a whole sentence makes no question
        files.add(e.file)
        questions.append(f"{name} 讲了什么？" if language(name) == "zh" else f"What do my notes say about {name}?")
        if len(questions) == n:
            break
    return questions


def render_sources(citations: Sequence[Citation], question: str,
                   related: Mapping[int, Sequence[Related]] | None = None) -> str:
    """The source panel: a card per citation (with its related entries), or a hint of what will appear there."""
    if not citations:
        return '<div class="rag-empty">The entries an answer cites appear here, with their text.</div>'
    terms = query_terms(question)
    return "".join(source_card(c, terms, (related or {}).get(c.n, ())) for c in citations)


def sources_footer(citations: Sequence[Citation]) -> str:
    """A compact list under an answer in the chat, so older answers keep their [n] meaning."""
    if not citations:
        return ""
    items = " · ".join(f"[{c.n}] {html.escape(c.hit.entry.file)}:{c.hit.entry.line_start}" for c in citations)
    return f"{SOURCES_MARK} {items}</small>"


#: After a sentence its cited source does not back (the answer's ``unsupported``).
UNSUPPORTED_MARK = ' <sup title="not found in the cited source">⚠️ unverified</sup>'


def format_answer(answer: Answer) -> str:
    """The chat message for a finished answer: text (unsupported sentences marked), the notice if
    any, a line while the index still lacks some embedder's ranking, the sources line."""
    text = answer.text
    for sentence in dict.fromkeys(answer.unsupported):
        text = text.replace(sentence, sentence + UNSUPPORTED_MARK)
    if answer.notice:
        text += f"\n\n> ⚠️ {answer.notice}"
    if answer.partial:
        text += (f"\n\n> ⏳ The index is still being built: searched without {', '.join(answer.partial)} "
                 "(results improve when it finishes).")
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
        text = message_text(m.get("content")).split(SOURCES_MARK)[0].replace(UNSUPPORTED_MARK, "").strip()
        if m.get("role") in ("user", "assistant") and text:
            out.append({"role": m["role"], "content": text})
    return out


def model_text(llm: LLMSettings, label: str | None = None) -> str:
    """Which model answers, and where; never the key. ``label`` describes a local model."""
    if not llm.enabled:
        return ("**Answer model:** none configured, answers are extractive (quotes from the notes). "
                "Set `RAG_LLM_MODEL` (and `OPENAI_BASE_URL`, or `gguf:PATH` for a local model) to use an LLM.")
    if label:
        return f"**Answer model:** {html.escape(label)}"
    return f"**Answer model:** `{llm.model}` at `{llm.public_endpoint}`"


def index_status(index: LoadedIndex | None, problem: str | None = None, files: CorpusStatus | None = None) -> str:
    """The Index tab: each note's state in counts (``files``, when given), the index's counts,
    embedders and last build, then the skipped files with reasons and the pending ones."""
    head = [f"**{files.summary()}**\n"] if files is not None else []
    if index is None:
        return "\n".join([f"### No index yet\n{problem or ''}\n\nPress **Rebuild index** to build it from the "
                          "notes folder.\n", *head, *_file_lines(files)])
    m = index.manifest
    embedders = " + ".join(["BM25", *(f"`{e}`" + (" (pending)" if e in m.pending else "") for e in m.embedders)])
    lines = [*head,
             f"- **Notes:** {m.counts.notes} · **Entries:** {m.counts.entries} · **Chunks:** {m.counts.chunks}",
             f"- **Retrievers:** {embedders}",
             f"- **Last build:** {m.built_at.replace('T', ' ') or 'unknown'} (generation `{index.generation}`)",
             f"- **Corpus:** `{m.corpus or '?'}`",
             ]
    if files is not None:
        return "\n".join(lines + _file_lines(files))
    if m.skipped:
        lines.append(f"\n**Skipped files ({len(m.skipped)}):**\n")
        lines.extend(skip_line(s) for s in m.skipped)
    return "\n".join(lines)


def _file_lines(files: CorpusStatus | None, limit: int = STATUS_LIST) -> list[str]:
    """Skipped, pending and removed files with their reasons, up to ``limit`` of each."""
    lines: list[str] = []
    for state, label in (("skipped", "Skipped files"), ("pending", "Pending (not in the live index as they are now)"),
                         ("removed", "Removed since the last build")):
        listed = [f for f in files.files if f.status == state] if files is not None else []
        if listed:
            lines.append(f"\n**{label} ({len(listed):,}):**\n")
            lines += [f"- {code_span(html.escape(display_name(f.file)))}: {html.escape(f.reason or '')}"
                      for f in listed[:limit]]
            if len(listed) > limit:
                lines.append(f"- … and {len(listed) - limit:,} more (`rag status --json` lists every file)")
    return lines


def code_span(text: str) -> str:
    """``text`` as one Markdown code span, whatever backticks it holds (a file name with a backtick
    would otherwise close the span and turn the rest of its name into Markdown, a link say)."""
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def skip_line(skip: Skip) -> str:
    return f"- {code_span(html.escape(display_name(skip.path)))}: {html.escape(skip.note)}"


def report_text(report: BuildReport) -> str:
    """The outcome of a build, one line plus the files it skipped or indexed in part."""
    return "\n".join([f"✅ {report.summary()}", *(skip_line(s) for s in report.skipped),
                      *(f"- ✂️ {line}" for line in report.partial)])


def parse_filters(file: str | None, since: str | None, until: str | None, tag: str | None = None) -> Filters:
    """Filters from the settings fields (the CLI's validator); a bad date is a ValueError to show."""
    file = (file or "").strip()
    return Filters.parse(None if file == ALL_NOTES else file, since, until, None if tag == ALL_TAGS else tag)
