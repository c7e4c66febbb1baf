"""Latency beats parameters as the constraint: how often a parameter-budgeted search's picks
break or waste a latency budget (EfficientBERT constrained the parameter count).

    python tools/param_ablation.py                      # speed-ups 10, 20, 40; ~5 min
    python tools/param_ablation.py --speedup 20 --measure 4

For each speed-up X, the latency budget is bert-base's latency / X. A search that maximises
accuracy fills its budget, so the picks of a parameter-constrained search are modelled as
the architectures of the search space (the SST-2 teacher's limits, random MLP expressions,
stacks 1-4) whose parameter count lies in [0.9 P, P]; a latency-constrained search's picks
lie in [0.9/X, 1/X] of bert-base's latency by construction (and by measurement: see
tools/search_bench.py). Two parameter budgets P:
- naive: bert-base's parameters / X (a "X times smaller" target, as EfficientBERT reports);
- best case: the P, among all the sample's parameter counts, that puts the largest share of
  its picks inside [0.9/X, 1/X] of bert-base's *predicted* latency — a parameter budget tuned
  with hindsight of the latency table.
For each, the share of picks whose predicted latency breaks the budget (> 1/X) or wastes it
(< 0.9/X). Then `--measure N` of the best-case picks per budget are exported and measured
beside bert-base in one interleaved window, to check the predicted verdicts by measurement.
Records tools/results/param_ablation.json (param_ablation@<machine>.json when that holds another
machine's run) and the README section `param_ablation`, one table per machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import REPO, RESULTS, environment, publish  # noqa: E402
from readme_section import REGENERATED_HERE  # noqa: E402
from search_bench import by_machine, run_path  # noqa: E402


def verdicts(latencies: list[float], budget: float) -> dict[str, float | None]:
    if not latencies:  # nothing in the space is that small
        return {"picks": 0, "break": None, "waste": None, "inside": None}
    n = len(latencies)
    broke = sum(l > budget for l in latencies) / n
    wasted = sum(l < 0.9 * budget for l in latencies) / n
    return {"picks": len(latencies), "break": broke, "waste": wasted, "inside": 1.0 - broke - wasted}


def pct(share: float | None) -> str:
    return "—" if share is None else f"{share:.0%}"


def shares(v: dict) -> str:
    if not v["picks"]:
        return "no architecture of the space has so few parameters"
    return f"{v['picks']} picks, break {pct(v['break'])}, waste {pct(v['waste'])}, inside {pct(v['inside'])}"


def picks_under(sample: list[dict], params: float) -> list[dict]:
    return [a for a in sample if 0.9 * params <= a["params"] <= params]


def main() -> None:
    from edgebert import zoo
    from edgebert.latency.catalog import find_table
    from edgebert.latency.predictor import predict
    from edgebert.search.space import JointRandomStage
    from edgebert.search.space import Limits, check_point, expression_pool
    from edgebert.search.verify import measure_beside
    from edgebert.specs import resolve_spec

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speedup", type=float, nargs="+", default=[10.0, 20.0, 40.0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--measure", type=int, default=6, help="best-case picks measured per budget (0: none)")
    ap.add_argument("--teacher", default=str(REPO / "runs" / "teacher-sst2"))
    args = ap.parse_args()

    table = find_table(threads=2, precision="fp32", seq_len=128, batch=1)
    seq = table.settings["seq_lens"][0]
    limits = Limits.of(resolve_spec(args.teacher))
    stage = JointRandomStage(limits, expression_pool())
    rng = random.Random(args.seed)
    sample, seen = [], set()
    for _ in range(args.samples):
        _, spec = stage.sample(rng)
        spec = check_point(spec, limits)
        if spec.key() not in seen:
            seen.add(spec.key())
            sample.append({"spec": spec, "params": spec.param_count(),
                           "predicted_ms": predict(spec, table, seq_len=seq, batch=1).latency_ms})
    bert = zoo.get("bert-base")
    bert_ms = predict(bert, table, seq_len=seq, batch=1).latency_ms
    bert_params = bert.param_count()
    print(f"{len(sample)} distinct architectures; bert-base {bert_params / 1e6:.1f} M parameters, "
          f"{bert_ms:.1f} ms predicted on {table.name}")

    rows = []
    for x in args.speedup:
        budget = bert_ms / x
        naive_p = bert_params / x
        naive = verdicts([a["predicted_ms"] for a in picks_under(sample, naive_p)], budget)
        best_p = max(sorted({a["params"] for a in sample}),
                     key=lambda p: (verdicts([a["predicted_ms"] for a in picks_under(sample, p)], budget)["inside"]
                                    if len(picks_under(sample, p)) >= 10 else -1.0))  # 10+ picks: not luck
        best_picks = picks_under(sample, best_p)
        best = verdicts([a["predicted_ms"] for a in best_picks], budget)
        lat = [a["predicted_ms"] for a in best_picks]
        row = {"speedup": x, "budget_ms": budget, "naive_params": naive_p, "naive": naive,
               "best_params": best_p, "best": best, "best_latency_span": max(lat) / min(lat)}
        if args.measure and best_picks:
            chosen = random.Random(args.seed + int(x)).sample(best_picks, min(args.measure, len(best_picks)))
            rep = measure_beside("bert-base", [a["spec"] for a in chosen], table, seq_len=seq)
            ref = rep["reference"].median_ms
            ratios = [rep[f"candidate{i}"].median_ms / ref for i in range(1, len(chosen) + 1)]
            row["measured"] = {"bert_base_ms": ref, "ratios": ratios, **verdicts(ratios, 1.0 / x),
                               "specs": [a["spec"].summary() for a in chosen]}
        rows.append(row)
        print(f"1/{x:g}: naive P {naive_p / 1e6:.1f} M -> {shares(naive)}; best-case P {best_p / 1e6:.2f} M -> "
              f"{shares(best)}" + (f"; measured: {shares(row['measured'])}" if "measured" in row else ""))

    record = {"environment": environment(), "table": table.name, "samples": len(sample), "seed": args.seed,
              "bert_base_predicted_ms": bert_ms, "bert_base_params": bert_params, "rows": rows}
    path = run_path(RESULTS, "param_ablation", record["environment"]["fingerprint"])
    others = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("param_ablation*.json")) if p != path]
    publish(path, record, "param_ablation", summary(others + [record]))


def summary(records: list[dict]) -> str:
    """One table per machine, this machine's first (each priced on its own machine's table)."""
    return "\n\n".join(markdown(r, here) for here, group in by_machine(records) for r in group)


def markdown(record: dict, here: bool) -> str:
    lines = [f"`python tools/param_ablation.py` — {record['samples']} random architectures of the search space "
             f"(seed {record['seed']}), latency predicted on `{record['table']}`; {record['environment']['device']}"
             + (REGENERATED_HERE if here else ""), "",
             "| budget | naive P (bert-base/X) | picks | break | waste | best-case P | picks | break | waste | "
             "inside | slowest / fastest pick | measured picks: break / waste |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        n, b, m = r["naive"], r["best"], r.get("measured")
        meas = f"{m['picks']}: {pct(m['break'])} / {pct(m['waste'])}" if m else "—"
        lines.append(f"| 1/{r['speedup']:g} | {r['naive_params'] / 1e6:.1f} M | {n['picks']} | {pct(n['break'])} | "
                     f"{pct(n['waste'])} | {r['best_params'] / 1e6:.2f} M | {b['picks']} | {pct(b['break'])} | "
                     f"{pct(b['waste'])} | {pct(b['inside'])} | {r['best_latency_span']:.1f}x | {meas} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
