"""The latency-constrained search end to end on SST-2, at one or more speed-ups over bert-base.

    python tools/search_bench.py --speedup 20                 # the default search (<= 60 min target)
    python tools/search_bench.py --speedup 10 40 --quick      # the other budgets, quick settings
    python tools/search_bench.py --speedup 40 --quick --seeds 0 1 2 --reverify   # finished runs, verified again
    python tools/search_bench.py --speedup 40 --quick --min-layers 1   # one-layer candidates too (the default: 2)

Each run is `edgebert search` with the fine-tuned teacher (runs/teacher-sst2, from
tools/finetune_teacher.py) on the machine's shipped fp32 2-thread seq-128 table.
Recorded per run: the winner, its predicted latency, its latency measured beside
bert-base in one interleaved window (and whether the ratio lies in [0.9/X, 1/X]),
its SST-2 dev accuracy after the final distillation, and the wall time. Results go
to tools/results/search/<X>x[_quick][_random][_min<N>layers]-seed<S>.json (no _min part: one layer, as
every run before the default became two) and the README section `search`,
which lists every recorded run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import GLUE, REPO, RESULTS, environment, publish  # noqa: E402
from readme_section import REGENERATED_HERE  # noqa: E402


def ffns(spec: dict) -> str:
    """Each layer's FFN in brief: inner size, x stack depth when stacked, * when not the standard GELU FFN."""
    from edgebert.arch import ArchSpec
    from edgebert.mlp import STANDARD_FFN, canonical

    return ", ".join(f"{l.inner}{f'x{l.stack}' if l.stack > 1 else ''}{'' if canonical(l.ffn) == STANDARD_FFN else '*'}"
                     for l in ArchSpec.from_dict(spec).layers)


def budget_label(speedup: float, quick: bool) -> str:
    """'1/20', or '1/40 (quick)' for a run with the quick settings."""
    return f"1/{speedup:g}{' (quick)' if quick else ''}"


def row(r: dict) -> str:
    b, x = r["best"], r["speedup"]
    ratio = b["measured_ms"] / b["bert_base_measured_ms"]
    inside = 0.9 / x <= ratio <= 1 / x
    acc = accuracy(r)
    refits = sum(1 for k in r["stages"] if k.startswith("refit"))
    from edgebert.arch import ArchSpec

    winner = ArchSpec.from_dict(b["spec"]).summary()  # the FFN column carries the inner sizes
    return (f"| {budget_label(x, r['quick'])} | {strategy_of(r)} | {r['seed']} | {winner} | {ffns(b['spec'])} | "
            f"{b['predicted_ms']:.2f} | {b['measured_ms']:.2f} / {b['bert_base_measured_ms']:.1f} | "
            f"1/{1 / ratio:.1f} = {ratio * x:.0%} of budget ({'inside' if inside else 'outside'} [0.9/X, 1/X]) | "
            f"{refits} | {final_steps(b)} | {acc:.2%} | {r['trials']} ({r['evaluated']}) | {r['seconds'] / 60:.1f} |")


# What each earlier version of the search space (space.SPACE_VERSION) and of verification
# (verify.VERIFY_VERSION) did differently, as run labels.
EARLIER_SPACES = {1: "any head count"}
EARLIER_VERIFICATION = {1: "first-fit verification"}
# Where a run verified by an earlier version keeps its record once verified again (--reverify).
VERIFICATION_SUFFIX = {1: "first-fit"}


def strategy_of(r: dict) -> str:
    """The run's strategy, marked when it searched an earlier version of the space, with another
    --min-layers than today's default, or verified its candidates the earlier way (the hand family
    has its own measurement)."""
    from edgebert.search.space import DEFAULT_MIN_LAYERS, SPACE_VERSION, UNRECORDED_MIN_LAYERS
    from edgebert.search.verify import VERIFY_VERSION

    if r["strategy"] not in ("progressive", "random"):
        return r["strategy"]
    if (space := r.get("space_version", 1)) != SPACE_VERSION:  # (earlier spaces had no --min-layers: one layer)
        return f"{r['strategy']} ({EARLIER_SPACES[space]})"
    if (layers := r.get("min_layers", UNRECORDED_MIN_LAYERS)) != DEFAULT_MIN_LAYERS:
        return f"{r['strategy']} (≥ {layers} layer{'s' if layers > 1 else ''})"
    if (verification := r.get("verify_version", 1)) != VERIFY_VERSION:
        return f"{r['strategy']} ({EARLIER_VERIFICATION[verification]})"
    return r["strategy"]


def final_steps(best: dict) -> str:
    """The final distillation's steps, warm-up + task (a † when the backstop clock cut a stage short)."""
    stages = best.get("final_stages")
    if not stages:
        return "—"
    return " + ".join(f"{s['steps']}{'†' if s.get('stopped_by_time') else ''}" for s in stages)


def accuracy(r: dict) -> float:
    dev = r["best"]["dev"]
    return dev.get("accuracy", next(iter(dev.values())))


def recorded_runs() -> list[dict]:
    """Every run recorded in tools/results/search/ (one JSON per run), each with its file's tag."""
    return [{**json.loads(p.read_text()), "tag": p.stem} for p in sorted((RESULTS / "search").glob("*.json"))]


# Earlier versions' runs, kept under tools/results/search/history/<tag>-<suffix>.json for comparison.
EARLIER = {
    "any-heads": EARLIER_SPACES[1],
    VERIFICATION_SUFFIX[1]: EARLIER_VERIFICATION[1],
    "timecapped": "before the step-counted quick recipe and the margin rule",
    "uncalibrated": "before budget calibration",
    "one-window": "before three-window verification and the margin rule",
    "supernet1": "whole-stage supernet warm-up",  # supernet.SUPERNET_VERSION 1
}


def earlier_records() -> list[dict]:
    out = []
    for suffix, label in EARLIER.items():
        for path in sorted((RESULTS / "search" / "history").glob(f"*-{suffix}.json")):
            r = json.loads(path.read_text())
            out.append({**r, "strategy": f"{r['strategy']} ({label})"})
    return out


def comparison(records: list[dict]) -> str:
    """One row per strategy (and earlier version), one column per budget: SST-2 dev mean ± std (seeds)."""
    import statistics

    budgets = sorted({(r["speedup"], r["quick"]) for r in records})
    strategies = list(dict.fromkeys(["progressive", "hand", "random"] + [strategy_of(r) for r in records]))
    lines = ["| strategy | " + " | ".join(budget_label(x, q) for x, q in budgets) + " |",
             "|---|" + "---:|" * len(budgets)]
    for strategy in strategies:
        cells = []
        for budget in budgets:
            accs = [accuracy(r) for r in records if (r["speedup"], r["quick"]) == budget and strategy_of(r) == strategy]
            std = f" ± {statistics.stdev(accs):.2%}" if len(accs) > 1 else ""
            cells.append(f"{statistics.mean(accs):.2%}{std} ({len(accs)})" if accs else "—")
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(records: list[dict]) -> str:
    """The searched winner against each baseline, paired: the same machine, budget and seed (the same
    final-distillation seed). Differences of SST-2 dev accuracy pool fairly over machines where the
    accuracies themselves would not; per budget and over all: pairs, mean difference with a 95 %
    t-interval, and how many pairs the search won, tied and lost. Only runs of this code's space and
    verification count (strategy_of); a search with another --min-layers than the default meets the hand
    design and the random search of its own space."""
    from edgebert.device.fingerprint import machine_key

    def key(r: dict) -> tuple:
        return machine_key(r["environment"]["fingerprint"]), r["speedup"], r["quick"], r["seed"]

    lines = ["| search | against | budget | pairs | mean difference, points | 95 % interval | search better / tie / worse |",
             "|---|---|---|---:|---:|---|---|"]
    # The default space, then each other depth floor (--min-layers) against its own random search.
    spaces = sorted({s for r in records if (s := strategy_of(r)).startswith("progressive (≥")})
    for search in ("progressive", *spaces):
        searched = {key(r): accuracy(r) for r in records if strategy_of(r) == search}
        for other in ("hand", search.replace("progressive", "random")):
            diffs = [(k, 100 * (searched[k] - accuracy(r))) for r in records
                     if strategy_of(r) == other and (k := key(r)) in searched]
            budgets = sorted({k[1:3] for k, _ in diffs})
            for budget, label in [(b, budget_label(*b)) for b in budgets] + [(None, "all")]:
                if budget is None and len(budgets) < 2:
                    continue
                d = [v for k, v in diffs if budget is None or k[1:3] == budget]
                lines.append(f"| {search} | {other} | {label} | {difference_cells(d)} |")
    return "\n".join(lines)


def difference_cells(d: list[float]) -> str:
    """Paired differences (points) as table cells: count, mean, 95 % t-interval, better / tie / worse."""
    import statistics

    from scipy import stats

    mean = statistics.mean(d)
    interval = "—"
    if len(d) > 1:
        half = stats.t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / len(d) ** 0.5
        interval = f"{mean - half:+.2f} to {mean + half:+.2f}"
    tally = f"{sum(v > 0 for v in d)} / {sum(v == 0 for v in d)} / {sum(v < 0 for v in d)}"
    return f"{len(d)} | {mean:+.2f} | {interval} | {tally}"


ATTENTION_CLASSES = ("under half", "half to all", "wider than hidden")
DEPTH_CLASSES = ("1 layer", "2 layers", "3 or more")


def attention_class(spec) -> str:
    """The winner's attention width over hidden (heads x head size / hidden, mean over layers)."""
    import statistics

    share = statistics.mean(l.attn_width for l in spec.layers) / spec.hidden
    return ATTENTION_CLASSES[0 if share < 0.5 else 1 if share <= 1.0 else 2]


def depth_class(spec) -> str:
    return DEPTH_CLASSES[min(spec.num_layers, 3) - 1]


def winners_table(records: list[dict], title: str, classify, classes: tuple[str, ...]) -> str:
    """Every recorded winner's SST-2 dev accuracy by one property of its shape (`classify(spec)`, one
    of `classes`), per budget: mean (winners; range). Machines pooled: the question is how a shape
    distils, not what it costs on a device."""
    import statistics

    from edgebert.arch import ArchSpec

    groups: dict[tuple, list[float]] = {}
    for r in records:
        groups.setdefault((r["speedup"], classify(ArchSpec.from_dict(r["best"]["spec"]))), []).append(accuracy(r))
    budgets = sorted({x for x, _ in groups})
    lines = [f"| {title} | " + " | ".join(f"1/{x:g}" for x in budgets) + " |", "|---|" + "---:|" * len(budgets)]
    for label in classes:
        cells = [f"{statistics.mean(a):.1%} ({len(a)}; {min(a):.1%}–{max(a):.1%})" if (a := groups.get((x, label))) else "—"
                 for x in budgets]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    from edgebert.search.space import DEFAULT_MIN_LAYERS, UNRECORDED_MIN_LAYERS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speedup", type=float, nargs="+", default=[20.0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--strategy", choices=("progressive", "random"), default="progressive")
    ap.add_argument("--min-layers", type=int, default=DEFAULT_MIN_LAYERS, help="search --min-layers (runs recorded apart)")
    ap.add_argument("--teacher", type=Path, default=REPO / "runs" / "teacher-sst2")
    ap.add_argument("--data", type=Path, default=GLUE)
    ap.add_argument("--summary-only", action="store_true", help="only rebuild the README table from recorded runs")
    ap.add_argument("--reverify", action="store_true",
                    help="verify finished runs again with this code, keeping their stages (the earlier record "
                         "goes to history/); the final distillation reruns only if another candidate wins")
    args = ap.parse_args()

    from edgebert.files import atomic_write_json
    from edgebert.search.context import SearchConfig
    from edgebert.search.progressive import search

    for x in [] if args.summary_only else args.speedup:
        for seed in args.seeds:
            tag = (f"{x:g}x{'_quick' if args.quick else ''}{'_random' if args.strategy == 'random' else ''}"
                   f"{f'_min{args.min_layers}layers' if args.min_layers != UNRECORDED_MIN_LAYERS else ''}-seed{seed}")
            out = REPO / "runs" / f"search-sst2-{tag}"
            cfg = SearchConfig(teacher=str(args.teacher), task="sst2", data=str(args.data), out=str(out), speedup=x,
                               seed=seed, quick=args.quick, strategy=args.strategy, min_layers=args.min_layers)
            earlier = reset_verification(cfg, tag) if args.reverify else None
            result = search(cfg, say=print)
            record = {"speedup": x, "quick": args.quick, "seed": seed, "environment": environment(), **result}
            if earlier:  # the earlier record goes to history/<tag>-<suffix>.json, this one takes its place
                path, earlier = earlier
                record.update(reverified(earlier, record))
                suffix = VERIFICATION_SUFFIX[earlier.get("verify_version", 1)]
                atomic_write_json(RESULTS / "search" / "history" / f"{path.stem}-{suffix}.json", earlier)
            atomic_write_json(run_path(RESULTS / "search", tag, record["environment"]["fingerprint"]), record)
            print(row(record))

    records = recorded_runs()
    records.sort(key=lambda r: (r["speedup"], r["quick"], r["strategy"], r["seed"]))
    publish(RESULTS / "search_summary.json", {"rows": [row(r) for r in records]}, "search", summary(records))


def reset_verification(cfg, tag: str) -> tuple[Path, dict] | None:
    """Prepare a finished run to be verified again by this code: its stages stay, its verification
    (with any refit) goes, its student stays for the search to reuse if the same candidate wins.
    Returns the run's record and where it lies (None: no run of an earlier verification here; the
    search runs as usual). A run interrupted after this reset is recognised again by its record."""
    from edgebert.device.fingerprint import fingerprint
    from edgebert.search import progressive
    from edgebert.search.study import storage_for
    from edgebert.search.verify import VERIFY_VERSION

    path = run_path(RESULTS / "search", tag, fingerprint(2))
    state = progressive.load_state(cfg)
    if not path.is_file() or not state["stages"]:
        return None
    record = json.loads(path.read_text())
    if record.get("verify_version", 1) == VERIFY_VERSION:
        return None
    import optuna

    storage = storage_for(cfg)
    for name in [n for n in state["stages"] if n.startswith("refit")]:
        optuna.delete_study(study_name=progressive.open_study(cfg, name, storage).study_name, storage=storage)
        del state["stages"][name]
    for key in ("verify_first", "verify", "refits", "rescored"):
        state.pop(key, None)
    state.get("phase_seconds", {}).pop("verify", None)
    progressive.save_state(cfg, state)
    return path, record


def reverified(earlier: dict, record: dict) -> dict:
    """What a record verified again says of it: the earlier winner, and end-to-end minutes as one run
    of this code would take (the earlier run's, with this verification and final distillation)."""
    from edgebert.arch import ArchSpec

    before, now = earlier.get("phase_seconds", {}), record["phase_seconds"]
    seconds = earlier["seconds"] + sum(now.get(k, 0.0) - before.get(k, 0.0) for k in ("verify", "final"))
    same = ArchSpec.from_dict(earlier["best"]["spec"]).key() == ArchSpec.from_dict(record["best"]["spec"]).key()
    return {"seconds": round(seconds, 1),
            "reverified": {"verify_version_before": earlier.get("verify_version", 1), "resumed_seconds": record["seconds"],
                           "earlier_winner": earlier["best"]["spec"], "same_winner": same}}


def run_path(directory: Path, tag: str, fp: dict) -> Path:
    """<directory>/<tag>.json, or <tag>@<machine>.json when that name holds another machine's
    run (which is kept: runs of two CPUs are two results, not one overwriting the other)."""
    from edgebert.device.fingerprint import machine_key, machine_tag

    plain = directory / f"{tag}.json"
    if not plain.exists() or machine_key(json.loads(plain.read_text())["environment"]["fingerprint"]) == machine_key(fp):
        return plain
    return plain.with_name(f"{tag}@{machine_tag(fp)}.json")


def by_machine(records: list[dict]) -> list[tuple[bool, list[dict]]]:
    """Records grouped by the machine that made them, as (made on this machine, group), this machine's first."""
    from edgebert.device.fingerprint import fingerprint, machine_key

    here = machine_key(fingerprint(2))
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(machine_key(r["environment"]["fingerprint"]), []).append(r)
    return [(key == here, groups[key]) for key in sorted(groups, key=lambda k: k != here)]


def summary(records: list[dict]) -> str:
    """One comparison and one run table per machine, this machine's first: a search's winner and its
    accuracy depend on the device it was budgeted on, so runs of two CPUs are never averaged together."""
    from edgebert.device.fingerprint import machine_name

    everything = records + earlier_records()  # this code's runs and the earlier versions' kept in history/
    parts = []
    for here, group in by_machine(everything):
        runs = [r for r in group if r in records]
        if not runs:
            continue
        name = machine_name(runs[-1]["environment"]["fingerprint"])
        parts.append(
            f"**{name}**{REGENERATED_HERE if here else ''}\n\n" + comparison(group) + "\n\n"
            + "| budget | strategy | seed | winner | FFN inner per layer | predicted ms | measured ms / bert-base ms | "
            "measured ratio | refits | final steps | SST-2 dev | trials (trained) | minutes |\n"
            "|---|---|---|---|---|---:|---:|---|---|---:|---:|---:|---:|\n"
            + "\n".join(row(r) for r in runs)
            + f"\n\nDevice: {runs[-1]['environment']['device']}.")
    return ("\n\n".join(parts) + "\n\n`python tools/search_bench.py --speedup X [--quick] [--seeds S ..] [--strategy random] [--min-layers N]`; "
            "one row per run recorded in tools/results/search/, grouped by machine. FFN column: inner size per layer, "
            "xN a stack of N sub-layers, * an MLP expression other than the standard GELU FFN. Final steps: the "
            "winner's distillation, warm-up + task optimizer steps († cut short by the backstop clock; — not recorded).\n\n"
            "The search against each baseline over every machine, paired by machine, budget and seed "
            "(SST-2 dev, points; runs of earlier search spaces or verification left out):\n\n"
            + paired_table(records) + "\n\n"
            "Every recorded winner (this table's runs and the earlier versions', every machine, every strategy) by its "
            "attention width over hidden: SST-2 dev mean (winners; range). The backbone stage draws attention from "
            "half to all of hidden (`edgebert/search/space.py`, ATTENTION_SHARES) since these figures:\n\n"
            + winners_table(everything, "attention / hidden", attention_class, ATTENTION_CLASSES) + "\n\n"
            "The same winners by depth. A one-layer student ranks well under the short KD proxy and distils "
            "far below deeper ones at the same budget (the one-layer trap; `tools/proxy_rank.py` shows it too):\n\n"
            + winners_table(everything, "layers", depth_class, DEPTH_CLASSES))


if __name__ == "__main__":
    main()
