"""How far a validation model's window medians lie from their own median (the measurement's
noise floor, which no predictor can beat), from the recorded `validate-table` runs.

    python tools/validation_noise.py   # reads tools/results/[history/]validate-*.json; seconds, no timing

A run with 3k windows also splits into k disjoint three-window validations (windows 1-3, 4-6,
...): how far the ±5 % figure of a three-window validation moves by measurement alone. Then,
per table over all its validation runs, the signed error by hidden size: a bias that more
windows cannot remove.
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

    by_table: dict[str, list[dict]] = {}
    for path in sorted(RESULTS.glob("validate-*.json")) + sorted(RESULTS.glob("history/validate-*.json")):
        report = json.loads(path.read_text())
        # Errors pool only over validations priced by one predictor (records before v3 carry no version).
        by_table.setdefault((Path(report["table"]).name, report.get("predictor", 2)), []).extend(report["rows"])
        rows, n = report["rows"], report["windows"]
        spread = []
        for r in rows:
            w = np.asarray(r["window_measured"], float)
            spread.append(float(np.max(np.abs(w - np.median(w))) / np.median(w) * 100))
        print(f"{path.name}: {len(rows)} models x {n} windows, max |window - median| / median: median "
              f"{np.median(spread):.1f} %, p90 {np.percentile(spread, 90):.1f} %, max {max(spread):.1f} %")
        if all("window_speed" in r for r in rows):
            print(f"  {speed_dependence(rows)}")
        print(f"  signed error by hidden size: {bias_by_hidden(rows)}")
        if n >= 6:
            thirds = [slice(i, i + 3) for i in range(0, n - n % 3, 3)]
            print(f"  within ±5 / ±10 %: all {n} windows {within(rows, slice(None), 5):.0%} / "
                  f"{within(rows, slice(None), 10):.0%}; disjoint three-window validations "
                  + ", ".join(f"{within(rows, s, 5):.0%} / {within(rows, s, 10):.0%}" for s in thirds))
    print("the same architectures validated twice (same table, seed and predictor): are the errors the models'?")
    for a, b in repeated_pairs():
        print(f"  {a}: {b}")
    print("signed error (predicted - measured) by hidden size, median per band (models):")
    for (table, version), rows in sorted(by_table.items()):
        print(f"  {table}, predictor v{version} ({len(rows)} architectures): {bias_by_hidden(rows)}")
        print(f"    calibration models, measured / sum: {calibration_ratios(table)}")


def speed_dependence(rows: list[dict]) -> str:
    """The machine's speed in the run's windows (nominal canary ms / the window's canary ms) and how a
    model's canary-normalised window figure moves with it: the slope of log(window / the model's median)
    on log(speed), pooled over models (0: normalisation takes the machine's state out; 0.2: a window at
    speed 0.74 reads a model 6 % low)."""
    import numpy as np

    speed, level = [], []
    for r in rows:
        median = np.median(r["window_measured"])
        speed += [np.log(s) for s in r["window_speed"]]
        level += [np.log(v / median) for v in r["window_measured"]]
    speed, level = np.asarray(speed), np.asarray(level)
    slope = np.polyfit(speed, level, 1)[0] if speed.std() > 0 else float("nan")
    return (f"window speed median {np.exp(np.median(speed)):.2f} ({np.exp(speed.min()):.2f}-{np.exp(speed.max()):.2f}), "
            f"slope of the normalised figure on speed {slope:+.3f}; signed error median "
            f"{np.median([r['error_pct'] for r in rows]):+.1f} %")


def bias_by_hidden(rows: list[dict]) -> str:
    """Signed error (median, per cent) per band of hidden size, and its correlation with hidden."""
    import numpy as np

    err = np.array([r["error_pct"] for r in rows])
    hidden = np.array([r["spec"]["hidden"] for r in rows])
    bands = []
    for lo, hi in ((0, 200), (200, 400), (400, 600), (600, 10_000)):
        inside = (hidden >= lo) & (hidden < hi)
        if inside.any():
            label = f"hidden >= {lo}" if hi == 10_000 else f"{lo}-{hi - 1}"
            bands.append(f"{label}: {np.median(err[inside]):+.1f} % ({inside.sum()})")
    others = {
        "layers": [len(r["spec"]["layers"]) for r in rows],
        "mean stack": [np.mean([layer["stack"] for layer in r["spec"]["layers"]]) for r in rows],
        "share of standard FFNs": [np.mean([layer["ffn"] == "W2(gelu(W1(x)))" for layer in r["spec"]["layers"]])
                                   for r in rows],
        "factorised embedding": [float(r["spec"]["embedding"]["kind"] != "standard") for r in rows],
    }
    corr = ", ".join(f"{k} {np.corrcoef(np.asarray(v, float), err)[0, 1]:+.2f}" for k, v in others.items())
    return f"{'; '.join(bands)}; correlation with hidden {np.corrcoef(hidden, err)[0, 1]:+.2f} ({corr})"


def repeated_pairs() -> list[tuple[str, str]]:
    """(what, how far apart) for each pair of stored validations of one table on one seed by one predictor:
    the correlation of their per-model errors (near 1: the error belongs to the model, the predictor's;
    near 0: to the measurement) and the median |difference| of the errors."""
    import numpy as np

    reports: dict[tuple, list[tuple[str, list[dict]]]] = {}
    for path in sorted(RESULTS.glob("validate-*.json")) + sorted(RESULTS.glob("history/validate-*.json")):
        r = json.loads(path.read_text())
        reports.setdefault((Path(r["table"]).name, r["seed"], r.get("predictor", 2)), []).append((path.name, r["rows"]))
    out = []
    for (table, seed, _), runs in sorted(reports.items()):
        for i in range(len(runs)):
            for j in range(i + 1, len(runs)):
                ea = np.array([row["error_pct"] for row in runs[i][1]])
                eb = np.array([row["error_pct"] for row in runs[j][1]])
                if len(ea) != len(eb):
                    continue
                out.append((f"{table}, seed {seed} ({runs[i][0]} / {runs[j][0]})",
                            f"errors correlated {np.corrcoef(ea, eb)[0, 1]:.2f}, median |difference| "
                            f"{np.median(np.abs(ea - eb)):.1f} points over {len(ea)} architectures"))
    return out


def calibration_ratios(table_name: str) -> str:
    """measured / raw sum of the table's calibration models, by hidden size (what a * sum + b can fix)."""
    path = RESULTS.parent.parent / "latency_tables" / table_name
    if not path.exists():
        return "(table not shipped)"
    models = json.loads(path.read_text()).get("calibration", {}).get("models", [])
    return ", ".join(f"{m['model']} (h{m['spec']['hidden']}) {m['measured'] / m['sum']:.3f}"
                     for m in sorted(models, key=lambda m: m["spec"]["hidden"]) if m.get("sum"))



if __name__ == "__main__":
    main()
