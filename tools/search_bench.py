"""The latency-constrained search end to end on SST-2, at one or more speed-ups over bert-base.

    python tools/search_bench.py --speedup 20                 # the default search (<= 60 min target)
    python tools/search_bench.py --speedup 10 40 --quick      # the other budgets, quick settings

Each run is `edgebert search` with the fine-tuned teacher (runs/teacher-sst2, from
tools/finetune_teacher.py) on the machine's shipped fp32 2-thread seq-128 table.
Recorded per run: the winner, its predicted latency, its latency measured beside
bert-base in one interleaved window (and whether the ratio lies in [0.9/X, 1/X]),
its SST-2 dev accuracy after the final distillation, and the wall time. Results go
to tools/results/search_<X>x[_quick].json and the README section `search`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import GLUE, REPO, RESULTS, environment, publish  # noqa: E402


def row(r: dict, x: float, quick: bool) -> str:
    b = r["best"]
    ratio = b["measured_ms"] / b["bert_base_measured_ms"]
    inside = 0.9 / x <= ratio <= 1 / x
    dev = b["dev"]
    acc = dev.get("accuracy", next(iter(dev.values())))
    return (f"| 1/{x:g}{' (quick)' if quick else ''} | {b['spec_summary']} | {b['predicted_ms']:.2f} | "
            f"{b['measured_ms']:.2f} / {b['bert_base_measured_ms']:.1f} | 1/{1 / ratio:.1f} "
            f"({'inside' if inside else 'outside'} [0.9/X, 1/X]) | {acc:.2%} | {r['trials']} ({r['evaluated']}) | "
            f"{r['seconds'] / 60:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speedup", type=float, nargs="+", default=[20.0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher", type=Path, default=REPO / "runs" / "teacher-sst2")
    ap.add_argument("--data", type=Path, default=GLUE)
    args = ap.parse_args()

    from edgebert.search.context import SearchConfig
    from edgebert.search.progressive import search

    for x in args.speedup:
        tag = f"{x:g}x{'_quick' if args.quick else ''}"
        out = REPO / "runs" / f"search-sst2-{tag}-seed{args.seed}"
        cfg = SearchConfig(teacher=str(args.teacher), task="sst2", data=str(args.data), out=str(out), speedup=x,
                           seed=args.seed, quick=args.quick)
        result = search(cfg, say=print)
        record = {"speedup": x, "quick": args.quick, "seed": args.seed, "environment": environment(), **result}
        path = RESULTS / f"search_{tag}.json"
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1, default=str))
        print(row(result, x, args.quick))

    rows = []
    for p in sorted(RESULTS.glob("search_*.json")):
        r = json.loads(p.read_text())
        rows.append(row(r, r["speedup"], r["quick"]))
    env = json.loads(sorted(RESULTS.glob("search_*.json"))[-1].read_text())["environment"]
    md = ("| budget | winner | predicted ms | measured ms / bert-base ms | measured ratio | SST-2 dev | trials "
          "(trained) | minutes |\n|---|---|---:|---:|---|---:|---:|---:|\n" + "\n".join(rows) +
          f"\n\nDevice: {env['device']}; `python tools/search_bench.py --speedup X [--quick]`, seed {args.seed}.")
    publish(RESULTS / "search_summary.json", {"rows": rows, "environment": env}, "search", md)


if __name__ == "__main__":
    main()
