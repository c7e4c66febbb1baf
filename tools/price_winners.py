"""Recorded search winners priced by latency tables: how well does each table read a budget?

    python tools/price_winners.py --tables A.json B.json --labels 'old' 'new'

A search is budgeted as a share of bert-base (1/X), so what matters is how well a table
prices a student's latency *over bert-base's*, at the sizes searches pick. Every run
recorded in tools/results/search/ on the machine the tables were profiled on measured its
winner beside bert-base in one interleaved window; here each table prices the same ratio
from its entries, and the error is predicted share over measured share. Nothing is
measured, so the measured shares carry their own window's noise. Records
tools/results/price_winners.json and the README section `price_winners`.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import RESULTS, publish  # noqa: E402
from search_bench import budget_label, recorded_runs  # noqa: E402


def price(paths: list[Path], labels: list[str]) -> dict:
    from edgebert import zoo
    from edgebert.arch import ArchSpec
    from edgebert.device.fingerprint import machine_key
    from edgebert.errors import EdgebertError
    from edgebert.latency.predictor import predict
    from edgebert.latency.table import LatencyTable

    try:
        tables = [LatencyTable.load(p, check_device=False) for p in paths]
    except EdgebertError as e:
        raise SystemExit(str(e))
    machines = {machine_key(t.device) for t in tables}
    if len(machines) != 1:
        raise SystemExit("the tables were profiled on different machines; price one machine's runs at a time")
    machine = machines.pop()
    runs = [r for r in recorded_runs() if machine_key(r["environment"]["fingerprint"]) == machine]
    if not runs:
        raise SystemExit("no recorded search run was measured on the tables' machine")
    bert_base_ms = [predict(zoo.get("bert-base"), t).latency_ms for t in tables]
    rows = []
    for r in runs:
        best = r["best"]
        spec = ArchSpec.from_dict(best["spec"])
        measured = best["measured_ms"] / best["bert_base_measured_ms"]
        rows.append({"run": r["tag"], "budget": budget_label(r["speedup"], r["quick"]), "winner": spec.summary(),
                     "measured_share": measured,
                     "priced_over_measured": [predict(spec, t).latency_ms / b / measured
                                                  for t, b in zip(tables, bert_base_ms)]})
    return {"tables": [str(p) for p in paths], "labels": labels,
            "device": runs[0]["environment"]["device"], "rows": rows,
            "command": shlex.join(["python", "tools/price_winners.py", *sys.argv[1:]])}


def summary(record: dict) -> list[dict]:
    """Per table: the error of the priced share over the measured one across every run, in %."""
    out = []
    for i, label in enumerate(record["labels"]):
        errors = [100 * (r["priced_over_measured"][i] - 1) for r in record["rows"]]
        magnitudes = sorted(abs(e) for e in errors)
        out.append({"label": label, "runs": len(errors), "median_abs_pct": statistics.median(magnitudes),
                    "p90_abs_pct": magnitudes[int(0.9 * (len(magnitudes) - 1))], "max_abs_pct": magnitudes[-1],
                    "signed_median_pct": statistics.median(errors),
                    "within_5pct": sum(m <= 5 for m in magnitudes) / len(magnitudes)})
    return out


def markdown(record: dict) -> str:
    lines = ["| table | runs | within ±5 % | median abs % | p90 abs % | max abs % | signed median % |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for s in summary(record):
        lines.append(f"| {s['label']} | {s['runs']} | {s['within_5pct']:.0%} | {s['median_abs_pct']:.1f} | "
                     f"{s['p90_abs_pct']:.1f} | {s['max_abs_pct']:.1f} | {s['signed_median_pct']:+.1f} |")
    tables = ", ".join(f"{label} = `{path}`" for label, path in zip(record["labels"], record["tables"]))
    return ("\n".join(lines) + f"\n\n`{record['command']}`: every recorded search, hand-baseline and random-search "
            f"winner measured on {record['device']}, its share of bert-base priced by each table against the "
            f"share its run measured in one interleaved window; {tables}.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", type=Path, nargs="+", required=True)
    ap.add_argument("--labels", nargs="+", help="one per table (default: the file names)")
    args = ap.parse_args()
    labels = args.labels or [p.name for p in args.tables]
    if len(labels) != len(args.tables):
        raise SystemExit(f"{len(labels)} labels for {len(args.tables)} tables")
    for p in args.tables:
        if not p.is_file():
            raise SystemExit(f"no table {p}")
    record = price(args.tables, labels)
    for s in summary(record):
        print(f"{s['label']}: {s['runs']} runs, median |error| {s['median_abs_pct']:.1f} %, "
              f"max {s['max_abs_pct']:.1f} %, signed median {s['signed_median_pct']:+.1f} %")
    publish(RESULTS / "price_winners.json", record, "price_winners", markdown(record))


if __name__ == "__main__":
    main()
