"""Make, validate and ship latency tables for this machine.

    python tools/latency_tables.py ship [--precisions fp32]   # 2 threads, seq 128: fp32 and INT8, 50 archs each
    python tools/latency_tables.py revalidate [--windows 9]   # the shipped 2-thread seq-128 tables, validated afresh
    python tools/latency_tables.py repredict       # other machines' tables: stored validations priced again
    python tools/latency_tables.py extra           # 1 thread and seq 64 tables, 10-sample validation each
    python tools/latency_tables.py repeat --gap-min 10 [--precision int8]  # two independent profiles >= 10 min apart
    python tools/latency_tables.py quick           # the quick grid's profile time (goal <= 60 s), both decisions
    python tools/latency_tables.py crossprice      # this machine's validations priced by tables of other CPUs
                                                   # that share its name and settings (nothing measured)

Tables go to latency_tables/ (named by device and settings); validation
summaries are stored in each table's "validation" field, rows and scatter plots
in tools/results/, and the README sections `latency_tables` and
`latency_repeatability` are rewritten from the results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgebert import zoo
from edgebert.device.fingerprint import describe, machine_key, machine_name
from edgebert.files import atomic_write_json
from edgebert.latency import catalog
from edgebert.latency.predictor import PREDICTOR_VERSION, calibrate, predict
from edgebert.latency.profiler import default_table_name, load_grid, profile
from edgebert.latency.table import LatencyTable
from edgebert.latency.units import UNITS
from edgebert.latency.validate import sample_architectures, validate_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_section import REGENERATED_HERE, replace_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "latency_tables"
RESULTS = REPO / "tools" / "results"


def make(threads: int, precision: str, seq: int, samples: int, seed: int | None, windows: int) -> dict:
    from edgebert.device.runners import get_runner

    fp = get_runner("local").fingerprint(threads, precision)
    out = SHIPPED / default_table_name(fp, precision, [seq], 1)
    cmd = f"edgebert profile --threads {threads} --precision {precision} --seq-len {seq} --out latency_tables/{out.name}"
    made = profile(threads=threads, precision=precision, seq_lens=[seq], out=out, command=cmd,
                   graph_optimization="measure")  # a shipped table decides afresh
    print(f"profiled {out.name}: {made['entries']} entries in {made['seconds']:.0f} s")
    summary = validate_and_record(out, samples, seed, windows)
    print(json.dumps(summary))
    return {"table": out.name, "profile_seconds": made["seconds"], **summary}


def validate_and_record(path: Path, samples: int, seed: int | None, windows: int) -> dict:
    """Validate a table; its summary goes into the table's "validation" field, the rows and the
    scatter plot to tools/results/validate-<table>.*."""
    report = validate_table(path, samples=samples, seed=seed, windows=windows,
                            plot=RESULTS / f"validate-{path.stem}.png")
    table = LatencyTable.load(path, check_device=False)
    summary = {**{k: report[k] for k in ("samples", "seed", "windows", "within_5pct", "within_10pct", "mean_abs_pct",
                                         "max_abs_pct", "spearman")}, "predictor": PREDICTOR_VERSION}
    table.data["validation"] = summary
    table.save(path)
    atomic_write_json(RESULTS / f"validate-{path.stem}.json", report)
    return summary


def breakdown(table_path: Path) -> dict:
    t = LatencyTable.load(table_path, check_device=False)
    p = predict(zoo.get("bert-base"), t)
    return {"latency_ms": p.latency_ms, "mha_ms": p.breakdown["mha_ms"], "ffn_ms": p.breakdown["ffn_ms"],
            "other_ms": p.breakdown["other_ms"], "ffn_over_mha": p.breakdown["ffn_ms"] / p.breakdown["mha_ms"]}


def readme_tables(rows: list[dict]) -> None:
    """One table of rows per device, this machine's first."""
    here = machine_key(get_runner_fingerprint())
    by_device: dict[str, list[dict]] = {}
    for r in rows:
        fp = LatencyTable.load(SHIPPED / r["table"], check_device=False).device
        by_device.setdefault(machine_key(fp), []).append({**r, "_fp": fp})
    lines = []
    for key in sorted(by_device, key=lambda k: k != here):
        group = by_device[key]
        main = next((r for r in group if "-2t-fp32-s128-" in r["table"]), group[0])
        lines += ["", f"**{machine_name(main['_fp'])}**" + (REGENERATED_HERE if key == here else ""), "",
                  "| table | profile s | samples (seed) x windows | predictor | within ±5 % | within ±10 % | mean abs % | "
                  "max abs % | Spearman | bert-base predicted ms (FFN / MHA) |",
                  "|---|---:|---|---|---:|---:|---:|---:|---:|---|"]
        for r in group:
            b = breakdown(SHIPPED / r["table"])
            how = f"v{r.get('predictor', 2)}" + (" (re-predicted)" if r.get("repredicted") else "")
            pooled = f" ({r['profiles']} pooled)" if r.get("profiles", 1) > 1 else ""
            lines.append(f"| `{r['table']}` | {r['profile_seconds']:.0f}{pooled} | {r['samples']} ({r['seed']}) x "
                         f"{r.get('windows', 3)} | {how} | {r['within_5pct']:.0%} | {r['within_10pct']:.0%} | "
                         f"{r['mean_abs_pct']:.1f} | {r['max_abs_pct']:.1f} | {r['spearman']:.3f} | {b['latency_ms']:.1f} "
                         f"({b['ffn_ms']:.1f} / {b['mha_ms']:.1f} = {b['ffn_over_mha']:.2f}x) |")
    lines.append(f"\nThe 2-thread seq-128 tables were profiled by `python tools/latency_tables.py ship` and validated "
                 f"by `edgebert validate-table TABLE --samples 50 --windows W` (`revalidate` validates them afresh); "
                 f"the 1-thread and seq-64 ones by `python tools/latency_tables.py extra` (10 samples each). Seeds "
                 f"unchosen; plots in `tools/results/validate-*.png`. *Predictor*: the version that predicted the "
                 f"validation; *re-predicted*: a table of another machine, whose stored measurements (real, taken "
                 f"when it was validated there) this predictor priced again (`python tools/latency_tables.py "
                 f"repredict`), as this machine cannot measure them. *Pooled*: profiles of one device pooled by "
                 f"`edgebert tables merge` (profile s: all of them).")
    replace_section("latency_tables", "\n".join(lines).strip())


def get_runner_fingerprint() -> dict:
    from edgebert.device.runners import get_runner

    return get_runner("local").fingerprint(2, "fp32")


def record(row: dict) -> None:
    """One made table's row into tools/results/latency_tables.json and the README (as soon as it is validated)."""
    store = RESULTS / "latency_tables.json"
    rows = {r["table"]: r for r in (json.loads(store.read_text()) if store.exists() else [])}
    rows[row["table"]] = row
    atomic_write_json(store, sorted(rows.values(), key=lambda r: r["table"]))
    readme_tables(sorted(rows.values(), key=lambda r: r["table"]))


def cmd_ship(args) -> None:
    for precision in args.precisions:
        record(make(2, precision, 128, args.samples, args.seed, args.windows))


def cmd_revalidate(args) -> None:
    """This machine's shipped 2-thread seq-128 tables' calibration refitted by this predictor (on the measurements
    stored at profile time: nothing re-profiled), then validated afresh on `--samples` random architectures
    in `--windows` windows each. The previous validation's rows move to tools/results/history/."""
    here = machine_key(get_runner_fingerprint())
    for row in json.loads((RESULTS / "latency_tables.json").read_text()):
        name = row["table"]
        if not any(f"-2t-{p}-s128-" in name for p in args.precisions):
            continue
        if machine_key(LatencyTable.load(SHIPPED / name, check_device=False).device) != here:
            continue  # another machine's table: `repredict` prices its stored measurements again
        old = RESULTS / f"validate-{Path(name).stem}.json"
        if old.exists():
            previous = json.loads(old.read_text())
            keep = RESULTS / "history" / f"{old.stem}-{previous['windows']}windows-{previous['seed']}.json"
            keep.parent.mkdir(exist_ok=True)
            old.replace(keep)
        path = SHIPPED / name
        table = LatencyTable.load(path, check_device=False)
        table.data["calibration"] = calibrate(table.data)
        table.save(path)
        summary = validate_and_record(path, args.samples, args.seed, args.windows)
        # A table pooled since it was shipped (`edgebert tables merge`) carries every profile's time.
        made = {"profile_seconds": table.data["seconds"], "profiles": len(table.data.get("merged_from", [])) or 1}
        record({**row, **made, **summary})
        print(name, json.dumps(summary))


def cmd_repredict(args) -> None:
    """Tables of another machine: their calibration refitted by this predictor on the measurements stored
    at profile time, and their validation rows (real measurements, kept in tools/results/validate-*.json)
    priced again by it; nothing is measured. Tables of this machine are left to `revalidate`, and tables
    validated on their own machine by this very predictor are left as they are."""
    from edgebert.arch import ArchSpec
    from edgebert.latency.validate import scatter, summarize

    here = machine_key(get_runner_fingerprint())
    for row in json.loads((RESULTS / "latency_tables.json").read_text()):
        path = SHIPPED / row["table"]
        table = LatencyTable.load(path, check_device=False)
        measured_by_this_predictor = (table.data.get("validation", {}).get("predictor") == PREDICTOR_VERSION
                                      and not table.data["validation"].get("repredicted"))
        if machine_key(table.device) == here or measured_by_this_predictor:
            continue  # the first is `revalidate`'s; the second would only relabel a measured validation
        table.data["calibration"] = calibrate(table.data)
        table.save(path)
        table = LatencyTable.load(path, check_device=False)
        store = RESULTS / f"validate-{path.stem}.json"
        report = json.loads(store.read_text())
        for r in report["rows"]:
            p = predict(ArchSpec.from_dict(r["spec"]), table, seq_len=report["seq_len"], batch=report["batch"])
            r.update(predicted=p.normalised, predicted_ms=p.latency_ms, extrapolated=p.extrapolated,
                     error_pct=100.0 * (p.normalised - r["measured"]) / r["measured"])
        report.update(summarize(report["rows"]), predictor=PREDICTOR_VERSION, repredicted=True)
        if report.get("plot"):
            scatter(report["rows"], RESULTS / Path(report["plot"]).name,
                    title=f"{path.name}: {report['within_5pct']:.0%} within ±5 % (re-predicted)")
        atomic_write_json(store, report)
        summary = {k: report[k] for k in ("samples", "seed", "windows", "within_5pct", "within_10pct", "mean_abs_pct",
                                          "max_abs_pct", "spearman", "predictor", "repredicted")}
        table.data["validation"] = summary
        table.save(path)
        record({**row, **summary})
        print(row["table"], json.dumps(summary))


def cmd_crossprice(args) -> None:
    """Would a table made on another CPU sold under this one's name have served here? This machine's
    validations (real measurements, canary units) priced by every shipped table of the same CPU name and
    settings made on another machine (fingerprint.differences); nothing is measured. A hypervisor's
    masked name is what fingerprint version 2's CPU identity is for."""
    from edgebert.arch import ArchSpec
    from edgebert.device.fingerprint import differences
    from edgebert.latency.validate import summarize

    here = get_runner_fingerprint()
    tables = {p.name: LatencyTable.load(p, check_device=False) for p in sorted(SHIPPED.glob("*.json"))}
    rows = []
    for name, own in tables.items():
        store = RESULTS / f"validate-{Path(name).stem}.json"
        if machine_key(own.device) != machine_key(here) or not store.exists():
            continue
        report = json.loads(store.read_text())
        for other_name, other in tables.items():
            alike = all(other.settings[k] == own.settings[k] for k in ("threads", "precision", "seq_lens", "batch"))
            if other.device.get("cpu_model") != own.device.get("cpu_model") or not alike \
                    or not differences(other.device, own.device):
                continue
            priced = []
            for r in report["rows"]:
                p = predict(ArchSpec.from_dict(r["spec"]), other, seq_len=report["seq_len"], batch=report["batch"])
                priced.append({**r, "predicted": p.normalised, "error_pct": 100.0 * (p.normalised / r["measured"] - 1)})
            signed = sorted(r["error_pct"] for r in priced)
            rows.append({"validation": store.name, "own_table": name, "priced_by": other_name,
                         "differs_in": differences(other.device, own.device), **summarize(priced),
                         "median_signed_pct": signed[len(signed) // 2], "own": summarize(report["rows"])})
    atomic_write_json(RESULTS / "latency_crossprice.json", rows)
    lines = ["| this machine's validation | priced by | differs in | within ±5 % | within ±10 % | mean abs % | "
             "max abs % | median signed % | its own table: within ±5 / ±10 % |", "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| `{r['validation']}` | `{r['priced_by']}` | {', '.join(r['differs_in'])} | {r['within_5pct']:.0%} | "
                     f"{r['within_10pct']:.0%} | {r['mean_abs_pct']:.1f} | {r['max_abs_pct']:.1f} | "
                     f"{r['median_signed_pct']:+.1f} | {r['own']['within_5pct']:.0%} / {r['own']['within_10pct']:.0%} |")
    lines.append(f"\n`python tools/latency_tables.py crossprice` on {machine_name(here)}: errors in canary units "
                 f"(the machines' speeds taken out), so only how the costs are shaped can differ.")
    replace_section("latency_crossprice", "\n".join(lines))
    print("\n".join(lines))


def cmd_extra(args) -> None:
    for threads, seq in ((1, 128), (2, 64)):
        record(make(threads, "fp32", seq, 10, args.seed, args.windows))


def whole_model_drift(a: Path, b: Path, samples: int = 50, seed: int = 0) -> dict:
    """What a user of the two tables sees: random architectures of the whole space (validate-table's
    sampler, fixed seed) and the zoo, each predicted from both (canary-normalised, so a machine
    running faster in one profile does not count); per-entry figures overweight the near-free ops."""
    import numpy as np

    ta, tb = (LatencyTable.load(p, check_device=False) for p in (a, b))
    specs = sample_architectures(ta, samples, seed) + [zoo.get(n) for n in zoo.names()]
    deltas = [abs(100.0 * (predict(s, tb).normalised / predict(s, ta).normalised - 1.0)) for s in specs]
    return {"models": len(specs), "seed": seed, "median_abs_pct": float(np.median(deltas)),
            "p90_abs_pct": float(np.percentile(deltas, 90)), "max_abs_pct": max(deltas)}


def cmd_repeat(args) -> None:
    precision = args.precision
    suffix = "" if precision == "fp32" else f"-{precision}"  # fp32 keeps the names it was first published under
    tmp = RESULTS / "repeat"
    tmp.mkdir(parents=True, exist_ok=True)
    a, b = tmp / f"first{suffix}.json", tmp / f"second{suffix}.json"
    if not args.compare_only:
        t0 = time.time()  # the gap runs start to start: each entry is measured twice >= gap apart
        profile(threads=2, precision=precision, seq_lens=[128], out=a, graph_optimization="none")
        wait = args.gap_min * 60 - (time.time() - t0)
        if wait > 0:
            print(f"waiting {wait / 60:.1f} min before the second profile")
            time.sleep(wait)
        profile(threads=2, precision=precision, seq_lens=[128], out=b, graph_optimization="none")
    d = catalog.diff(a, b)
    first, second = (LatencyTable.load(p, check_device=False) for p in (a, b))
    started = [time.mktime(time.strptime(t.data["created"], "%Y-%m-%dT%H:%M:%SZ")) for t in (first, second)]
    d["gap_minutes"] = round((started[1] - started[0]) / 60, 1)  # start to start, as every entry's gap
    d["profile_seconds"] = [round(t.data["seconds"]) for t in (first, second)]
    d["whole_models"] = m = whole_model_drift(a, b)
    d["device"] = describe(first.device)
    passes = first.settings["grid"].get("passes", 2)
    atomic_write_json(RESULTS / f"latency_repeatability{suffix}.json", d)
    units = ", ".join(f"{u} {v['median_abs_pct']:.1f} %" for u, v in d["by_unit"].items())
    replace_section(f"latency_repeatability{suffix.replace('-', '_')}", (
        f"Two independent {precision.upper() if precision == 'int8' else precision} profiles started {d['gap_minutes']} min apart, each end to end "
        f"({d['profile_seconds'][0]} s and {d['profile_seconds'][1]} s; `python tools/latency_tables.py "
        f"repeat{'' if precision == 'fp32' else ' --precision ' + precision}`; {d['device']}; seq 128, batch 1; each entry measured in {passes}-{passes + 1} windows of 6 rounds "
        f"x 12 runs, the stack probe in {UNITS['ffn_stack'].passes * passes}): "
        f"over {d['common_entries']} entries, median |Δ| **{d['median_abs_pct']:.1f} %**, "
        f"p90 {d['p90_abs_pct']:.1f} %, max {d['max_abs_pct']:.0f} % (per unit: {units}); canary "
        f"{d['nominal_canary_ms']['a']:.3f} vs {d['nominal_canary_ms']['b']:.3f} ms. Whole models predicted from "
        f"each ({m['models']}: the zoo and random architectures of the space, seed {m['seed']}): median |Δ| "
        f"**{m['median_abs_pct']:.1f} %**, p90 {m['p90_abs_pct']:.1f} %, max {m['max_abs_pct']:.1f} %."))
    print(json.dumps({k: v for k, v in d.items() if k != "rows"}, indent=1))


def cmd_quick(args) -> None:
    """Time `--grid quick` end to end (fp32, 2 threads, seq 128) twice: deciding graph optimization by
    its own measurement, then reusing the decision this machine's shipped table recorded."""
    import tempfile

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for decision in ("measure", "auto"):
            made = profile(threads=2, precision="fp32", seq_lens=[128], grid="quick",
                           out=Path(tmp) / f"quick-{decision}.json", graph_optimization=decision)
            runs[decision] = round(made["seconds"], 1)
            print(f"quick grid, decision {decision}: {made['entries']} entries in {made['seconds']:.1f} s")
    device = describe(get_runner_fingerprint())
    atomic_write_json(RESULTS / "latency_quick.json", {"seconds": runs, "device": device, "goal_s": 60})
    replace_section("latency_quick", (
        f"The quick grid (`python tools/latency_tables.py quick`: `edgebert profile --grid quick`, fp32, "
        f"2 threads, seq 128; {device}) took **{runs['measure']} s** deciding graph optimization by its own "
        f"measurement (timed on {load_grid('quick').decision_model}, which has bert-base's operations at a fifth "
        f"of its time) and **{runs['auto']} s** reusing the decision this machine's table recorded (goal ≤ 60 s)."))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["ship", "revalidate", "repredict", "extra", "repeat", "quick", "crossprice"])
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--precisions", nargs="+", choices=["fp32", "int8"], default=["fp32", "int8"],
                    help="ship and revalidate")
    ap.add_argument("--seed", type=int, default=None, help="validation seed (default: random, recorded)")
    ap.add_argument("--windows", type=int, default=3, help="validation windows per architecture (>= 3)")
    ap.add_argument("--gap-min", type=float, default=10.0)
    ap.add_argument("--compare-only", action="store_true", help="repeat: compare the two profiles already made")
    ap.add_argument("--precision", choices=["fp32", "int8"], default="fp32", help="repeat")
    args = ap.parse_args()
    {"ship": cmd_ship, "revalidate": cmd_revalidate, "repredict": cmd_repredict, "extra": cmd_extra,
     "repeat": cmd_repeat, "quick": cmd_quick, "crossprice": cmd_crossprice}[args.what](args)


if __name__ == "__main__":
    main()
