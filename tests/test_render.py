"""What the app shows and how it takes uploads, as plain functions (fast: no index, no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.answer.answer import Answer, Citation
from rag.app.render import (
    UNSUPPORTED_MARK,
    chat_history,
    format_answer,
    highlight,
    model_text,
    parse_filters,
    query_terms,
    render_sources,
)
from rag.app.uploads import UploadError, add_note, safe_note_name
from rag.ingest.notes import Entry
from rag.retrieve.searcher import Hit
from rag.retrieve.why import Why
from rag.settings import LLMSettings


def make_hit(why: Why | None = None, **changes: object) -> Hit:
    entry = Entry(file="001_a.txt", title="OmniMoE: Atomic Experts", line_start=42, line_end=68,
                  url="https://huggingface.co/papers/2602.05711", date="2026-02-09",
                  text="OmniMoE 把 MoE 专家拆成原子专家 (atomic experts).\n<b>bold</b>")
    entry = Entry(**{**entry.__dict__, **changes})
    return Hit(rank=1, score=0.05, entry=entry, snippet="OmniMoE 把 MoE 专家拆成原子专家 <script>x</script>",
               path="corpus/001_a.txt", chunk_lines=(42, 60), why=why or Why())



def test_highlight_escapes_html_and_marks_terms() -> None:
    out = highlight("<img src=x onerror=alert(1)> MoE 与 amoeba 原子专家", ["moe", "原子专家"])
    assert "<img" not in out and "&lt;img src=x" in out
    assert "<mark>MoE</mark>" in out and "<mark>原子专家</mark>" in out
    assert "amoeba" in out and "a<mark>" not in out  # Latin terms match whole words only


def test_query_terms_skip_stopwords_and_single_letters() -> None:
    terms = query_terms("Which paper cut KV-cache memory by 80%?")
    assert "kv-cache" in terms and "memory" in terms
    assert "which" not in terms and "paper" not in terms
    assert terms.index("kv-cache") < terms.index("kv")  # longest first, so the whole term wins


def test_source_card_shows_title_location_date_link_snippet_and_preview() -> None:
    html = render_sources([Citation(1, make_hit())], "MoE 原子专家")
    assert 'id="rag-src-1"' in html and "[1]" in html
    assert "001_a.txt:42–68" in html and "2026-02-09" in html
    assert 'href="https://huggingface.co/papers/2602.05711"' in html
    assert "<mark>原子专家</mark>" in html
    assert "<details" in html and "&lt;b&gt;bold&lt;/b&gt;" in html  # whole entry, escaped
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_source_card_never_links_a_script_url() -> None:
    html = render_sources([Citation(2, make_hit(url="javascript:alert(1)", date=None))], "x")
    assert "javascript:" not in html and "href=" not in html
    assert "[2]" in html


def test_empty_sources_and_chat_footer_round_trip() -> None:
    assert "appear here" in render_sources([], "")
    answer = Answer("q", "OmniMoE 把专家拆成原子专家 [1]。", [Citation(1, make_hit())], "extractive", refused=False,
                    notice="LLM endpoint unreachable; this is an extractive answer")
    message = format_answer(answer)
    assert "[1] 001_a.txt:42" in message and "⚠️ LLM endpoint unreachable" in message
    history = chat_history([{"role": "user", "content": "q"}, {"role": "assistant", "content": message},
                            {"role": "assistant", "content": [{"type": "text", "text": "part"}]}])
    assert history[1]["content"].startswith("OmniMoE") and "001_a.txt:42" not in history[1]["content"]
    assert history[2] == {"role": "assistant", "content": "part"}


def test_an_answer_from_a_partial_index_says_which_ranking_it_lacked() -> None:
    answer = Answer("q", "OmniMoE [1]。", [Citation(1, make_hit())], "extractive", refused=False, partial=["e5-onnx"])
    assert "searched without e5-onnx" in format_answer(answer)
    answer.partial = []
    assert "still being built" not in format_answer(answer)


def test_model_text_names_model_and_host_never_the_key() -> None:
    llm = LLMSettings(base_url="https://bob:sk-secret@api.example.com/v1?key=sk-secret", api_key="sk-secret",
                      model="qwen-plus")
    text = model_text(llm)
    assert "qwen-plus" in text and "api.example.com/v1" in text
    assert "sk-secret" not in text and "bob" not in text
    assert "extractive" in model_text(LLMSettings())
    local = model_text(LLMSettings(model="gguf:/m/tiny.gguf"), "local: tiny.gguf, 1 thread")
    assert "local: tiny.gguf, 1 thread" in local
    assert LLMSettings().public_endpoint == "the default OpenAI endpoint"
    assert LLMSettings(base_url="http://u:p@127.0.0.1:8000/v1").public_endpoint == "http://127.0.0.1:8000/v1"


def test_parse_filters() -> None:
    f = parse_filters("All notes", " 2026-02-01 ", "")
    assert f.file_glob is None and f.since == "2026-02-01" and f.until is None
    assert parse_filters("00*.txt", None, None).file_glob == "00*.txt"
    with pytest.raises(ValueError, match="not a date"):
        parse_filters(None, "last week", None)
    with pytest.raises(ValueError, match="after"):
        parse_filters(None, "2026-03-01", "2026-02-01")


# ---------------------------------------------------------------------------- uploads

@pytest.mark.parametrize(("name", "safe"), [
    ("notes.md", "notes.md"),
    ("../../etc/cron.d/evil.md", "evil.md"),
    ("C:\\Users\\me\\读书笔记 2026.txt", "读书笔记 2026.txt"),
    ("..hidden.md", "hidden.md"),
    ("a<b>|c.MD", "a_b__c.MD"),
])
def test_safe_note_name(name: str, safe: str) -> None:
    assert safe_note_name(name) == safe


@pytest.mark.parametrize("name", ["run.sh", "notes.md.exe", "../", ".md", "<>.md"])
def test_safe_note_name_rejects(name: str) -> None:
    with pytest.raises(UploadError):
        safe_note_name(name)


def test_add_note_checks_and_never_overwrites(tmp_path: Path) -> None:
    assert add_note(tmp_path, "../x/new.md", "# 新笔记\n内容".encode(), 1000) == "new.md"
    assert (tmp_path / "new.md").read_text(encoding="utf-8") == "# 新笔记\n内容"
    assert not (tmp_path.parent / "x").exists()
    with pytest.raises(UploadError, match="already in the corpus"):
        add_note(tmp_path, "new.md", b"other", 1000)
    with pytest.raises(UploadError, match="over the"):
        add_note(tmp_path, "big.md", b"x" * 1001, 1000)
    with pytest.raises(UploadError, match="binary"):
        add_note(tmp_path, "bin.md", b"\x00\x01\x02abc", 1000)
    with pytest.raises(UploadError, match="empty"):
        add_note(tmp_path, "blank.txt", b"  \n", 1000)
    # a GBK note is stored as UTF-8, so every later reader sees the same text
    assert add_note(tmp_path, "gbk.txt", "稀疏自动编码器分析音频模型".encode("gbk"), 1000) == "gbk.txt"
    assert (tmp_path / "gbk.txt").read_text(encoding="utf-8") == "稀疏自动编码器分析音频模型"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gbk.txt", "new.md"]


def test_source_card_says_in_one_line_why_the_entry_was_found() -> None:
    why = Why({"bm25": 1, "e5-onnx": 3, "exact": 1}, ("80%", "KV cache"))
    html = render_sources([Citation(1, make_hit(why=why))], "KV cache 80%")
    assert '<div class="rag-why" title="why it was found">BM25 #1 · e5 #3 · exact: 80%, KV cache</div>' in html
    assert "rag-why" not in render_sources([Citation(1, make_hit())], "x")  # nothing known, nothing shown


def test_a_sentence_its_source_does_not_back_is_marked_in_the_chat_and_not_sent_back() -> None:
    answer = Answer("q", "OmniMoE uses atomic experts [1]. It is 12x faster [1].", [Citation(1, make_hit())],
                    "llm", refused=False, format="claims", unsupported=["It is 12x faster [1]."])
    message = format_answer(answer)
    assert message.startswith("OmniMoE uses atomic experts [1]. It is 12x faster [1]." + UNSUPPORTED_MARK)
    assert message.count("⚠️") == 1
    history = chat_history([{"role": "assistant", "content": message}])
    assert history[0]["content"] == answer.text  # the mark is for the reader, not for a follow-up rewrite


def test_source_card_shows_who_wrote_it_and_the_fields_its_note_gives() -> None:
    """"Edward J. Hu et al. · status: re-read · venue: ICLR 2022": what the note says of the paper,
    not what the card shows already (its title, tags, link) or a field too long for one line."""
    hit = make_hit(authors=("Edward J. Hu", "Yelong Shen", "Phillip Wallis"),
                   properties=(("title", "LoRA"), ("status", "re-read"), ("venue", "ICLR 2022"),
                               ("tags", "peft"), ("abstract", "x" * 200)))
    html = render_sources([Citation(1, hit)], "LoRA")
    assert "Edward J. Hu et al. · status: re-read · venue: ICLR 2022</div>" in html and "abstract" not in html
    assert "status:" not in render_sources([Citation(1, make_hit())], "MoE")


def test_source_card_counts_the_lines_of_the_whole_entry_in_good_english() -> None:
    assert "(1 line)" in render_sources([Citation(1, make_hit(line_start=28, line_end=28))], "MoE")
    assert "(27 lines)" in render_sources([Citation(1, make_hit())], "MoE")
