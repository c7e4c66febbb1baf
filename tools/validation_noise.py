"""How far a validation model's window medians lie from their own median (the measurement's
noise floor, which no predictor can beat), from the recorded `validate-table` runs.

    python tools/validation_noise.py   # reads tools/results/[history/]validate-*.json; seconds, no timing

A run with 3k windows also splits into k disjoint three-window validations (windows 1-3, 4-6,
...): how far the ±5 % figure of a three-window validation moves by measurement alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import RESULTS  # noqa: E402


def within(rows: list[dict], windows: slice, pct: float) -> float:
    """Share of rows whose prediction lies within ±pct of the median over the given windows."""
    import numpy as np

    hits = [abs(r["predicted"] / np.median(r["window_measured"][windows]) - 1) * 100 <= pct for r in rows]
    return sum(hits) / len(rows)


def main() -> None:
    import numpy as np

    for path in sorted(RESULTS.glob("validate-*.json")) + sorted(RESULTS.glob("history/validate-*.json")):
        report = json.loads(path.read_text())
        rows, n = report["rows"], report["windows"]
        spread = []
        for r in rows:
            w = np.asarray(r["window_measured"], float)
            spread.append(float(np.max(np.abs(w - np.median(w))) / np.median(w) * 100))
        print(f"{path.name}: {len(rows)} models x {n} windows, max |window - median| / median: median "
              f"{np.median(spread):.1f} %, p90 {np.percentile(spread, 90):.1f} %, max {max(spread):.1f} %")
        if n >= 6:
            thirds = [slice(i, i + 3) for i in range(0, n - n % 3, 3)]
            print(f"  within ±5 / ±10 %: all {n} windows {within(rows, slice(None), 5):.0%} / "
                  f"{within(rows, slice(None), 10):.0%}; disjoint three-window validations "
                  + ", ".join(f"{within(rows, s, 5):.0%} / {within(rows, s, 10):.0%}" for s in thirds))


if __name__ == "__main__":
    main()
