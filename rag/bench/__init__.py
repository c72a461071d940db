"""`rag bench`: speed and scale. :func:`run_bench` runs it; the parts are harness, notes, search,
baseline, synth, proxy, scale and report."""

from .run import run_bench

__all__ = ["run_bench"]
