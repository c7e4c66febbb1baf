"""Every recorded winner of one budget, timed together beside bert-base: a second look at the budget.

    python tools/remeasure_winners.py --speedup 20
    python tools/remeasure_winners.py --speedup 10 40 --quick --windows 5

Each search, hand-baseline and random-search run measured its own winner beside bert-base in
its own windows, minutes or hours apart, sometimes while other work shared the CPU. Here the
winners of every run recorded at a budget (tools/results/search/<X>x[_quick]*-seed*.json)
are timed in the same interleaved windows, with the table's settings and graph optimization,
through the search's own measurement (`verify.measure_beside`); each winner's share of the
budget is X times the median over windows of its time over bert-base's. Latency depends on
the architecture only, so the specs are enough (no weights are loaded). Records
tools/results/remeasure_winners.json (one entry per budget) and the README section
`remeasure_winners`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import RESULTS, environment, publish  # noqa: E402
from search_bench import budget_label, recorded_runs  # noqa: E402

RECORD = RESULTS / "remeasure_winners.json"


def runs_at(x: float, quick: bool) -> list[dict]:
    """The recorded runs (every strategy and seed) at budget 1/x."""
    return [r for r in recorded_runs() if r["speedup"] == x and r["quick"] == quick]


def remeasure(x: float, quick: bool, windows: int, runs: int) -> dict:
    from edgebert.arch import ArchSpec
    from edgebert.device.timing import default_threads
    from edgebert.latency.catalog import find_table
    from edgebert.search.verify import measure_beside

    recorded = runs_at(x, quick)
    if not recorded:
        raise SystemExit(f"no run recorded at {budget_label(x, quick)} in {RESULTS / 'search'}")
    table = find_table(threads=default_threads(), precision="fp32", seq_len=128, batch=1)
    specs = [ArchSpec.from_dict(r["best"]["spec"]) for r in recorded]
    rep = measure_beside("bert-base", specs, table, seq_len=128, runs=runs, windows=windows)
    reference = rep["reference"]
    rows = []
    for i, r in enumerate(recorded, start=1):
        t = rep[f"candidate{i}"]
        ratios = [m / b for m, b in zip(t.window_median_ms, reference.window_median_ms)]
        b = r["best"]
        rows.append({"run": r["tag"], "strategy": r["strategy"], "seed": r["seed"],
                     "winner": ArchSpec.from_dict(b["spec"]).summary(), "predicted_ms": b["predicted_ms"],
                     "window_ratios": ratios, "budget_use": x * statistics.median(ratios),
                     "recorded_budget_use": x * b["measured_ms"] / b["bert_base_measured_ms"],
                     "window_ms": t.window_median_ms})
    return {"speedup": x, "quick": quick, "windows": windows, "runs_per_window": runs, "table": table.name,
            "bert_base_window_ms": reference.window_median_ms, "rows": rows, "environment": environment()}


def markdown(entries: list[dict]) -> str:
    lines = ["| budget | run | winner | predicted ms | recorded share of the budget | "
             "share now (median; per window) | inside [0.9/X, 1/X] now |",
             "|---|---|---|---:|---:|---|---|"]
    for e in entries:
        for r in e["rows"]:
            inside = 0.9 <= r["budget_use"] <= 1.0
            per_window = ", ".join(f"{e['speedup'] * q:.0%}" for q in r["window_ratios"])
            lines.append(f"| {budget_label(e['speedup'], e['quick'])} | {r['run']} | {r['winner']} | "
                         f"{r['predicted_ms']:.2f} | {r['recorded_budget_use']:.0%} | {r['budget_use']:.0%} "
                         f"({per_window}) | {'yes' if inside else 'no'} |")
    last = entries[-1]
    bert = ", ".join(f"{ms:.1f}" for ms in last["bert_base_window_ms"])
    return ("\n".join(lines) + f"\n\n`python tools/remeasure_winners.py --speedup X [--quick]`: every recorded "
            f"winner of a budget and bert-base interleaved in {last['windows']} windows of "
            f"{last['runs_per_window']} runs each (bert-base {bert} ms in the last budget's windows); "
            f"{last['environment']['device']}.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speedup", type=float, nargs="+", default=[20.0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--runs", type=int, default=10, help="timed runs per model per window")
    args = ap.parse_args()

    store = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    for x in args.speedup:
        entry = remeasure(x, args.quick, args.windows, args.runs)
        store[f"{x:g}x{'_quick' if args.quick else ''}"] = entry
        for r in entry["rows"]:
            print(f"1/{x:g} {r['run']}: {r['winner']} {r['budget_use']:.0%} of the budget now "
                  f"({r['recorded_budget_use']:.0%} recorded)")
    entries = sorted(store.values(), key=lambda e: (e["speedup"], e["quick"]))
    publish(RECORD, store, "remeasure_winners", markdown(entries))


if __name__ == "__main__":
    main()
