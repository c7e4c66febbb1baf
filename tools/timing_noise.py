"""Where a window's figure moves: the session, the moment, or the model's size against the canary.

    python tools/timing_noise.py [--windows 8] [--runs 60] [--rounds 10]
    python tools/timing_noise.py --summary-only    # the README section again, from the record

A validation model's canary-normalised median moves ~5 % from window to window
(tools/validation_noise.py), and a ±5 % validation cannot be judged through
that. This asks why, with zoo models of four sizes, each opened *twice* in the
same worker (two sessions of one ONNX file, timed interleaved):

- twin gap: |a / b - 1| of the two sessions' medians in one window. Same file,
  same moment: whatever separates them belongs to the session (where its
  buffers landed), not to the machine's speed.
- across windows: the spread of one session's canary-normalised median over
  the windows (what validation sees), next to the spread of its median over a
  same-window reference of its own size class (its twin's partner model).
- within a window: the spread of its per-burst canary ratios over the rounds.

Spreads are max |x / median - 1| over windows (as tools/validation_noise.py)
and the median absolute deviation in per cent. Results go to
tools/results/timing_noise.json and the README section `timing_noise`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import RESULTS, environment, publish, republish  # noqa: E402

MODELS = ("bert-tiny", "tinybert-4", "minilm-l6-h384", "minilm-l12-h384")


def shipped_table_workloads(names_specs: list, *, precision: str = "fp32") -> tuple:
    """(this machine's shipped 2-thread seq-128 table of that precision, a Workload per (name, spec)
    exported as that table decided: random weights, batch 1, seq 128)."""
    from edgebert.device.timing import Workload
    from edgebert.export import cached_export, model_inputs
    from edgebert.latency.catalog import find_table

    table = find_table(threads=2, seq_len=128, batch=1, precision=precision)
    graph_opt = table.settings.get("graph_optimization", "none")
    out = []
    for name, spec in names_specs:
        _, path = cached_export(name, spec=spec, int8=precision == "int8", graph_optimization=graph_opt)
        out.append(Workload(name, path, model_inputs(spec, 1, 128)))
    return table, out


def spread_pct(values) -> dict:
    import numpy as np

    v = np.asarray(values, float)
    rel = v / np.median(v) - 1
    return {"max_pct": float(100 * np.max(np.abs(rel))), "mad_pct": float(100 * np.median(np.abs(rel)))}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--summary-only", action="store_true", help="rewrite the README section from the record")
    args = parser.parse_args(argv)
    if args.summary_only:
        return republish(RECORD, "timing_noise", markdown)

    import numpy as np

    from edgebert import zoo
    from edgebert.device.timing import TimingPolicy, measure

    table, models = shipped_table_workloads([(name, zoo.get(name)) for name in MODELS])
    workloads = [replace(w, name=f"{w.name}/{twin}") for w in models for twin in ("a", "b")]
    policy = TimingPolicy(threads=2, warmup=3, runs=args.runs, rounds=args.rounds, windows=args.windows)
    report = measure(workloads, policy=policy, nominal_canary_ms=table.nominal_canary_ms)

    rows = []
    for i, name in enumerate(MODELS):
        a, b = report[f"{name}/a"], report[f"{name}/b"]
        twin_gap = [abs(x / y - 1) * 100 for x, y in zip(a.window_median_ms, b.window_median_ms)]
        # A reference of the same size class: the neighbouring model, its first session.
        ref = report[f"{MODELS[i - 1 if i else 1]}/a"]
        ratio_to_ref = [x / y for x, y in zip(a.window_median_ms, ref.window_median_ms)]
        rows.append({
            "model": name,
            "median_ms": a.median_ms,
            "twin_gap_pct": {"median": float(np.median(twin_gap)), "max": float(np.max(twin_gap))},
            "canary_normalised": spread_pct(a.window_normalised),
            "twin_b_canary_normalised": spread_pct(b.window_normalised),
            "raw_ms": spread_pct(a.window_median_ms),
            "ratio_to_neighbour": {"neighbour": ref.name, **spread_pct(ratio_to_ref)},
            "per_window": {"a_over_b": [x / y for x, y in zip(a.window_median_ms, b.window_median_ms)],
                           "a_normalised": a.window_normalised, "b_normalised": b.window_normalised},
        })
    result = {
        "environment": environment(),
        "command": "python tools/timing_noise.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "policy": policy.to_dict(),
        "canary_ms_per_window": [w.canary_median_ms for w in report.windows],
        "foreign_load_per_window": [w.foreign_load for w in report.windows],
        "rows": rows,
    }
    publish(RECORD, result, "timing_noise", markdown(result))
    return result


def markdown(result: dict) -> str:
    p = result["policy"]
    lines = ["| model | median ms | twin gap, median / max % | canary-normalised over windows, max / MAD % "
             "(twin b) | raw ms over windows, max / MAD % | over a neighbour model, max / MAD % |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        c, b, raw, nb = (r[k] for k in ("canary_normalised", "twin_b_canary_normalised", "raw_ms",
                                        "ratio_to_neighbour"))
        lines.append(f"| {r['model']} | {r['median_ms']:.2f} | {r['twin_gap_pct']['median']:.1f} / "
                     f"{r['twin_gap_pct']['max']:.1f} | {c['max_pct']:.1f} / {c['mad_pct']:.1f} "
                     f"({b['max_pct']:.1f} / {b['mad_pct']:.1f}) | {raw['max_pct']:.1f} / {raw['mad_pct']:.1f} | "
                     f"{nb['max_pct']:.1f} / {nb['mad_pct']:.1f} ({nb['neighbour'].split('/')[0]}) |")
    canary = ", ".join(f"{c:.2f}" for c in result["canary_ms_per_window"])
    lines.append(f"\n`{result['command'].strip()}`: each model opened twice in one worker, {p['windows']} windows "
                 f"x {p['rounds']} rounds, {p['runs']} runs per session; canary {canary} ms per window; "
                 f"{result['environment']['device']}.")
    return "\n".join(lines)


RECORD = RESULTS / "timing_noise.json"


if __name__ == "__main__":
    main()
