"""Do the profiler's chains price a layer as a whole model does, and what do the table's fits make of it?

    python tools/chain_check.py [--precision fp32] [--hidden 128] [--windows 6]   # ~1 min
    python tools/chain_check.py --summary-only                                     # README section again

A table prices a layer of attention a and FFN inner I as mha(a) + ffn(I) - ref: three whole-layer
cells, each a chain (T(2) - T(0)) / 2 against a pass-through (latency/micro.py). Here, in one
interleaved measurement on this machine's shipped table's settings, for the reference layer
(4 x 32 heads, inner 2x hidden), a one-head layer, an inner-32 layer and the smallest layer (both):

- whole-model increment: (T(3 layers) - T(1 layer)) / 2 of real models, every layer alike;
- chain: the profiler's own micro-model, timed beside them now;
- the table's cell: as profiled (median over its windows), as predictor v3's fit reads it (the
  fit alone) and as v4 reads it (fit plus the residual beyond noise; table.fitted).

For the smallest layer the chain and table columns are the difference mha + ffn - ref of the
three cells. All in canary units. Records tools/results/chain_check-<precision>.json and the
README section `chain_check_<precision>`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import RESULTS, environment, publish, republish  # noqa: E402
from timing_noise import shipped_table_workloads  # noqa: E402


def record_path(precision: str) -> Path:
    return RESULTS / f"chain_check-{precision}.json"


def markdown(r: dict) -> str:
    lines = ["| layer | whole-model increment | chain now | table cell as profiled | v3 (fit) | v4 (fit + residual) |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(f"| {row['layer']} | {row['whole']:.3f} | {row['chain']:.3f} | {row['profiled']:.3f} | "
                     f"{row['v3']:.3f} | {row['v4']:.3f} |")
    lines.append(f"\n`python tools/chain_check.py --precision {r['precision']} --hidden {r['hidden']} --windows "
                 f"{r['windows']}`: canary units, medians over {r['windows']} interleaved windows; {r['table']}; "
                 f"{r['environment']['device']}, {r['environment']['timestamp']}.")
    return "\n".join(lines)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--summary-only", action="store_true", help="rewrite the README section from the record")
    args = parser.parse_args()
    section = f"chain_check_{args.precision}"
    if args.summary_only:
        return republish(record_path(args.precision), section, markdown)
    if args.windows < 3 or args.runs < 1:
        raise SystemExit("chain_check: --windows must be at least 3, --runs at least 1")

    import tempfile

    import numpy as np

    from edgebert.arch import ArchSpec, LayerSpec, validate
    from edgebert.device.timing import TimingPolicy, Workload, measure
    from edgebert.errors import EdgebertError
    from edgebert.latency import micro
    from edgebert.latency.table import fitted
    from edgebert.latency.units import HS_REF, NH_REF, UNITS, ref_inner

    h = args.hidden
    inner_ref, small_inner = ref_inner(h), 16 * max(2, round(h / 4 / 16))  # the space's smallest inner: h / 4
    layers = {"reference": (NH_REF, HS_REF, inner_ref), "one head": (1, HS_REF, inner_ref),
              f"inner {small_inner}": (NH_REF, HS_REF, small_inner)}
    try:
        specs = [(f"{name} {depth}L", validate(ArchSpec(hidden=h, layers=(LayerSpec(nh, hs, inner),) * depth)))
                 for name, (nh, hs, inner) in {**layers, "smallest": (1, HS_REF, small_inner)}.items() for depth in (1, 3)]
        table, workloads = shipped_table_workloads([(f"chain_check{i}", s) for i, (_, s) in enumerate(specs)],
                                                   precision=args.precision)
    except EdgebertError as exc:
        raise SystemExit(f"chain_check: {exc}")
    profiled = sorted({point[1] for point in table.measured_cells("mha", None, 1)[0]})
    if h not in profiled:  # the table's cells are read as profiled: only its grid's hidden sizes have them
        raise SystemExit(f"chain_check: --hidden {h} is not one of {table.name}'s profiled hidden sizes {profiled}")
    settings = table.settings
    int8, graph_opt = args.precision == "int8", settings.get("graph_optimization", "none")
    # The three cells' chains, exactly as the profiler builds them, and their pass-through.
    cells = {"reference": ("mha", {"hidden": h, "heads": NH_REF, "head_size": HS_REF}),
             "one head": ("mha", {"hidden": h, "heads": 1, "head_size": HS_REF}),
             f"inner {small_inner}": ("ffn", {"hidden": h, "inner": small_inner})}
    tmp = Path(tempfile.mkdtemp(prefix="chain_check-"))
    inputs = micro.export_passthrough(h, 128, 1, tmp / "pass.onnx", int8=int8, graph_optimization=graph_opt)
    workloads.append(Workload("pass", str(tmp / "pass.onnx"), inputs))
    for name, (unit, key) in cells.items():
        path = tmp / f"{unit}-{len(workloads)}.onnx"
        inputs = micro.export_micro(unit, None, key, 2, 128, 1, path, int8=int8, graph_optimization=graph_opt)
        workloads.append(Workload(f"chain {name}", str(path), inputs))
    policy = TimingPolicy(threads=settings["threads"], spinning=settings["spinning"], runs=args.runs, rounds=5,
                          windows=args.windows)
    report = measure(workloads, policy=policy, nominal_canary_ms=table.nominal_canary_ms)
    value = dict(zip([n for n, _ in specs] + ["pass"] + [f"chain {n}" for n in cells],
                     (float(np.median(report[w.name].window_normalised)) for w in workloads)))

    def table_cell(unit: str, key: dict) -> dict:
        measured, errors = table.measured_cells(unit, None, 1)
        point = (128, *(key[a] for a in UNITS[unit].axes))
        return {"profiled": measured[point], "v3": fitted(measured, UNITS[unit])[point],
                "v4": fitted(measured, UNITS[unit], errors)[point]}

    rows = []
    for name, (unit, key) in cells.items():
        rows.append({"layer": name, "whole": (value[f"{name} 3L"] - value[f"{name} 1L"]) / 2,
                     "chain": (value[f"chain {name}"] - value["pass"]) / 2, **table_cell(unit, key)})
    ref, head, inner = rows
    rows.append({"layer": "smallest (one head + inner, minus reference)",
                 "whole": (value["smallest 3L"] - value["smallest 1L"]) / 2,
                 **{k: head[k] + inner[k] - ref[k] for k in ("chain", "profiled", "v3", "v4")}})
    result = {"precision": args.precision, "hidden": h, "windows": args.windows, "runs": args.runs,
              "table": table.name, "rows": rows, "measured": value,
              "environment": environment(precision=settings["precision"], threads=settings["threads"])}
    publish(record_path(args.precision), result, section, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
