"""Does a workload's place in the worker's list move its canary-normalised figure?

    python tools/canary_position.py [--copies 6] [--windows 8] [--runs 40]   # ~1 min
    python tools/canary_position.py --summary-only    # the README section again, from the record

One model (tinybert-4, random weights, exported as this machine's fp32 table
decided) is opened `--copies` times in one worker and timed interleaved, in
`--windows` windows: every copy is the same file at the same moments, so any
copy that reads apart from the others in a way that repeats from window to
window is the harness's doing. Per copy, the median over windows of its figure
over that window's median of all copies, in raw milliseconds and canary
units. The worker once paired each burst with canary runs timed right after the
previous workload; the first copy, which follows only the empty model, read
7 % high in canary units (tinybert-4) while raw milliseconds agreed. Results go to
tools/results/canary_position.json and the README section `canary_position`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import RESULTS, environment, publish, republish  # noqa: E402
from timing_noise import shipped_table_workloads  # noqa: E402

RECORD = RESULTS / "canary_position.json"
MODEL = "tinybert-4"


def per_copy(values_by_copy: list[list[float]]) -> list[float]:
    """Per copy, the median over windows of (its value / the window's median over copies)."""
    import numpy as np

    v = np.asarray(values_by_copy, float)  # (copies, windows)
    return [float(x) for x in np.median(v / np.median(v, axis=0), axis=1)]


def markdown(result: dict) -> str:
    raw, norm = result["raw_ratio"], result["normalised_ratio"]
    cells = " | ".join(f"{i + 1}" for i in range(len(raw)))
    lines = [f"| copy | {cells} |", "|---|" + "---:|" * len(raw),
             "| raw ms / window median | " + " | ".join(f"{x:.3f}" for x in raw) + " |",
             "| canary-normalised / window median | " + " | ".join(f"{x:.3f}" for x in norm) + " |",
             "", f"`python tools/canary_position.py --copies {result['copies']} --windows {result['windows']} "
                 f"--runs {result['runs']}`: {result['model']} opened {result['copies']} times in one worker, "
                 f"{result['windows']} windows of {result['runs']} runs per copy in {result['rounds']} rounds; "
                 f"medians over windows; {result['environment']['device']}, {result['environment']['timestamp']}."]
    return "\n".join(lines)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=6)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--summary-only", action="store_true", help="rewrite the README section from the record")
    args = parser.parse_args()
    if args.summary_only:
        return republish(RECORD, "canary_position", markdown)
    if args.copies < 2 or min(args.windows, args.runs, args.rounds) < 1:
        raise SystemExit("canary_position: --copies must be at least 2 and --windows, --runs, --rounds at least 1")

    from dataclasses import replace

    from edgebert import zoo
    from edgebert.device.timing import TimingPolicy, measure

    table, (workload,) = shipped_table_workloads([(MODEL, zoo.get(MODEL))])
    copies = [replace(workload, name=f"copy{i + 1}") for i in range(args.copies)]
    s = table.settings
    policy = TimingPolicy(threads=s["threads"], spinning=s["spinning"], runs=args.runs, rounds=args.rounds,
                          windows=args.windows)
    report = measure(copies, policy=policy, nominal_canary_ms=table.nominal_canary_ms)
    result = {
        "model": MODEL, "copies": args.copies, "windows": args.windows, "runs": args.runs, "rounds": args.rounds,
        "raw_ratio": per_copy([report[c.name].window_median_ms for c in copies]),
        "normalised_ratio": per_copy([report[c.name].window_normalised for c in copies]),
        "window_canary_ms": [w.canary_median_ms for w in report.windows],
        "environment": environment(),
    }
    publish(RECORD, result, "canary_position", markdown(result))
    return result


if __name__ == "__main__":
    main()
