"""Timing and process helpers for `rag bench`: timers, fresh worker processes, peak RSS.

Every heavy step runs in its own process (the `rag` CLI, or a spawned worker), so each peak RSS
belongs to one step and no measurement inherits another's warm caches. The machine is shared,
so each step also records the 1-minute load average it started under.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TypeVar

import numpy as np

from rag.eval.stats import percentiles
from rag.settings import ENVIRONMENT, IndexSettings

T = TypeVar("T")


def log(message: str) -> None:
    """One progress line on stderr, with the time and the machine's load."""
    load = os.getloadavg()[0]
    print(f"[bench {time.strftime('%H:%M:%S')} load {load:.1f}] {message}", file=sys.stderr, flush=True)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def settle(below: float = 1.0, at_most_s: float = 120.0) -> float:
    """Wait until the 1-minute load average is under ``below`` (or ``at_most_s`` passed); seconds
    waited. A step timed right after a long build would otherwise pay for the build's load, and
    a short step of one corpus be compared with the same step of another on a quieter machine."""
    started = time.perf_counter()
    while os.getloadavg()[0] >= below and time.perf_counter() - started < at_most_s:
        time.sleep(2.0)
    return round(time.perf_counter() - started, 1)


def peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mb() -> float:
    """This process's resident set now (Linux ``/proc``): what it holds, not what it once peaked at."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def dir_size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6, 2)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and its wall time in seconds."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def latency(samples_s: Sequence[float]) -> dict:
    """p50 / p95 / mean in milliseconds over ``n`` samples given in seconds."""
    ms = [s * 1000 for s in samples_s]
    return {**percentiles(ms, digits=2), "mean": round(float(np.mean(ms)), 2) if ms else None, "n": len(ms)}


def in_worker(fn: Callable[..., T], *args: object) -> tuple[T, float]:
    """``fn(*args)`` in a fresh spawned process: (its result, wall time including start-up)."""
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        result = pool.submit(fn, *args).result()
    return result, time.perf_counter() - start


@dataclass(frozen=True)
class Run:
    """One finished `rag` invocation, timed and measured from outside."""

    seconds: float
    peak_rss_mb: float
    stderr: str
    load_before: float

    @property
    def last_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


def index_env(index: IndexSettings) -> dict[str, str]:
    """The environment that makes a `rag` subprocess index with these settings (corpus and path
    go as flags, the contract's ``--corpus``/``--index``)."""
    env = {}
    for var, key in ENVIRONMENT.items():
        section, _, name = key.partition(".")
        if section == "index" and name not in ("corpus", "path"):
            value = getattr(index, name)
            if value is not None:
                env[var] = ",".join(value) if isinstance(value, tuple) else str(value)
    return env


def run_index(index: IndexSettings, cwd: Path | None = None) -> Run:
    """`rag index` as a user runs it (interpreter start and model loading included), with its own
    peak RSS from ``wait4``; a failure raises RuntimeError with the end of its stderr."""
    args = ["index", "--corpus", str(index.corpus), "--index", str(index.path)]
    env = {**os.environ, **index_env(index)}
    load = load_average()
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "rag.app.cli", *args], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if code:
        raise RuntimeError(f"rag {' '.join(args)} failed ({code}): {stderr.strip()[-500:]}")
    return Run(round(seconds, 2), round(usage.ru_maxrss / 1024, 1), stderr, load)


def write_report(out: Path, report: dict, markdown: str) -> None:
    """``out`` (JSON) and the same path with ``.md``: rewritten after every part of a bench, so an
    interrupted run still leaves what it measured."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown, encoding="utf-8")


def finish_report(report: dict, save: Callable[[], None], out: Path) -> None:
    """The last save of a bench run, with the load it ended under, and the line saying where it went."""
    report["machine"]["load_average_at_end"] = machine()["load_average_at_start"]
    save()
    log(f"wrote {out} and {out.with_suffix('.md')} in {report['total_seconds']:.0f}s")


def machine(env_keys: Sequence[str] = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")) -> dict:
    environ: Mapping[str, str] = os.environ
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "env": {k: environ[k] for k in env_keys if k in environ}}
