"""What the budget-bounded sandwich saves: supernet warm-up seconds per step, the whole stage's
sandwich (supernet version 1) against the one within the search's latency bound (version 2),
on one recorded search's structure, interleaved in one process.

    python tools/sandwich_ab.py                                    # quick 1/10 seed 0's structure, ~3 min
    python tools/sandwich_ab.py --search runs/search-sst2-20x_min2layers-seed0
    python tools/sandwich_ab.py --summary-only                     # README section again, from the record

Each round runs --steps warm-up steps of each variant on the same supernet (the order alternates
between rounds: the machine's speed drifts by up to 2x within a minute); the figure is the median
over rounds of seconds per step, and their ratio. The bound is the search's own
(progressive.SUPERNET_HEADROOM x its calibrated limit). Records tools/results/sandwich_ab.json and
the README section `sandwich_ab`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import REPO, RESULTS, environment, publish, republish  # noqa: E402

VARIANTS = ("whole stage (v1)", "within the bound (v2)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--search", type=Path, default=REPO / "runs" / "search-sst2-10x_quick_min2layers-seed0")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8, help="warm-up steps per variant and round")
    ap.add_argument("--summary-only", action="store_true", help="rewrite the README section from the record")
    args = ap.parse_args()
    path = RESULTS / "sandwich_ab.json"
    if args.summary_only:
        republish(path, "sandwich_ab", table)
        return

    from edgebert.arch import ArchSpec
    from edgebert.files import read_json
    from edgebert.search.context import SearchConfig, build_context
    from edgebert.search.progressive import CONFIG_FILE, STATE_FILE, SUPERNET_HEADROOM, use_calibration
    from edgebert.search.space import DimensionStage
    from edgebert.search.supernet import Supernet

    if not (args.search / STATE_FILE).is_file() or not (args.search / CONFIG_FILE).is_file():
        raise SystemExit(f"{args.search}: no search there (its {CONFIG_FILE} and {STATE_FILE}); "
                         "give --search a folder of `edgebert search` or tools/search_bench.py")
    cfg = SearchConfig.from_saved(read_json(args.search / CONFIG_FILE, "search config"))
    state = read_json(args.search / STATE_FILE, "search state")
    if "spec" not in state["stages"].get("structure", {}):
        raise SystemExit(f"{args.search}: its structure stage has not finished; the supernet is built on its winner")
    ctx = build_context(cfg, progress=False)
    use_calibration(ctx, state)
    structure = ArchSpec.from_dict(state["stages"]["structure"]["spec"])
    net = Supernet.build(ctx.teacher.model, DimensionStage(structure, ctx.limits), ctx.mapping(structure), ctx.order)
    bound = SUPERNET_HEADROOM * ctx.limit_ms
    sandwiches = {VARIANTS[0]: {}, VARIANTS[1]: {"cost": ctx.latency, "bound": bound}}
    per_step = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        for v in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
            t0 = time.perf_counter()
            net.warm_up(ctx.train_enc, ctx.teacher_train, steps=args.steps, seed=r, progress=False, **sandwiches[v])
            per_step[v].append((time.perf_counter() - t0) / args.steps)
        print(f"round {r}: " + ", ".join(f"{v} {per_step[v][-1]:.3f} s/step" for v in VARIANTS))
    medians = {v: statistics.median(s) for v, s in per_step.items()}
    record = {
        "environment": environment(), "search": str(args.search.relative_to(REPO)) if args.search.is_relative_to(REPO)
        else str(args.search), "structure": structure.summary(), "limit_ms": ctx.limit_ms, "bound_ms": bound,
        "largest": {VARIANTS[0]: ctx.latency(net.top()), VARIANTS[1]: ctx.latency(net.top(ctx.latency, bound))},
        "rounds": args.rounds, "steps": args.steps, "seconds_per_step": per_step, "median": medians,
        "ratio": medians[VARIANTS[1]] / medians[VARIANTS[0]], "recorded": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(f"within the bound / whole stage: {record['ratio']:.3f}")
    publish(path, record, "sandwich_ab", table(record))


def table(record: dict) -> str:
    device = record["environment"]["device"]
    lines = [f"`python tools/sandwich_ab.py` — supernet warm-up seconds per step, {record['rounds']} rounds of "
             f"{record['steps']} steps per variant, interleaved, {record['recorded']}; {device}; the structure of "
             f"`{record['search']}` ({record['structure']}), limit {record['limit_ms']:.2f} ms predicted, "
             f"bound {record['bound_ms']:.2f} ms",
             "", "| sandwich | its largest point, predicted ms | median s/step | range s/step |", "|---|---:|---:|---|"]
    for v in VARIANTS:
        s = record["seconds_per_step"][v]
        lines.append(f"| {v} | {record['largest'][v]:.2f} | {record['median'][v]:.3f} | {min(s):.3f}–{max(s):.3f} |")
    lines += ["", f"Within the bound / whole stage: **{record['ratio']:.2f}** (median over rounds)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
