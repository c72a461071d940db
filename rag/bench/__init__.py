"""`rag bench`: speed and scale. :func:`run_bench` runs it; the parts are harness, notes, search,
baseline, synth, proxy, scale and report. :func:`run_vault_bench` is `rag bench --vault N`: a
generated vault (vault) beside the bundled notes (vault_run, vault_report)."""

from .run import run_bench
from .vault_run import run_vault_bench

__all__ = ["run_bench", "run_vault_bench"]
