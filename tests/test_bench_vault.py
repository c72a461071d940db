"""`rag bench --vault N`: the generated vault (fast) and the whole measurement end to end (slow)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from rag.bench.vault import ROTATION, STYLES, generate_vault
from rag.bench.vault_report import TARGETS, check_targets, render_markdown
from rag.ingest.corpus import read_corpus
from rag.ingest.markup import split_lines
from rag.ingest.meta import front_matter
from rag.ingest.notes import split_entries
from tests.conftest import CORPUS, ROOT, RunRag

#: The segmenter's kind for each style's papers (a table's are rows; the rest are items).
KIND = {"obsidian": "item", "logseq": "item", "reading-log": "item", "table": "row", "meeting": "item"}


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return read_corpus(CORPUS, 10**7)[0]


def test_the_vault_is_deterministic_has_n_notes_and_every_style(texts: dict[str, str], tmp_path: Path) -> None:
    vault = generate_vault(texts, 23, seed=7)
    assert vault == generate_vault(texts, 23, seed=7) and vault != generate_vault(texts, 23, seed=8)
    assert len(vault.notes) == 23 and len({n.name for n in vault.notes}) == 23
    assert Counter(n.style for n in vault.notes) == Counter(ROTATION[i % len(ROTATION)] for i in range(23))
    assert {n.style for n in generate_vault(texts, 5).notes} == set(STYLES)
    vault.write(tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.*")) == sorted(n.name for n in vault.notes)


def test_each_style_segments_into_its_papers(texts: dict[str, str]) -> None:
    for note in generate_vault(texts, 40).notes:
        entries = split_entries(note.text, note.name)
        papers = [e for e in entries if e.kind == KIND[note.style]]
        assert len(papers) == note.papers, (note.name, [(e.kind, e.title) for e in entries])
        if note.style == "obsidian":
            meta = front_matter(split_lines(note.text))[1]
            assert meta.title and meta.tags and meta.authors and meta.year and "[[paper-" in note.text
            assert papers[0].authors == meta.authors
        if note.style in ("reading-log", "meeting"):
            assert all(e.date for e in papers)
        if note.style == "table":
            assert all(e.url and e.url.startswith("https://example.org/vault/") for e in papers)
        if note.style == "logseq":
            assert all(e.authors for e in papers)


def test_targets_are_checked_only_once_measured() -> None:
    empty = {"vault": {"label": "vault"}, "notes": {"label": "bundled notes"}}
    assert all(t["measured"] is None and not t["met"] for t in check_targets(empty).values())
    report = {"vault": {"build": {"first_search_s": 30.0, "chunks_per_s": 24.0, "peak_rss_mb": 900.0},
                        "update": {"seconds": 5.0}, "serve": {"peak_rss_mb": 800.0, "search_ms": {"p95": 60.0}}},
              "notes": {"build": {"chunks_per_s": 40.0}, "update": {"seconds": 3.0}}}
    met = {k: (t["measured"], t["met"]) for k, t in check_targets(report).items()}
    assert met == {"first_search_s": (30.0, True), "chunks_per_s_vs_notes": (0.6, False),
                   "update_vs_notes": (1.667, True), "build_peak_rss_mb": (900.0, True),
                   "serve_peak_rss_mb": (800.0, True), "search_p95_ms": (60.0, False)}
    assert set(met) == set(TARGETS)


def test_a_partial_report_renders_with_its_error() -> None:
    """What a run that died in the vault's build leaves: the notes measured, the error said."""
    report = {"started": "now", "machine": {"cpus": 2, "python": "3", "load_average_at_start": [1.0]},
              "embedders": ["hash"], "seed": 0, "poll_s": [2.0, 120.0, 10.0], "queries_timed": 200, "questions": 95,
              "vault": {"label": "vault", "source": "generated", "build": {"error": "RuntimeError: rag index failed"}},
              "notes": {"label": "bundled notes", "source": "corpus", "corpus": {"notes": 5},
                        "build": {"chunks_per_s": 30.0, "seconds": 20.0}}}
    report["targets"] = check_targets(report)
    text = render_markdown(report)
    assert "- vault, build: RuntimeError: rag index failed" in text and "this vault: ? notes" in text
    row = next(line for line in text.splitlines() if line.startswith("| full build s "))
    assert [c.strip() for c in row.strip("|").split("|")] == ["full build s", "–", "20"]


@pytest.mark.slow
def test_rag_bench_vault_end_to_end(tmp_path: Path, run_rag: RunRag) -> None:
    out = tmp_path / "vault.json"
    # two embedders, one real and quick: the whole flow, per-embedder pace and their ceiling in turn,
    # in 45 s instead of the default pair's 127 s
    run = run_rag("bench", "--vault", "30", "--out", str(out), "--embedders", "hash,use-m3", "--corpus",
                  str(CORPUS), cwd=ROOT, timeout=1200)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["vault"]["styles"] == dict(Counter(ROTATION[i % len(ROTATION)] for i in range(30)))
    for part in (report["vault"], report["notes"]):
        build, serve = part["build"], part["serve"]
        assert build["first_search_s"] > 0 and build["seconds"] > 0
        assert build["chunks_per_s"] > 0 and build["peak_rss_mb"] > 100 and build["polls"] >= 1
        assert set(build["embedders"]) == {"hash", "use-m3"}
        assert all(e["chunks"] == part["corpus"]["chunks"] for e in build["embedders"].values())
        assert part["update"]["seconds"] > 0 and "changed 1" in part["update"]["summary"]
        assert part["status"]["counts"]["indexed"] == part["corpus"]["notes"] and part["status"]["seconds"] > 0
        assert serve["search_ms"]["p50"] <= serve["search_ms"]["p95"] and serve["peak_rss_mb"] > 100
        models = part["models"]  # each embedder alone, and their ceiling in turn (below the slower one's pace)
        assert set(models["chunks_per_s"]) == {"hash", "use-m3"} and models["sample"] > 0
        assert 0 < models["all_in_turn_chunks_per_s"] < min(models["chunks_per_s"].values())
    assert report["vault"]["corpus"]["notes"] == 30 and report["notes"]["corpus"]["notes"] == 5
    assert all(t["measured"] is not None for t in report["targets"].values())
    assert render_markdown(report) == out.with_suffix(".md").read_text(encoding="utf-8")
