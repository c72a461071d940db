"""`rag index --watch`: keep the index current while the user edits notes.

Each burst of changes (debounced, so an editor's save-rename-fsync dance counts once) triggers an
ordinary incremental build; readers such as the app pick the new generation up via IndexHandle.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from .config import Config
from .index import BuildReport, IndexUnavailable, build_index
from .notes import NOTE_SUFFIXES

#: Quiet time after the last change before rebuilding.
DEBOUNCE_MS = 800


def _say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def is_note_change(path: Path, corpus: Path, index: Path) -> bool:
    """A change worth a rebuild: a note file, or a folder (moving one moves its notes), outside
    the index and hidden folders. A false positive only costs an "up to date" check."""
    if path.is_relative_to(index) or not path.is_relative_to(corpus):
        return False
    if any(part.startswith(".") for part in path.relative_to(corpus).parts):
        return False
    return path.suffix.lower() in NOTE_SUFFIXES or not path.suffix


def watch_index(config: Config) -> int:
    """Build once, then rebuild after every burst of note changes until Ctrl-C or SIGTERM (exit 0)."""
    from watchfiles import watch

    corpus, index = config.corpus.resolve(), config.index.resolve()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as cleanly as Ctrl-C
    reported: set[tuple[str, str]] = set()

    def rebuild(first: bool = False) -> None:
        try:
            report = build_index(config)
        except (IndexUnavailable, OSError) as exc:  # e.g. the corpus folder vanished: say so, keep watching
            _say(f"rebuild failed: {exc}")
            return
        _report(report, reported, quiet_if_up_to_date=not first)

    try:
        rebuild(first=True)
        _say(f"watching {config.corpus} for note changes (Ctrl-C to stop)")
        for _ in watch(corpus, watch_filter=lambda _change, path: is_note_change(Path(path), corpus, index),
                       debounce=DEBOUNCE_MS, raise_interrupt=False):
            rebuild()
    except KeyboardInterrupt:  # also mid-build: the previous generation stays live
        pass
    return 0


def _report(report: BuildReport, reported: set[tuple[str, str]], quiet_if_up_to_date: bool) -> None:
    """Each skip once (not again on every rebuild), then the build's one-line summary."""
    for skip in report.skipped:
        if (skip.file, skip.reason) not in reported:
            reported.add((skip.file, skip.reason))
            _say(f"skipped {skip.file}: {skip.reason}")
    if not (report.up_to_date and quiet_if_up_to_date):
        _say(report.summary())
