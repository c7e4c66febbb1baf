"""The hand-designed baseline the search must beat, at the same budget, with the same recipe.

    python tools/hand_baseline.py --speedup 20                   # default recipe (as the 1/20 search)
    python tools/hand_baseline.py --speedup 10 40 --quick --seeds 0 1 2

The family (fixed, as a practitioner would draw it): layers in {2, 3, 4, 6}, one hidden
size from the grid with heads of the teacher's head size (32), the standard GELU FFN with
inner 2x or 4x hidden. Its members predicted within 0.7-1.3 of the budget are measured
beside bert-base as the search's candidates are (`verify.measure_rows`: three interleaved
windows, each member's median window); those measured inside [0.9/X, 1/X] are scored
by the search's own held-out proxy (extraction, short KD, held-out split of the training
data: never the dev set), and the best is distilled by the search's final recipe
(`verify.final_distill`: the same warm-up and task KD, the same steps: `verify.final_stages`) and
scored on SST-2 dev. Records tools/results/search/<X>x[_quick]_hand-seed<S>.json, which
tools/search_bench.py lists beside the searched and random-search rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import GLUE, REPO, RESULTS, environment  # noqa: E402
from search_bench import run_path  # noqa: E402

LAYERS = (2, 3, 4, 6)
INNER_RATIOS = (2, 4)


def family(limits) -> list:
    from edgebert.arch import SPACE, ArchSpec

    out = []
    for hidden in SPACE.hidden_grid:
        heads = hidden // limits.head_size
        if hidden > limits.hidden or heads > limits.heads or heads not in SPACE.heads_grid:
            continue
        for layers in LAYERS:
            for r in INNER_RATIOS:
                if layers <= limits.layers and r * hidden <= limits.inner:
                    out.append(ArchSpec.uniform(layers=layers, hidden=hidden, heads=heads,
                                                head_size=limits.head_size, inner=r * hidden, **dict(limits.shared)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speedup", type=float, nargs="+", default=[20.0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--teacher", type=Path, default=REPO / "runs" / "teacher-sst2")
    ap.add_argument("--data", type=Path, default=GLUE)
    ap.add_argument("--out-root", type=Path, default=REPO / "runs")
    ap.add_argument("--results", type=Path, default=RESULTS / "search")
    args = ap.parse_args()

    import time

    from edgebert.files import atomic_write_json
    from edgebert.search.context import SearchConfig, build_context
    from edgebert.search.verify import final_distill, measure_rows

    for x in args.speedup:
        for seed in args.seeds:
            t0 = time.perf_counter()
            tag = f"{x:g}x{'_quick' if args.quick else ''}_hand-seed{seed}"
            cfg = SearchConfig(teacher=str(args.teacher), task="sst2", data=str(args.data),
                               out=str(args.out_root / f"search-sst2-{tag}"), speedup=x, seed=seed, quick=args.quick)
            ctx = build_context(cfg)
            members = [(s, ctx.latency(s)) for s in family(ctx.limits)]
            near = [(s, p) for s, p in members if 0.7 * ctx.budget_ms <= p <= 1.3 * ctx.budget_ms]
            if not near:
                print(f"1/{x:g}: no member of the family is predicted within 0.7-1.3 of {ctx.budget_ms:.2f} ms")
                continue
            rows = measure_rows(ctx, [{"spec": s.to_dict(), "predicted_ms": p} for s, p in near])
            measured = [{**r, "summary": f"{s.summary()} inner {s.layers[0].inner}"} for r, (s, _) in zip(rows, near)]
            inside = [m for m in measured if 0.9 <= m["budget_use"] <= 1.0]
            fitting = inside or sorted([m for m in measured if m["budget_use"] <= 1.0],
                                       key=lambda m: -m["budget_use"])[:1]
            for m in measured:
                print(f"  {m['summary']}: predicted {m['predicted_ms']:.2f} ms, measured {m['measured_ms']:.2f} ms "
                      f"= {m['budget_use']:.0%} of the budget")
            if not fitting:
                print(f"1/{x:g}: no member of the family measured within the budget")
                continue
            from edgebert.arch import ArchSpec

            for m in fitting:
                m["score"] = ctx.proxy_score(ArchSpec.from_dict(m["spec"]))
            best = max(fitting, key=lambda m: m["score"])
            final = final_distill(ctx, best)
            record = {"speedup": x, "quick": args.quick, "seed": seed, "strategy": "hand", "environment": environment(),
                      "out": cfg.out, "budget_ms": ctx.budget_ms, "family_measured": measured,
                      "best": {**best, "dev": final["dev"], "student": final["out"], "final_stages": final["stages"],
                               "spec_summary": best["summary"]},
                      "trials": len(fitting), "evaluated": len(fitting), "stages": {},
                      "seconds": round(time.perf_counter() - t0, 1)}
            atomic_write_json(run_path(args.results, tag, record["environment"]["fingerprint"]), record)
            acc = final["dev"].get("accuracy", next(iter(final["dev"].values())))
            print(f"1/{x:g} seed {seed}: hand-designed {best['summary']} measured {best['measured_ms']:.2f} ms "
                  f"= {best['budget_use']:.0%} of the budget, SST-2 dev {acc:.2%}")


if __name__ == "__main__":
    main()
