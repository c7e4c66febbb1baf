"""Should the search's winner start its final distillation from its slice of the supernet?

    python tools/inheritance_ab.py --runs runs/search-sst2-10x_quick-seed0 runs/search-sst2-10x_quick-seed1 ...

For each finished search run: its winner, distilled by the search's final recipe
(`verify.final_distill`, the run's own settings and seed) starting from the winner's
slice of the warmed-up supernet (`Supernet.sub_model`, weight inheritance as in
AutoTinyBERT), against the run's own final result, which started from a fresh
extraction from the teacher. Records tools/results/inheritance_ab.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import GLUE, REPO, RESULTS, environment  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, nargs="+", required=True, help="finished progressive search folders")
    ap.add_argument("--teacher", type=Path, default=REPO / "runs" / "teacher-sst2")
    ap.add_argument("--data", type=Path, default=GLUE)
    ap.add_argument("--out-root", type=Path, default=REPO / "runs" / "inheritance-ab")
    args = ap.parse_args()

    from edgebert.arch import ArchSpec
    from edgebert.files import atomic_write_json
    from edgebert.hub import save_model
    from edgebert.search.context import SearchConfig, build_context
    from edgebert.search.progressive import CONFIG_FILE, STATE_FILE, load_supernet
    from edgebert.search.verify import final_distill

    rows = []
    for run in args.runs:
        # The run's own settings; teacher and data where they are now (runs may have moved).
        settings = json.loads((run / CONFIG_FILE).read_text())
        cfg = SearchConfig(**{**settings, "teacher": str(args.teacher), "data": str(args.data), "out": str(run)})
        state = json.loads((run / STATE_FILE).read_text())
        ctx = build_context(cfg, progress=False)
        best = state["verify"]["winner"]
        spec = ArchSpec.from_dict(best["spec"])
        out = args.out_root / run.name
        start = out / "inherited"
        if not (start / "config.json").is_file():
            save_model(load_supernet(ctx, state).sub_model(spec), start, trained_head=True)
        t0 = time.perf_counter()
        final = final_distill(replace(ctx, cfg=replace(cfg, out=str(out))), best, init_from=start, progress=False)
        row = {"run": run.name, "spec": best["spec"], "summary": spec.summary(),
               "extracted_dev": state["final"]["dev"], "inherited_dev": final["dev"],
               "minutes": round((time.perf_counter() - t0) / 60, 1)}
        rows.append(row)
        print(f"{run.name}: {spec.summary()} extracted {row['extracted_dev']} -> inherited {row['inherited_dev']}")
    atomic_write_json(RESULTS / "inheritance_ab.json", {"environment": environment(), "rows": rows})


if __name__ == "__main__":
    main()
