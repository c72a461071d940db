"""What the `rag` command prints on a terminal: note text with its control characters escaped,
hits, a build's report and its progress, a streamed answer."""

from __future__ import annotations

import re
import sys
import time

from rag.build.builder import BuildReport, Progress
from rag.retrieve.searcher import Hit

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


def progress_printer(tty: bool) -> Progress:
    """A bar on a terminal; elsewhere a line every few seconds, so a long build is never silent.
    An event (total 0, such as "searchable (lexical) after 3.1s") is always a line of its own."""
    if tty:
        from tqdm import tqdm

        bars: dict[str, tqdm] = {}

        def bar(stage: str, done: int, total: int) -> None:
            if not total:
                tqdm.write(stage, file=sys.stderr)
                return
            b = bars.get(stage) or bars.setdefault(stage, tqdm(total=total, desc=stage, unit="chunk"))
            b.n = done
            b.refresh()
            if done >= total:
                b.close()

        return bar
    last = [0.0]

    def line(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if not total:
            print(stage, file=sys.stderr, flush=True)
        elif done >= total or now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            print(f"{stage}: {done}/{total}", file=sys.stderr, flush=True)

    return line


def write_stream(text: str) -> None:
    sys.stdout.write(terminal_text(text))
    sys.stdout.flush()
