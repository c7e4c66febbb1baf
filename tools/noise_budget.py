"""Why one profile's table misses ±5 % on a noisy machine: a validation's noise budget, read from
recorded runs (no timing; seconds).

    python tools/noise_budget.py        # the EPYC's fp32 records (defaults below)
    python tools/noise_budget.py --validation V.json --profiles A.json B.json C.json
    python tools/noise_budget.py --name spread_rule --validation V1.json V2.json \
        --profiles A.json B.json C.json D.json --labels "old 1" "old 2" "new 1" "new 2" --no-pools
        # profiles made two ways judged on the same measurements: record noise_budget-spread_rule.json,
        # README section noise_budget_spread_rule

1. The measurement's floor: each validated model's median over its windows, bootstrapped. Its
   uncertainty, and the share within ±5 % that an exact predictor would show through it alone.
   The same floor is given for every table's latest validation (tools/results/validate-*.json).
2. The table's floor: the same measured architectures priced by each independent profile of
   the device, and by every pool of them (`edgebert tables merge`): how far one profile's
   predictions sit from another's, and what pooling profiles buys.

The validation's measurements are independent of every profile (taken in their own windows),
so each profile is judged on the same footing. Records tools/results/noise_budget.json and the
README section `noise_budget`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import REPO, RESULTS, publish  # noqa: E402

HISTORY = RESULTS / "history"
DEFAULT_VALIDATION = HISTORY / "validate-amd-epyc-2t-fp32-s128-b1-one-profile.json"
DEFAULT_PROFILES = [HISTORY / "amd-epyc-2t-fp32-s128-b1-one-profile.json",
                    HISTORY / "repeat-amd-epyc" / "first.json", HISTORY / "repeat-amd-epyc" / "second.json"]


def measurement_floor(rows: list[dict], draws: int = 4000) -> dict:
    """Bootstrap sd (% of the median) of each model's window median; the ±5 % share an exact
    predictor would reach against medians that uncertain (normal approximation)."""
    import numpy as np

    rng = np.random.default_rng(0)
    sds = []
    for r in rows:
        w = np.asarray(r["window_measured"], float)
        medians = np.median(rng.choice(w, (draws, len(w))), axis=1)
        sds.append(float(100 * medians.std() / np.median(w)))
    exact = float(np.mean([math.erf(5 / (sd * math.sqrt(2))) for sd in sds]))
    return {"windows": len(rows[0]["window_measured"]), "median_sd_pct": float(np.median(sds)),
            "p90_sd_pct": float(np.percentile(sds, 90)), "exact_predictor_within_5pct": exact}


def priced(rows: list[dict], table_path: Path) -> list[float]:
    """Signed error % of each validated model, priced by this table (canary units on both sides)."""
    from edgebert.arch import ArchSpec
    from edgebert.latency.predictor import predict
    from edgebert.latency.table import LatencyTable

    table = LatencyTable.load(table_path, check_device=False)
    return [100.0 * (predict(ArchSpec.from_dict(r["spec"]), table).normalised / r["measured"] - 1) for r in rows]


def figures(errors: list[float]) -> dict:
    import numpy as np

    e = np.abs(errors)
    return {"within_5pct": float(np.mean(e <= 5)), "within_10pct": float(np.mean(e <= 10)),
            "mean_abs_pct": float(e.mean()), "max_abs_pct": float(e.max()), "signed_median_pct": float(np.median(errors))}


def main() -> None:
    import numpy as np

    from edgebert.latency.merge import merge

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--validation", type=Path, nargs="+", default=[DEFAULT_VALIDATION],
                    help="one or more validations of the same settings: their models pooled")
    ap.add_argument("--profiles", type=Path, nargs="+", default=DEFAULT_PROFILES)
    ap.add_argument("--labels", nargs="+", help="one per profile (default: profile 1, 2, ...)")
    ap.add_argument("--no-pools", action="store_true", help="price by each profile only, not by their pools")
    ap.add_argument("--name", help="record noise_budget-NAME.json and README section noise_budget_NAME "
                                   "(without: noise_budget.json, with every validation's floor)")
    args = ap.parse_args()
    if args.labels and len(args.labels) != len(args.profiles):
        ap.error("--labels needs one label per profile")
    per_validation = {v: json.loads(v.read_text())["rows"] for v in args.validation}
    rows = [r for v in args.validation for r in per_validation[v]]
    floor = measurement_floor(rows)
    names = args.labels or [f"profile {i + 1}" for i in range(len(args.profiles))]
    errors = {n: priced(rows, p) for n, p in zip(names, args.profiles)}
    results = [{"tables": n, **figures(errors[n])} for n in names]
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(2, 1 + (1 if args.no_pools else len(args.profiles))):
            for combo in itertools.combinations(range(len(args.profiles)), k):
                out = Path(tmp) / f"pool-{'-'.join(map(str, combo))}.json"
                merge([args.profiles[i] for i in combo], out)
                label = "pooled " + " + ".join(names[i] if args.labels else str(i + 1) for i in combo)
                results.append({"tables": label, **figures(priced(rows, out))})
    # Each validation's own models priced by each profile: a level that moves between validations is the
    # machine's state at measurement time, not the profile's.
    by_validation, start = {}, 0
    for v in args.validation:  # rows hold the validations' models in order: slice each one's errors
        end = start + len(per_validation[v])
        by_validation[v.name] = {n: figures(errors[n][start:end]) for n in names}
        start = end
    apart = {f"{a} and {b}": float(np.median(np.abs((1 + np.array(errors[b]) / 100) / (1 + np.array(errors[a]) / 100) - 1)) * 100)
             for a, b in itertools.combinations(names, 2)}
    from finetune_teacher import environment

    from edgebert.device.fingerprint import describe

    # The floor of every current validation (each table's latest, every machine): what its windows allow.
    floors = [] if args.name else [{"validation": v.name, **measurement_floor(json.loads(v.read_text())["rows"])}
                                   for v in sorted(RESULTS.glob("validate-*.json"))]
    record = {"validation": [str(v.resolve().relative_to(REPO)) for v in args.validation], "models": len(rows),
              "command": shlex.join(["python", "tools/noise_budget.py", *sys.argv[1:]]), "floors": floors,
              "profiles": [str(p.resolve().relative_to(REPO)) for p in args.profiles],
              "created": [json.loads(p.read_text()).get("created") for p in args.profiles],
              "measurement_floor": floor, "profiles_apart_median_abs_pct": apart, "results": results,
              "by_validation": by_validation,
              # The machine that measured the figures (the profiles' and validations'), not this one, which only prices.
              "measured_on": describe(json.loads(args.profiles[0].read_text())["device"]),
              "environment": environment()}
    print(json.dumps({k: v for k, v in record.items() if k != "environment"}, indent=1))
    if args.name:
        publish(RESULTS / f"noise_budget-{args.name}.json", record, f"noise_budget_{args.name}", markdown(record))
    else:
        publish(RESULTS / "noise_budget.json", record, "noise_budget", markdown(record))


def markdown(r: dict) -> str:
    f = r["measurement_floor"]
    lines = ["| tables | within ±5 % | within ±10 % | mean abs % | max abs % | signed median % |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {x['tables']} | {x['within_5pct']:.0%} | {x['within_10pct']:.0%} | {x['mean_abs_pct']:.1f} | "
              f"{x['max_abs_pct']:.1f} | {x['signed_median_pct']:+.1f} |" for x in r["results"]]
    apart = ", ".join(f"{v:.1f} % ({k})" for k, v in r["profiles_apart_median_abs_pct"].items())
    validations = r["validation"] if isinstance(r["validation"], list) else [r["validation"]]  # one, before
    floors = ["| validation | windows | median sd of a model's median | exact predictor within ±5 % |",
              "|---|---:|---:|---:|"]
    floors += [f"| `{x['validation']}` | {x['windows']} | {x['median_sd_pct']:.1f} % | {x['exact_predictor_within_5pct']:.0%} |"
               for x in r["floors"]]
    pooled = " and by every pool of them (`edgebert tables merge`)" if len(r["results"]) > len(r["profiles"]) else ""
    text = ("\n".join(lines) + "\n\n"
            f"`{r.get('command', 'python tools/noise_budget.py')}`: the {r['models']} architectures of "
            f"{' and '.join(f'`{v}`' for v in validations)}, each measured once, "
            f"priced by each of {len(r['profiles'])} {'independent profiles' if r['floors'] else 'tables'} (created {', '.join(r['created'])}){pooled}"
            f"{'; profile 1 is the one that validation judged' if r['floors'] else ''}. "
            f"Measurement floor: a model's {f['windows']}-window median "
            f"is uncertain by a median **{f['median_sd_pct']:.1f} %** (bootstrap sd; p90 {f['p90_sd_pct']:.1f} %), "
            f"so an exact predictor would read **{f['exact_predictor_within_5pct']:.0%}** within ±5 % against these "
            f"medians. Two profiles' predictions of the same models lie a median {apart} apart. "
            f"{r.get('measured_on', r['environment']['device'])}.")
    if not r["floors"]:
        return text
    return (text + "\n\nThe same floor for every table's latest validation (the bootstrap above; the figures of the "
            "table at the top of this section can be no better than these, whatever the predictor):\n\n" + "\n".join(floors))


if __name__ == "__main__":
    main()
