"""Summary statistics of run times: the one place the project's latency numbers are computed."""

from __future__ import annotations

import math

import numpy as np

# A 99th percentile from fewer runs is one or two samples: noise with a name.
P99_MIN_RUNS = 200


def summarize(times_ms: list[float]) -> dict:
    """runs, median/p90/p99/mean/std/min/max in ms, and spread = (p90 - p10) / median.

    p99_ms is None below P99_MIN_RUNS runs. Percentiles interpolate linearly
    (numpy's default), so a median of an even count is the mean of the middle two.
    """
    if not times_ms:
        raise ValueError("no run times to summarize")
    t = np.asarray(times_ms, dtype=float)
    p10, median, p90 = np.percentile(t, [10, 50, 90])
    return {
        "runs": int(t.size),
        "median_ms": float(median),
        "p90_ms": float(p90),
        "p99_ms": float(np.percentile(t, 99)) if t.size >= P99_MIN_RUNS else None,
        "mean_ms": float(t.mean()),
        "std_ms": float(t.std(ddof=1)) if t.size > 1 else 0.0,
        "min_ms": float(t.min()),
        "max_ms": float(t.max()),
        # Relative width of the central 80 %: the re-measure trigger of a table entry.
        "spread": float((p90 - p10) / median) if median > 0 else math.inf,
    }


def median(values: list[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float)))
