"""Does a model's figure depend on the other models in its worker?

    python tools/company_effect.py [--windows 5]

The latency table's calibration times bert-tiny beside bert-base and reads it 5.5 %
above the table's sum; validation times random small models among ten random
ones and reads them ~8.5 % below their prediction; the search's verification
times candidates beside bert-base. If the company in a worker moves a figure,
these disagree for that reason alone. Here three targets (bert-tiny, tinybert-4,
minilm-l6-h384) are timed in three companies, windows alternating so that all
three share the machine's drift:

- alone: the targets only (with the canary and the empty model, as always);
- beside bert-base: the targets and bert-base;
- among random: the targets and six random architectures of the search space.

Reported: each target's canary-normalised median per company, and its ratio to
"alone". Results go to tools/results/company_effect.json and the README section
`company_effect`.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import RESULTS, environment, publish, republish  # noqa: E402
from timing_noise import shipped_table_workloads  # noqa: E402

TARGETS = ("bert-tiny", "tinybert-4", "minilm-l6-h384")
COMPANIES = ("alone", "beside bert-base", "among random")
RECORD = RESULTS / "company_effect.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--summary-only", action="store_true", help="rewrite the README section from the record")
    args = parser.parse_args(argv)
    if args.summary_only:
        return republish(RECORD, "company_effect", markdown)

    import numpy as np

    from edgebert import zoo
    from edgebert.arch import SPACE
    from edgebert.device.timing import TimingPolicy, measure

    table, targets = shipped_table_workloads([(n, zoo.get(n)) for n in TARGETS])
    rng = random.Random(0)
    company = {
        "alone": [],
        "beside bert-base": shipped_table_workloads([("bert-base", zoo.get("bert-base"))])[1],
        "among random": shipped_table_workloads([(f"random{i}", SPACE.sample(rng)) for i in range(6)])[1],
    }
    policy = TimingPolicy(threads=2, warmup=3, runs=30, rounds=6, windows=1)
    per = {c: {t.name: [] for t in targets} for c in COMPANIES}
    canary = {c: [] for c in COMPANIES}
    for _ in range(args.windows):
        for c in COMPANIES:  # alternating: every company sees the same drift
            report = measure(targets + company[c], policy=policy, nominal_canary_ms=table.nominal_canary_ms)
            canary[c].append(report.canary_median_ms)
            for t in targets:
                per[c][t.name].append(report[t.name].normalised * table.nominal_canary_ms)
    rows = []
    for t in targets:
        median = {c: float(np.median(per[c][t.name])) for c in COMPANIES}
        rows.append({"model": t.name, "alone_ms": median["alone"],
                     **{c: {"ms": median[c], "over_alone": median[c] / median["alone"], "windows_ms": per[c][t.name]}
                        for c in COMPANIES}})
    result = {"environment": environment(), "policy": policy.to_dict(), "windows": args.windows,
              "command": "python tools/company_effect.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "companies": {"beside bert-base": ["bert-base"],
                            "among random": [ws.name for ws in company["among random"]]},
              "canary_ms": canary, "rows": rows}
    publish(RECORD, result, "company_effect", markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = ["| model | alone, ms (nominal speed) | beside bert-base | among random architectures |", "|---|---:|---:|---:|"]
    for r in result["rows"]:
        cells = " | ".join(f"{r[c]['ms']:.2f} ({r[c]['over_alone'] - 1:+.1%})" for c in COMPANIES[1:])
        lines.append(f"| {r['model']} | {r['alone_ms']:.2f} | {cells} |")
    p = result["policy"]
    lines.append(f"\n`{result['command'].strip()}`: canary-normalised medians over {result['windows']} windows per "
                 f"company, companies alternating; {p['runs']} runs in {p['rounds']} rounds per window; "
                 f"{result['environment']['device']}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
