"""How far a validation model's window medians lie from their own median (the measurement's
noise floor, which no predictor can beat), from the recorded `validate-table` runs.

    python tools/validation_noise.py        # reads tools/results/validate-*.json; seconds, no timing
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import RESULTS  # noqa: E402


def main() -> None:
    import numpy as np

    for path in sorted(RESULTS.glob("validate-*.json")):
        rows = json.loads(path.read_text())["rows"]
        spread = []
        for r in rows:
            w = np.asarray(r["window_measured"], float)
            spread.append(float(np.max(np.abs(w - np.median(w))) / np.median(w) * 100))
        print(f"{path.name}: {len(rows)} models, max |window - median| / median: median {np.median(spread):.1f} %, "
              f"p90 {np.percentile(spread, 90):.1f} %, max {max(spread):.1f} %")


if __name__ == "__main__":
    main()
