"""Where should a search winner's final distillation start? Each finished run's winner, distilled
again by the search's final recipe (`verify.final_distill`: the run's own settings and seed) from

- `extracted`: a fresh extraction from the teacher, as the search does now (extra stacked FFN
  sub-layers start as near-identities, `extract._pass_through_stack_layers`);
- `inherited`: its slice of the run's warmed-up supernet (`Supernet.sub_model`; weight
  inheritance, as AutoTinyBERT does),

beside the run's own recorded result (an earlier extraction, whose extra stacked sub-layers
started as noise).

    python tools/winner_start_ab.py --runs runs/superseded/search-sst2-10x_quick-seed0-one-window ...

Records tools/results/winner_start_ab.json and the README section `winner_start` (~4.5 min per
run and start with the quick recipe).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import GLUE, REPO, RESULTS, environment, publish  # noqa: E402

STARTS = ("extracted", "inherited")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, nargs="+", required=True, help="finished progressive search folders")
    ap.add_argument("--starts", nargs="+", choices=STARTS, default=list(STARTS))
    ap.add_argument("--teacher", type=Path, default=REPO / "runs" / "teacher-sst2")
    ap.add_argument("--data", type=Path, default=GLUE)
    ap.add_argument("--out-root", type=Path, default=REPO / "runs" / "winner-start-ab")
    args = ap.parse_args()

    from edgebert.arch import ArchSpec
    from edgebert.hub import save_model
    from edgebert.search.context import SearchConfig, build_context
    from edgebert.search.progressive import CONFIG_FILE, STATE_FILE, load_supernet
    from edgebert.search.verify import final_distill

    rows = []
    for run in args.runs:
        # The run's own settings; teacher and data where they are now (runs may have moved).
        settings = json.loads((run / CONFIG_FILE).read_text())
        cfg = SearchConfig.from_saved({**settings, "teacher": str(args.teacher), "data": str(args.data), "out": str(run)})
        state = json.loads((run / STATE_FILE).read_text())
        ctx = build_context(cfg, progress=False)
        best = state["verify"]["winner"]
        spec = ArchSpec.from_dict(best["spec"])
        row = {"run": run.name, "spec": best["spec"], "summary": spec.summary(), "recorded_dev": state["final"]["dev"]}
        for start in args.starts:
            out = args.out_root / run.name / start
            init_from = None
            if start == "inherited":
                init_from = out / "inherited"
                if not (init_from / "config.json").is_file():
                    save_model(load_supernet(ctx, state).sub_model(spec), init_from, trained_head=True)
            t0 = time.perf_counter()
            final = final_distill(replace(ctx, cfg=replace(cfg, out=str(out))), best, init_from=init_from,
                                  progress=False)
            row[f"{start}_dev"] = final["dev"]
            row[f"{start}_minutes"] = round((time.perf_counter() - t0) / 60, 1)
            print(f"{run.name}: {spec.summary()} recorded {row['recorded_dev']} -> {start} {final['dev']}", flush=True)
        rows.append(row)
        record = {"environment": environment(), "starts": args.starts, "rows": rows}
        publish(RESULTS / "winner_start_ab.json", record, "winner_start", table(record))


def table(record: dict) -> str:
    def acc(dev: dict | None) -> str:
        return f"{next(iter(dev.values())):.2%}" if dev else "—"

    starts = record["starts"]
    lines = [f"`python tools/winner_start_ab.py` — SST-2 dev after the search's final recipe; "
             f"{record['environment']['device']}", "",
             "| run | winner | FFN inner per layer | recorded (stacks started as noise) | "
             + " | ".join(f"{s}" for s in starts) + " |",
             "|---|---|---|---:|" + "---:|" * len(starts)]
    for r in record["rows"]:
        inner = ", ".join(f"{l['inner']}" + (f"x{l['stack']}" if l.get("stack", 1) > 1 else "")
                          for l in r["spec"]["layers"])
        lines.append(f"| {r['run']} | {r['summary']} | {inner} | {acc(r['recorded_dev'])} | "
                     + " | ".join(acc(r.get(f"{s}_dev")) for s in starts) + " |")
    if len(record["rows"]) > 1:
        import statistics

        def mean(key: str) -> str:
            vals = [next(iter(r[key].values())) for r in record["rows"] if r.get(key)]
            return f"{statistics.mean(vals):.2%}" if vals else "—"

        lines.append("| mean | | | " + mean("recorded_dev") + " | "
                     + " | ".join(mean(f"{s}_dev") for s in starts) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
