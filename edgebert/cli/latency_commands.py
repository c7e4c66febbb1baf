"""Commands about latency: profile, tables, predict, validate-table."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from edgebert.cli.common import add_command, emit, progress


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "profile", cmd_profile,
        help="profile this device into a latency lookup table (resumable)",
        examples=(
            "  edgebert profile                                  # 2-thread fp32 seq-128 table of this machine\n"
            "  edgebert profile --grid quick --out quick.json    # a coarse table in about a minute\n"
            "  edgebert profile --precision int8 --threads 1 --seq-len 64 128\n"
            "  edgebert profile --out t.json --resume            # continue after a crash\n"
        ),
    )
    p.add_argument("--target", default="local", help="where to measure (local; ssh and adb later)")
    p.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: physical cores)")
    p.add_argument("--seq-len", type=int, nargs="+", default=[128], help="sequence lengths to profile")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--precision", default="fp32", help="fp32 or int8 (dynamic quantization)")
    p.add_argument("--grid", default="default", help="default, quick, or a grid JSON file")
    p.add_argument("--out", type=Path, default=None, help="table file (default: $EDGEBERT_CACHE/tables/<device>.json)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted profile of --out")
    p.add_argument("--graph-optimization", default="auto", choices=["auto", "measure", "none", "fusion"],
                   help="ORT's offline transformer fusion: auto (default) takes the decision a table of this machine "
                        "recorded, else measures; measure times bert-base both ways; none or fusion impose it")

    p = add_command(
        sub, "tables", cmd_tables,
        help="list, show, diff or merge latency tables (shipped and local)",
        examples=("  edgebert tables\n  edgebert tables show NAME\n  edgebert tables diff A.json B.json --json\n"
                  "  edgebert tables merge A.json B.json --out pooled.json   # profiles of one device pooled\n"),
    )
    p.add_argument("action", nargs="?", default="list", choices=["list", "show", "diff", "merge"])
    p.add_argument("names", nargs="*", help="table name(s) or path(s)")
    p.add_argument("--out", type=Path, default=None, help="merge: the pooled table (may be one of the inputs)")

    p = add_command(
        sub, "predict", cmd_predict,
        help="predict a model's latency on a device from its latency table",
        examples=(
            "  edgebert predict bert-base\n"
            "  edgebert predict efficientbert --table latency_tables/x.json --json\n"
            "  edgebert predict my_spec.json --seq-len 64\n"
        ),
    )
    p.add_argument("model", help="zoo name, spec .json file, saved model or export folder")
    p.add_argument("--table", default=None, help="latency table (default: the one matching this machine)")
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="to pick a table (default: physical cores)")
    p.add_argument("--precision", default=None, help="fp32 or int8: to pick a table (default fp32), or to check --table")

    p = add_command(
        sub, "validate-table", cmd_validate,
        help="measure random architectures end to end and compare with the table's predictions",
        examples=(
            "  edgebert validate-table latency_tables/x.json --samples 50 --seed 7 --plot scatter.png\n"
            "  edgebert validate-table quick.json --samples 10 --json\n"
        ),
    )
    p.add_argument("table")
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--seed", type=int, default=None, help="default: a random seed (reported)")
    p.add_argument("--windows", type=int, default=3, help="separate measurement windows per model (>= 3)")
    p.add_argument("--plot", type=Path, default=None, help="scatter plot of predicted vs measured (PNG)")
    p.add_argument("--record", action="store_true", help="store the summary in the table's 'validation' field")


def cmd_profile(args: argparse.Namespace) -> None:
    from edgebert.latency.profiler import profile

    command = "edgebert " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = profile(target=args.target, threads=args.threads, seq_lens=args.seq_len, batch=args.batch,
                     precision=args.precision, grid=args.grid, out=args.out, resume=args.resume,
                     progress=True, command=command, graph_optimization=args.graph_optimization)
    emit(args, result, lambda r: f"wrote {r['table']}: {r['entries']} entries in {r['seconds']:.0f} s")


def cmd_tables(args: argparse.Namespace) -> None:
    from edgebert.errors import EdgebertError
    from edgebert.latency import catalog

    if args.action == "list":
        rows = catalog.list_tables()

        def human(rows):
            if not rows:
                return "no latency tables yet; make one with: edgebert profile"
            lines = [f"{'':2}{'name':<58} {'where':<8} {'thr':>3} {'prec':<5} {'seq':<8} {'entries':>7}"]
            for r in rows:
                if "error" in r:
                    lines.append(f"{'!':<2}{r['name']:<58} {r['where']:<8} {r['error']}")
                    continue
                mark = "*" if r["matches_this_machine"] else " "
                lines.append(f"{mark:<2}{r['name']:<58} {r['where']:<8} {r['threads']:>3} {r['precision']:<5} "
                             f"{','.join(map(str, r['seq_lens'])):<8} {r['entries']:>7}")
            return "\n".join(lines) + "\n(* matches this machine)"

        return emit(args, rows, human)
    if args.action == "show":
        if len(args.names) != 1:
            raise EdgebertError("usage: edgebert tables show NAME")
        info = catalog.show(catalog.resolve(args.names[0]))
        return emit(args, info, lambda i: "\n".join(f"{k}: {v}" for k, v in i.items() if k not in ("device", "grid")))
    if args.action == "merge":
        from edgebert.latency.merge import merge

        if len(args.names) < 2 or args.out is None:
            raise EdgebertError("usage: edgebert tables merge A B [C ...] --out FILE")
        command = "edgebert " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        result = merge([catalog.resolve(n) for n in args.names], args.out, command=command)
        return emit(args, result, lambda r: (f"wrote {r['table']}: {r['profiles']} profiles pooled, {r['windows']} "
                                             f"windows, {r['entries']} entries (validate it: edgebert validate-table "
                                             f"{r['table']})"))
    if len(args.names) != 2:
        raise EdgebertError("usage: edgebert tables diff A B")
    d = catalog.diff(catalog.resolve(args.names[0]), catalog.resolve(args.names[1]))
    emit(args, d, lambda d: (f"{d['common_entries']} common entries: median |Δ| {d['median_abs_pct']:.1f} %, "
                             f"p90 {d['p90_abs_pct']:.1f} %, max {d['max_abs_pct']:.0f} %\n"
                             + "\n".join(f"  {u}: {v['entries']} entries, median |Δ| {v['median_abs_pct']:.1f} %"
                                         for u, v in d["by_unit"].items())))


def cmd_predict(args: argparse.Namespace) -> None:
    import warnings

    from edgebert.device.timing import default_threads
    from edgebert.errors import EdgebertError
    from edgebert.specs import resolve_spec
    from edgebert.latency.catalog import find_table, resolve
    from edgebert.latency.predictor import predict
    from edgebert.latency.table import LatencyTable

    spec = resolve_spec(args.model)
    if args.table:
        table = LatencyTable.load(resolve(args.table))
        if args.precision and args.precision != table.settings["precision"]:
            raise EdgebertError(f"{table.name} is a {table.settings['precision']} table; it has no {args.precision} "
                                f"costs (profile with --precision {args.precision})")
    else:
        table = find_table(threads=args.threads or default_threads(), precision=args.precision or "fp32",
                           seq_len=args.seq_len or 128, batch=args.batch or 1)
    p = predict(spec, table, seq_len=args.seq_len, batch=args.batch)
    if p.extrapolated:
        warnings.warn(f"outside the table's grid, extrapolated: {', '.join(p.extrapolated)}", stacklevel=1)
    out = {**p.to_dict(), "table": str(table.path), "model": args.model, "spec_summary": spec.summary()}

    def human(o):
        b = o["breakdown"]
        lines = [f"{o['model']} ({o['spec_summary']}): {o['latency_ms']:.2f} ms predicted at seq {o['seq_len']}, "
                 f"batch {o['batch']} ({Path(o['table']).name})",
                 f"  MHA {b['mha_ms']:.2f} ms, FFN {b['ffn_ms']:.2f} ms, other {b['other_ms']:.2f} ms"]
        lines += [f"  layer {l['layer']}: MHA {l['mha_ms']:.2f} ms, FFN {l['ffn_ms']:.2f} ms" for l in b["layers"]]
        return "\n".join(lines)

    emit(args, out, human)


def cmd_validate(args: argparse.Namespace) -> None:
    from edgebert.latency.catalog import resolve
    from edgebert.latency.table import LatencyTable
    from edgebert.latency.validate import validate_table

    path = resolve(args.table)
    report = validate_table(path, samples=args.samples, seed=args.seed, windows=args.windows, plot=args.plot)
    speed = report["machine_speed"]
    if speed["below_min"] > 0:
        progress(args)(f"warning: {speed['below_min']:.0%} of the measurements were kept in windows below "
                       f"{speed['min_speed']:g} of the table's canary speed after three attempts (median window speed "
                       f"{speed['median']:.2f}); the figures describe a slow machine: validate again when it is calm")
    if args.record:
        t = LatencyTable.load(path, check_device=False)
        t.data["validation"] = {k: report[k] for k in ("samples", "seed", "within_5pct", "within_10pct",
                                                      "mean_abs_pct", "max_abs_pct", "spearman")}
        t.save(path)
    emit(args, report, lambda r: (
        f"{r['samples']} architectures (seed {r['seed']}): {r['within_5pct']:.0%} within ±5 %, "
        f"{r['within_10pct']:.0%} within ±10 %, mean |error| {r['mean_abs_pct']:.1f} %, max {r['max_abs_pct']:.1f} %, "
        f"Spearman {r['spearman']:.3f}" + (f"; plot {r['plot']}" if r.get("plot") else "")))
