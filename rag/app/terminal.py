"""What the `rag` command prints on a terminal: note text with its control characters escaped,
hits, a build's report and its progress, a streamed answer."""

from __future__ import annotations

import re
import sys
import time

from rag.build.builder import BuildReport, Progress
from rag.build.status import CorpusStatus
from rag.ingest.corpus import display_name
from rag.retrieve.searcher import Hit

#: ``rag status`` lists at most this many files of each state (``--json`` lists them all).
STATUS_LIST = 20
#: A build on a pipe (CI, nohup, a log) says how far it is at most this often.
PROGRESS_EVERY_S = 5.0
#: Characters a terminal acts on (ESC sequences, carriage return, backspace, bidi overrides).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_text(text: str) -> str:
    """Note text as a terminal shows it: a note's control characters are printed escaped, so a
    note can neither drive the terminal (clear it, retitle it) nor overwrite a line."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def format_hit(hit: Hit) -> str:
    e = hit.entry
    tags = " ".join(f"#{t}" for t in e.tags)
    meta = " · ".join(x for x in (f"{hit.path}:{e.line_start}-{e.line_end}", e.date, e.url, tags) if x)
    return terminal_text(f"{hit.rank:>2}. {e.title}  ({hit.score:.4f})\n    {meta}\n    {hit.snippet}")


def report_lines(report: BuildReport) -> list[str]:
    """Each skip, partly indexed note and notice (names escaped: a newline in a file name cannot fake a
    line), then the summary."""
    return ([f"skipped {s.describe()}" for s in report.skipped] + report.partial
            + [f"note {terminal_text(n)}" for n in report.notices] + [report.summary()])


def status_lines(status: CorpusStatus, limit: int = STATUS_LIST) -> list[str]:
    """The counts and the live build, then each skipped, pending and removed file with its reason (up to
    ``limit`` of each; indexed files are the rest and are not listed)."""
    built = f" (index built {status.built_at.replace('T', ' ')})" if status.built_at else ""
    lines = [status.summary() + built]
    if status.problem:
        lines.append(f"index: {terminal_text(status.problem)}")
    for state in ("skipped", "pending", "removed"):
        files = [f for f in status.files if f.status == state]
        lines += [f"{state} {display_name(f.file)}: {terminal_text(f.reason or '')}" for f in files[:limit]]
        if len(files) > limit:
            lines.append(f"… and {len(files) - limit:,} more {state} (rag status --json lists every file)")
    return lines


def pace(done: int, total: int, started: tuple[float, int], now: float) -> str:
    """", 12.5/s, about 1m 20s left": the pace since the stage was first reported (``started``: that
    moment and the count then), so model loading before the first batch does not slow it; empty
    until there is a pace to go by."""
    since, first = started
    if done <= first or now <= since or done >= total:
        return ""
    rate = (done - first) / (now - since)
    left = round((total - done) / rate)
    return f", {rate:.1f}/s, about {f'{left // 60}m ' if left >= 60 else ''}{left % 60}s left"


def progress_printer(tty: bool) -> Progress:
    """A bar per stage on a terminal (tqdm shows its pace and time left); elsewhere a line every
    few seconds with the pace and time left, so a long build is never silent. An event (total 0,
    such as "searchable (lexical) after 3.1s") is always a line of its own."""
    if tty:
        from tqdm import tqdm

        bars: dict[str, tqdm] = {}

        def bar(stage: str, done: int, total: int) -> None:
            if not total:
                tqdm.write(stage, file=sys.stderr)
                return
            b = bars.get(stage) or bars.setdefault(stage, tqdm(total=total, desc=stage, unit="item"))
            b.update(done - b.n)
            if done >= total:
                b.close()

        return bar
    last = [0.0]
    started: dict[str, tuple[float, int]] = {}

    def line(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if not total:
            print(stage, file=sys.stderr, flush=True)
            return
        first = started.setdefault(stage, (now, done))
        if done >= total or now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            print(f"{stage}: {done}/{total}{pace(done, total, first, now)}", file=sys.stderr, flush=True)

    return line


def write_stream(text: str) -> None:
    sys.stdout.write(terminal_text(text))
    sys.stdout.flush()
