"""`rag index --watch`: keep the index current while the user edits notes.

A burst of saves makes one rebuild: changes are collected until the notes have been quiet for
``QUIET_MS``, or for at most ``MAX_GROUP_MS`` of non-stop changes. (watchfiles alone yields every
~100 ms while an editor re-saves one file, since the set of changed paths stops growing.)
Changes made while a build runs are collected meanwhile and make one more build. Readers such as
the app pick the new generation up through their IndexHandle.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rag.embed.models import EmbedderError, Models
from rag.ingest.notes import NOTE_SUFFIXES
from rag.settings import Settings
from rag.store import IndexStore, IndexUnavailable

from .builder import BuildReport, build_index

#: Quiet time after the last change before rebuilding; an editor's save-rename-fsync fits in it.
QUIET_MS = 600
#: Under non-stop changes, rebuild at least this often.
MAX_GROUP_MS = 10_000


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


def watch_index(settings: Settings, store: IndexStore, models: Models, stop: threading.Event | None = None,
                say: Callable[[str], None] = _say, quiet_ms: int = QUIET_MS) -> int:
    """Build once, then after every burst of note changes, until Ctrl-C, SIGTERM or ``stop`` (exit 0).

    ``quiet_ms`` is how long the notes must rest before a rebuild (tests on a loaded machine widen it).

    A corpus folder that vanishes is said once and waited for; when it is back it is indexed and
    watched again.
    """
    corpus, index = settings.index.corpus.resolve(), settings.index.path.resolve()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as cleanly as Ctrl-C
    reported: set[tuple[str, str]] = set()

    def rebuild(first: bool = False) -> None:
        try:
            report = build_index(settings.index, store, models)
        except (IndexUnavailable, EmbedderError) as exc:  # e.g. the corpus folder vanished: say so, keep watching
            say(f"rebuild failed: {exc}")
            return
        for line in _new_lines(report, reported, quiet_if_up_to_date=not first):
            say(line)

    try:
        rebuild(first=True)
        while not (stop is not None and stop.is_set()):
            if corpus.is_dir():
                say(f"watching {settings.index.corpus} for note changes (Ctrl-C to stop)")
                _follow(corpus, index, stop, rebuild, quiet_ms)
                if corpus.is_dir():  # the watch ended because it was told to stop
                    break
                say(f"the notes folder {settings.index.corpus} is gone; waiting for it to come back")
            while not corpus.is_dir():
                if stop is not None and stop.wait(1):
                    return 0
                if stop is None:
                    time.sleep(1)
            rebuild()
    except KeyboardInterrupt:  # also mid-build: the previous generation stays live
        pass
    return 0


def _follow(corpus: Path, index: Path, stop: threading.Event | None, rebuild: Callable[[], None],
            quiet_ms: int) -> None:
    """Rebuild after each burst of note changes, until ``stop`` or until the corpus folder vanishes
    (a folder deleted under the watch would never report a change again)."""
    from watchfiles import watch

    pending_since: float | None = None
    for changes in watch(corpus, watch_filter=lambda _change, path: is_note_change(Path(path), corpus, index),
                         rust_timeout=quiet_ms, yield_on_timeout=True, stop_event=stop, raise_interrupt=False):
        if not corpus.is_dir():
            return
        now = time.monotonic()
        if changes:  # more to come? wait for quiet, unless this has gone on for too long
            pending_since = pending_since or now
            if now - pending_since < MAX_GROUP_MS / 1000:
                continue
        elif pending_since is None:  # quiet, and nothing to do
            continue
        pending_since = None
        rebuild()


def _new_lines(report: BuildReport, reported: set[tuple[str, str]], quiet_if_up_to_date: bool) -> list[str]:
    """Each skip once (not again on every rebuild), then the build's one-line summary."""
    lines = []
    for skip in report.skipped:
        if (skip.path, skip.reason) not in reported:
            reported.add((skip.path, skip.reason))
            lines.append(f"skipped {skip.describe()}")
    if not (report.up_to_date and quiet_if_up_to_date):
        lines.append(report.summary())
    return lines
