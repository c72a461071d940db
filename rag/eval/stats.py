"""The two summary statistics every report uses: a mean that skips "not applicable", and percentiles."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values (None: not applicable), or None when there are none."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def percentiles(values: Sequence[float], digits: int | None = None) -> dict[str, float | None]:
    """p50 and p95 (linear interpolation, as numpy), each None for an empty sample."""
    if not len(values):
        return {"p50": None, "p95": None}
    p50, p95 = (float(np.percentile(values, q)) for q in (50, 95))
    if digits is not None:
        p50, p95 = round(p50, digits), round(p95, digits)
    return {"p50": p50, "p95": p95}
