"""The baseline system: LangChain's default RAG recipe, on the same notes and questions.

RecursiveCharacterTextSplitter(1000, 200) over whole files, one embedder, a flat inner-product
index, a full rebuild on every change. Its chunks are scored like ours, at entry level: a
retrieved chunk stands for the entries its lines overlap (in file order), which favours it when
one chunk spans several short entries.
"""

from __future__ import annotations

import bisect
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.embed.models import Models
from rag.eval.metrics import K, ranking_quality
from rag.eval.qa import Question, Span
from rag.ingest.corpus import read_corpus
from rag.ingest.notes import Entry, split_entries
from rag.store.dense import ExactDense

from .harness import dir_size_mb, in_worker, latency, log, peak_rss_mb, timed

LC_CHUNK_SIZE, LC_CHUNK_OVERLAP = 1000, 200  # RecursiveCharacterTextSplitter's documented defaults


@dataclass(frozen=True)
class SpanChunk:
    """A baseline chunk: a character span of a whole file, and the lines it covers."""

    file: str
    start: int
    text: str
    line_start: int
    line_end: int


def langchain_split(text: str, file: str) -> list[SpanChunk]:
    """The default recipe: RecursiveCharacterTextSplitter(1000, 200) over the whole file."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=LC_CHUNK_SIZE, chunk_overlap=LC_CHUNK_OVERLAP,
                                              add_start_index=True)
    line_starts = [0, *(i + 1 for i, ch in enumerate(text) if ch == "\n")]
    chunks = []
    for doc in splitter.create_documents([text]):
        start = doc.metadata["start_index"]
        if start < 0:
            start = max(0, text.find(doc.page_content))
        end = start + max(len(doc.page_content), 1) - 1
        chunks.append(SpanChunk(file, start, doc.page_content, bisect.bisect_right(line_starts, start),
                                bisect.bisect_right(line_starts, end)))
    return chunks


def chunk_to_entries(chunk: SpanChunk, entries: Sequence[Entry]) -> list[Entry]:
    """The entries of the chunk's file whose line spans overlap the chunk's lines, in file order."""
    lines = Span(chunk.file, chunk.line_start, chunk.line_end)
    return [e for e in entries if lines.overlaps(Span.of(e))]


def entry_ranking(chunk_ids: Sequence[int], chunks: Sequence[SpanChunk], entries: Sequence[Entry]) -> list[Span]:
    """Ranked chunks → ranked distinct entries: each chunk contributes the entries it overlaps."""
    seen: set[str] = set()
    out = []
    for ci in chunk_ids:
        for e in chunk_to_entries(chunks[ci], entries):
            if e.id not in seen:
                seen.add(e.id)
                out.append(Span.of(e))
    return out


class LangChainBaseline:
    """Whole files → 1000/200 character chunks → one embedder → exact inner product; no cache."""

    def __init__(self, name: str, models: Models) -> None:
        self.embedder = models.embedder(name)
        self.chunks: list[SpanChunk] = []
        self.index = ExactDense(np.zeros((0, self.embedder.dim), np.float32))

    def build(self, texts: dict[str, str], out_dir: Path) -> None:
        """A full rebuild, as the recipe does on any change: split, embed all, index, save."""
        self.chunks = [c for file, text in texts.items() for c in langchain_split(text, file)]
        self.index = ExactDense(self.embedder.embed_passages([c.text for c in self.chunks]))
        out_dir.mkdir(parents=True, exist_ok=True)
        np.save(out_dir / "vectors.npy", self.index.matrix)
        with open(out_dir / "chunks.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"file": c.file, "start": c.start, "text": c.text}, ensure_ascii=False) + "\n"
                         for c in self.chunks)

    def search(self, question: str, n: int = K) -> list[int]:
        return self.index.search(self.embedder.embed_query(question), n)[0].tolist()


def baseline_worker(name: str, corpus: Path, max_bytes: int, out_dir: Path,
                    questions: Sequence[Question] | None) -> dict:
    """Build the baseline (in a fresh process); with questions, also score and time its search."""
    texts, _ = read_corpus(corpus, max_bytes)
    baseline = LangChainBaseline(name, Models())
    _, build_s = timed(lambda: baseline.build(texts, out_dir))
    result: dict = {"embedder": name, "chunks": len(baseline.chunks), "build_seconds_in_process": round(build_s, 2)}
    if questions:
        entries = [e for file, text in texts.items() for e in split_entries(text, file)]
        baseline.search("warm up 预热")
        timed_ids = [timed(lambda q=q: baseline.search(q.question)) for q in questions]
        result["quality"] = ranking_quality([entry_ranking(ids, baseline.chunks, entries) for ids, _ in timed_ids],
                                            questions)
        result["search_ms"] = latency([s for _, s in timed_ids])
        result["entries_per_chunk"] = round(float(np.mean([len(chunk_to_entries(c, entries))
                                                           for c in baseline.chunks])), 2)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def bench_baseline(name: str, corpus: Path, max_bytes: int, new_note: tuple[str, str], work: Path,
                   questions: Sequence[Question]) -> dict:
    """The recipe on the notes (scored), then its full rebuild with ``new_note`` added."""
    six = work / f"lc-corpus-{name.replace('/', '_')}"
    shutil.copytree(corpus, six)
    out5, out6 = work / "lc-index-5", work / "lc-index-6"
    log(f"baseline {name}: build + quality (worker)")
    first, first_wall = in_worker(baseline_worker, name, corpus, max_bytes, out5, list(questions))
    (six / new_note[0]).write_text(new_note[1], encoding="utf-8")
    log(f"baseline {name}: full rebuild after adding the note (worker)")
    rebuild, rebuild_wall = in_worker(baseline_worker, name, six, max_bytes, out6, None)
    size = dir_size_mb(out5)
    for path in (six, out5, out6):
        shutil.rmtree(path, ignore_errors=True)
    return {**first, "build_seconds_process": round(first_wall, 2), "index_size_mb": size,
            "rebuild_after_add": {**rebuild, "seconds_process": round(rebuild_wall, 2)}}
