"""The search command."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgebert.cli.common import add_command, emit, progress


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "search", cmd_search,
        help="search the most accurate student within a latency budget on this device, then distil it",
        examples=(
            "  edgebert search --teacher runs/teacher-sst2 --task sst2 --data ../shared/data/glue --speedup 20\n"
            "  edgebert search --teacher T --task sst2 --data DIR --budget-ms 6 --quick --out runs/s6\n"
            "  edgebert search ... --workers 2                      # two local processes share the study\n"
            "  edgebert search ... --storage postgresql://u:p@host/db   # several machines\n"
            "  edgebert search ... (same command again)             # resumes after a crash\n"
        ),
    )
    p.add_argument("--teacher", required=True, help="a model with a trained head for the task (finetune-teacher)")
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True, help="GLUE folder (or the task's own)")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget-ms", type=float, help="latency budget in ms (the table's nominal speed)")
    budget.add_argument("--speedup", type=float, help="budget = bert-base's predicted latency / X")
    p.add_argument("--table", default=None, help="latency table (default: the one matching this machine)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/search-<task>-<budget>)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (PostgreSQL) shared by several machines")
    p.add_argument("--trials", type=int, default=12, help="candidates trained per stage (default 12; 3x for dims)")
    p.add_argument("--workers", type=int, default=1, help="local processes sharing each stage's study")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="fewer, shorter trials and a short final distillation")
    p.add_argument("--strategy", default="progressive", choices=["progressive", "random"],
                   help="progressive (default) or the random-search baseline")
    p.add_argument("--space", default=None, help="JSON file {\"expressions\": [...]}: the structure stage's pool")
    # None: the search's own default (search.space.DEFAULT_MIN_LAYERS), read without importing the
    # search space into every command's start-up.
    p.add_argument("--min-layers", type=int, default=None,
                   help="fewest encoder layers a candidate may have (default 2: one-layer students "
                        "rate well on the short proxy and distil badly, README 'the one-layer trap')")
    p.add_argument("--compare-with", default="bert-base",
                   help="zoo model measured beside the winner (default bert-base; 'none' with --budget-ms)")


def cmd_search(args: argparse.Namespace) -> None:
    from edgebert.search.context import SearchConfig
    from edgebert.search.progressive import search

    tag = f"{args.speedup:g}x" if args.speedup else f"{args.budget_ms:g}ms"
    out = args.out or Path("runs") / f"search-{args.task}-{tag}{'-quick' if args.quick else ''}"
    cfg = SearchConfig(teacher=args.teacher, task=args.task, data=args.data, out=str(out), budget_ms=args.budget_ms,
                       speedup=args.speedup, table=args.table, storage=args.storage, trials=args.trials,
                       workers=args.workers, seed=args.seed, quick=args.quick, strategy=args.strategy,
                       space_file=args.space, **({} if args.min_layers is None else {"min_layers": args.min_layers}),
                       compare_with=None if args.compare_with == "none" else args.compare_with)
    result = search(cfg, say=progress(args))

    def human(r):
        b = r["best"]
        lines = [f"budget {r['budget_ms']:.2f} ms (searched under {r['limit_ms']:.2f} ms predicted, as measured); "
                 f"best {b['spec_summary']}",
                 f"  measured {b['measured_ms']:.2f} ms vs bert-base {b['bert_base_measured_ms']:.2f} ms "
                 f"({b['bert_base_measured_ms'] / b['measured_ms']:.1f}x faster), predicted {b['predicted_ms']:.2f} ms",
                 f"  dev {b['dev']}", f"  student saved in {b['student']} (edgebert export {b['student']} ...)",
                 f"  {r['trials']} trials ({r['evaluated']} trained), {r['seconds']:.0f} s; Pareto front in {r['out']}/pareto.json"]
        return "\n".join(lines)

    emit(args, result, human)
