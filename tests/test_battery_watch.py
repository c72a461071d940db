"""Fault battery, watch: ``rag index --watch`` as a real process under bursts of saves, a bad note,
a name with a newline, the corpus folder vanishing, SIGTERM and Ctrl-C. It keeps the index
current, says each problem once in one escaped line, never prints a traceback, and stops with
exit 0. Slow tier: a subprocess per probe (lexical-only index, no model)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.battery import CODE_ROOT, clean_env

pytestmark = pytest.mark.slow
GOOD = "# Good\n\n## Kangaroo-Net\n\nKangaroo-Net hops over tokens.\n"


class Watcher:
    """A running ``rag index --watch`` whose stderr is collected line by line."""

    def __init__(self, corpus: Path, index: Path) -> None:
        env = clean_env({"RAG_CORPUS": str(corpus), "RAG_INDEX": str(index), "RAG_EMBEDDERS": "",
                         "PYTHONPATH": str(CODE_ROOT), "PYTHONUNBUFFERED": "1"})
        self.log = index.parent / "watch.log"
        self._log = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        # the watcher's Ctrl-C is tested: it must get SIGINT's default disposition even when this
        # suite runs where SIGINT is ignored (a background job, nohup), which a child inherits
        self.proc = subprocess.Popen([sys.executable, "-m", "rag.app.cli", "index", "--watch"], cwd=corpus.parent,
                                     env=env, stdout=subprocess.PIPE, stderr=self._log,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    @property
    def lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()

    def wait_for(self, test: Callable[[list[str]], bool], timeout: float = 60) -> list[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if test(self.lines):
                return self.lines
            assert self.proc.poll() is None, f"watch exited {self.proc.returncode}: {self.lines}"
            time.sleep(0.1)
        pytest.fail(f"timed out; log: {self.lines}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(30)
        finally:
            self._log.close()
        return code


def summaries(lines: list[str]) -> list[str]:
    return [line for line in lines if "] indexed " in line or "] index is up to date" in line]


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[Watcher]:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.md").write_text(GOOD, encoding="utf-8")
    watch = Watcher(corpus, tmp_path / "index")
    watch.wait_for(lambda lines: any("watching" in line for line in lines))
    time.sleep(1)  # "watching" is said just before the OS watch is set up
    yield watch
    if watch.proc.poll() is None:
        watch.proc.kill()
        watch.proc.wait()
    log = "\n".join(watch.lines)
    assert "Traceback" not in log, log


def corpus_of(watch: Watcher) -> Path:
    return watch.log.parent / "corpus"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_with_exit_0(sig: int, watcher: Watcher) -> None:
    assert watcher.stop(sig) == 0
    assert watcher.proc.stdout is not None and watcher.proc.stdout.read() == b""


def test_a_burst_of_saves_is_one_rebuild(watcher: Watcher) -> None:
    before = len(summaries(watcher.lines))
    note = corpus_of(watcher) / "burst.md"
    for i in range(60):
        note.write_text(f"# Burst\n\n## Wombat {i}\n\nSaved {i} times.\n", encoding="utf-8")
        time.sleep(0.02)
    watcher.wait_for(lambda lines: len(summaries(lines)) > before)
    time.sleep(2)
    assert len(summaries(watcher.lines)) - before == 1, watcher.lines
    assert watcher.stop() == 0


def test_a_bad_note_is_said_once_and_the_watch_goes_on(watcher: Watcher) -> None:
    corpus = corpus_of(watcher)
    (corpus / "bin.md").write_bytes(b"\x89PNG\x00\x00" * 100)
    watcher.wait_for(lambda lines: any("skipped bin.md: binary file" in line for line in lines))
    (corpus / "later.md").write_text("# Later\n\n## Wombat\n\nWombat digs.\n", encoding="utf-8")
    watcher.wait_for(lambda lines: any("added 1" in line for line in lines[-3:]))
    assert sum("skipped bin.md" in line for line in watcher.lines) == 1
    assert watcher.stop() == 0


def test_names_that_could_fake_lines_are_escaped(watcher: Watcher) -> None:
    corpus = corpus_of(watcher)
    (corpus / "x.md: ok\n[00:00:00] indexed 99 notes\x1b[2K.md").write_bytes(b"\x00binary")
    watcher.wait_for(lambda lines: any("skipped x.md: ok\\n[00:00:00] indexed 99 notes\\x1b[2K.md" in line
                                       for line in lines))
    assert not any(line.startswith("[00:00:00] indexed 99") for line in watcher.lines)
    assert watcher.stop() == 0


def test_the_corpus_folder_vanishing_and_coming_back(watcher: Watcher) -> None:
    corpus = corpus_of(watcher)
    shutil.rmtree(corpus)
    watcher.wait_for(lambda lines: any("is gone; waiting for it to come back" in line for line in lines))
    corpus.mkdir()
    (corpus / "back.md").write_text("# Back\n\n## Wombat\n\nWombat returns.\n", encoding="utf-8")
    watcher.wait_for(lambda lines: any("added 1" in line and "removed 1" in line for line in lines))
    (corpus / "more.md").write_text("# More\n\n## Quokka\n\nQuokka too.\n", encoding="utf-8")
    watcher.wait_for(lambda lines: sum("added 1" in line for line in lines) >= 3)  # watched again
    assert sum("is gone" in line for line in watcher.lines) == 1
    assert watcher.stop() == 0


def test_a_note_deleted_and_renamed(watcher: Watcher) -> None:
    corpus = corpus_of(watcher)
    os.rename(corpus / "good.md", corpus / "renamed.md")
    watcher.wait_for(lambda lines: any("added 1" in line and "removed 1" in line for line in lines))
    (corpus / "renamed.md").unlink()
    watcher.wait_for(lambda lines: any("indexed 0 notes" in line for line in lines))
    assert watcher.stop() == 0
