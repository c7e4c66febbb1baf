"""Does an INT8 model follow the fp32 canary as the machine's speed moves, or an INT8 canary?

    python tools/canary_precision.py [--models 5] [--windows 20] [--runs 10]   # ~6 min

Every window pairs what it measures with the fp32 canary, and a table's figures are
model time over canary time. That holds if a model slows down exactly as the canary does.
The Zen 3's INT8 validation (README, "INT8's miss is a level") read its models lower
as its windows ran slower. Here the canary quantized like an INT8 table's models
(ORT dynamic quantization, as `edgebert export --int8`) is timed as one more workload
beside the first `--models` architectures of this machine's INT8 validation, each in
INT8 and in fp32, for `--windows` windows. Per model and canary, its time over that
canary's in each window: the spread of that ratio over windows (sd of its log, %), and
its slope on the canary's speed (log-log; 0 = the model follows the canary exactly).
Records tools/results/canary_precision.json and the README section `canary_precision`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import RESULTS, environment, publish  # noqa: E402

RECORD = RESULTS / "canary_precision.json"
INT8_CANARY = "canary-int8"


def int8_canary():
    """The canary, dynamically quantized (cached beside it) as a workload."""
    from edgebert.device import canary
    from edgebert.device.timing import InputSpec, Workload
    from edgebert.export import quantize_int8

    path = canary.cache_dir() / f"{canary.CANARY_NAME}-int8.onnx"
    if not path.exists():
        tmp = path.with_suffix(".tmp.onnx")
        quantize_int8(canary.canary_path(), tmp)
        tmp.replace(path)
    return Workload(INT8_CANARY, path, [InputSpec(**spec) for spec in canary.CANARY_INPUTS])


def follow(model_ms: list[float], canary_ms: list[float]) -> dict:
    """How a model's per-window time follows a canary's: sd of log(model / canary) over windows (%),
    and the slope of log(model / canary) on log(canary speed), speed = median canary ms / canary ms."""
    import numpy as np

    m, c = np.log(np.asarray(model_ms)), np.log(np.asarray(canary_ms))
    ratio, speed = m - c, np.median(c) - c
    slope = float(np.polyfit(speed, ratio, 1)[0]) if speed.std() > 0 else float("nan")
    return {"sd_pct": float(100 * ratio.std(ddof=1)), "slope": slope}


def probe(models: int, windows: int, runs: int) -> dict:
    from edgebert.arch import ArchSpec
    from edgebert.device.timing import TimingPolicy, Workload, measure
    from edgebert.errors import EdgebertError
    from edgebert.export import cached_export, model_inputs
    from edgebert.latency.catalog import find_table

    try:
        table = find_table(threads=2, precision="int8", seq_len=128, batch=1)
    except EdgebertError as e:
        raise SystemExit(str(e))
    validation = RESULTS / f"validate-{Path(table.name).stem}.json"
    if not validation.is_file():
        raise SystemExit(f"no validation of {table.name} in tools/results/ to take models from")
    rows = json.loads(validation.read_text())["rows"]
    graph_opt = table.settings.get("graph_optimization", "none")
    workloads, specs = [int8_canary()], {}
    for row in rows[:models]:
        spec = ArchSpec.from_dict(row["spec"])
        specs[row["name"]] = spec.summary()
        for precision in ("int8", "fp32"):
            _, path = cached_export(row["name"], spec=spec, int8=precision == "int8", graph_optimization=graph_opt)
            workloads.append(Workload(f"{row['name']}-{precision}", path, model_inputs(spec, 1, 128)))
    policy = TimingPolicy(threads=2, spinning=table.settings["spinning"], warmup=2, runs=runs, rounds=5, windows=windows)
    report = measure(workloads, policy=policy)
    fp32_canary = [w.canary_median_ms for w in report.windows]
    int8_canary_ms = report[INT8_CANARY].window_median_ms
    out = []
    for name, summary in specs.items():
        for precision in ("int8", "fp32"):
            ms = report[f"{name}-{precision}"].window_median_ms
            out.append({"model": name, "summary": summary, "precision": precision,
                        "by_fp32_canary": follow(ms, fp32_canary), "by_int8_canary": follow(ms, int8_canary_ms)})
    return {"windows": windows, "runs": runs, "fp32_canary_ms": fp32_canary, "int8_canary_ms": int8_canary_ms,
            "int8_canary_by_fp32": follow(int8_canary_ms, fp32_canary), "rows": out, "environment": environment()}


def markdown(result: dict) -> str:
    import statistics

    lines = ["| model | precision | over the fp32 canary: sd % / slope | over the INT8 canary: sd % / slope |",
             "|---|---|---|---|"]
    for r in result["rows"]:
        a, b = r["by_fp32_canary"], r["by_int8_canary"]
        lines.append(f"| {r['summary']} | {r['precision']} | {a['sd_pct']:.1f} / {a['slope']:+.2f} | "
                     f"{b['sd_pct']:.1f} / {b['slope']:+.2f} |")
    for precision in ("int8", "fp32"):
        rows = [r for r in result["rows"] if r["precision"] == precision]
        a = statistics.median(r["by_fp32_canary"]["sd_pct"] for r in rows)
        b = statistics.median(r["by_int8_canary"]["sd_pct"] for r in rows)
        lines.append(f"| median of {len(rows)} | {precision} | {a:.1f} | {b:.1f} |")
    c = result["fp32_canary_ms"]
    ic = result["int8_canary_by_fp32"]
    return ("\n".join(lines) + f"\n\n`python tools/canary_precision.py --windows {result['windows']} --runs "
            f"{result['runs']}`: per window, each model's median over each canary's; fp32 canary "
            f"{min(c):.2f}–{max(c):.2f} ms over the windows; the INT8 canary over the fp32 one: sd "
            f"{ic['sd_pct']:.1f} %, slope {ic['slope']:+.2f}; {result['environment']['device']}.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=5)
    ap.add_argument("--windows", type=int, default=20)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    if args.models < 1 or args.windows < 3:
        raise SystemExit("--models must be at least 1 and --windows at least 3")
    result = probe(args.models, args.windows, args.runs)
    publish(RECORD, result, "canary_precision", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
