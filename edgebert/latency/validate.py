"""Prove a latency table: predicted against measured on random architectures it has never seen.

    report = validate_table("latency_tables/x.json", samples=50, seed=7, plot="scatter.png")

Architectures are drawn with the seed from the whole search space (arch.SPACE:
off-grid dimensions, random MLP expressions, stacks 1-4, 1-12 layers, every
embedding kind), the smallest corner always included, never one of the
table's calibration models. Each is exported through the one exporter and
measured end to end through the harness in `windows` separate windows (fresh
worker processes, each model among different company in each); its measured
value is the median of its canary-normalised medians. A window is measured
again when its canary shows the machine far below its usual speed or an entry
spreads too wide — never because of what the prediction says.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

from edgebert.arch import SPACE, ArchSpec
from edgebert.device import stats
from edgebert.device.timing import TimingPolicy, Workload, measure
from edgebert.errors import EdgebertError
from edgebert.export import cached_export, model_inputs
from edgebert.latency.predictor import PREDICTOR_VERSION, predict
from edgebert.latency.table import LatencyTable

GROUP = 10  # models alive in one worker at a time (big random models weigh hundreds of MB)
MAX_SPREAD = 0.5
MIN_SPEED = 0.7


def sample_architectures(table: LatencyTable, samples: int, seed: int) -> list[ArchSpec]:
    """The smallest corner, then random points of the whole space; never a calibration model."""
    rng = random.Random(seed)
    calibration = {ArchSpec.from_dict(m["spec"]).key() for m in table.calibration.get("models", [])}
    specs = [SPACE.smallest()]
    seen = {specs[0].key()} | calibration
    while len(specs) < samples:
        spec = SPACE.sample(rng)
        if spec.key() not in seen:
            seen.add(spec.key())
            specs.append(spec)
    return specs[:samples]


def _measure_windows(workloads: list[Workload], policy: TimingPolicy, nominal: float, rng: random.Random,
                     progress) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per model, its canary-normalised median in each of policy.windows windows, and that window's
    speed (nominal canary ms / its canary ms: how calm the machine was).

    Window by window, every model once, in groups of GROUP drawn afresh from a permutation: a model's
    figure moves with the models beside it in the worker (by up to 5 %, README "company") and with the
    machine's drift over minutes, so a model keeps neither its company nor its moment from one window
    to the next, and the median over windows averages both instead of fixing them per model."""
    per_model: dict[str, list[float]] = {w.name: [] for w in workloads}
    speeds: dict[str, list[float]] = {w.name: [] for w in workloads}
    one = TimingPolicy(threads=policy.threads, spinning=policy.spinning, warmup=policy.warmup, runs=policy.runs,
                       rounds=policy.rounds, windows=1)
    for _ in range(policy.windows):
        order = rng.sample(workloads, len(workloads))
        for start in range(0, len(order), GROUP):
            group = order[start:start + GROUP]
            for attempt in range(3):
                report = measure(group, policy=one, nominal_canary_ms=nominal)
                speed = report.speed_factor or 1.0
                spread = max(report[w.name].spread for w in group)
                if speed >= MIN_SPEED and spread <= MAX_SPREAD:
                    break
            for w in group:
                per_model[w.name].append(report[w.name].normalised)
                speeds[w.name].append(speed)
            progress(len(group))
    return per_model, speeds


def validate_table(
    path: str | Path,
    *,
    samples: int = 50,
    seed: int | None = None,
    windows: int = 3,
    runs: int = 10,
    plot: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Predicted vs measured on `samples` random architectures; the JSON-ready report."""
    if samples < 2:
        raise EdgebertError("--samples must be at least 2")
    if windows < 3:
        raise EdgebertError("--windows must be at least 3 (a measurement is the median of separate windows)")
    table = LatencyTable.load(path)
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    settings = table.settings
    seq, batch, precision = settings["seq_lens"][0], settings["batch"], settings["precision"]
    graph_opt = settings.get("graph_optimization", "none")
    specs = sample_architectures(table, samples, seed)
    from tqdm import tqdm

    bar = tqdm(total=len(specs) * (1 + windows), desc="validating", unit="step", disable=not progress,
               file=sys.stderr)
    rows = []
    policy = TimingPolicy(threads=settings["threads"], spinning=settings["spinning"], warmup=2, runs=runs,
                          rounds=5, windows=windows)
    # Export everything first: a window right after a burst of PyTorch work reads slow.
    workloads = []
    for i, spec in enumerate(specs):
        _, onnx_path = cached_export(f"sample{i}", spec=spec, int8=precision == "int8", graph_optimization=graph_opt)
        workloads.append(Workload(f"sample{i}", onnx_path, model_inputs(spec, batch, seq)))
        bar.update(1)
    measured, speeds = _measure_windows(workloads, policy, table.nominal_canary_ms, random.Random(seed), bar.update)
    for w, spec in zip(workloads, specs):
        p = predict(spec, table, seq_len=seq, batch=batch)
        meas = stats.median(measured[w.name])
        rows.append({
            "name": w.name, "summary": spec.summary(), "spec": spec.to_dict(),
            "predicted_ms": p.latency_ms, "measured_ms": meas * table.nominal_canary_ms,
            "predicted": p.normalised, "measured": meas, "window_measured": measured[w.name],
            "window_speed": speeds[w.name], "error_pct": 100.0 * (p.normalised - meas) / meas,
            "extrapolated": p.extrapolated,
        })
    bar.close()
    result = summarize(rows)
    result["machine_speed"] = machine_speed(rows)
    result.update({"table": str(path), "seed": seed, "windows": windows, "runs_per_window": runs,
                   "predictor": PREDICTOR_VERSION, "groups": "shuffled per window",
                   "seq_len": seq, "batch": batch, "precision": precision, "rows": rows})
    if plot:
        scatter(rows, Path(plot), title=f"{table.name}: {result['within_5pct']:.0%} within ±5 %")
        result["plot"] = str(plot)
    return result


def summarize(rows: list[dict]) -> dict[str, Any]:
    from scipy.stats import spearmanr

    errors = [abs(r["error_pct"]) for r in rows]
    rho = spearmanr([r["predicted"] for r in rows], [r["measured"] for r in rows]).statistic
    return {
        "samples": len(rows),
        "within_5pct": sum(e <= 5 for e in errors) / len(rows),
        "within_10pct": sum(e <= 10 for e in errors) / len(rows),
        "mean_abs_pct": sum(errors) / len(rows),
        "max_abs_pct": max(errors),
        "spearman": float(rho),
    }


def machine_speed(rows: list[dict]) -> dict[str, float]:
    """How calm the machine was over the validation: the median window speed (the table's nominal
    canary ms over the window's canary ms), and the share of model-windows kept below MIN_SPEED after
    three attempts. A slow machine moves models less than the canary (README "canary"), so a large
    share of slow windows biases every normalised figure low: the figures then describe that state."""
    speeds = [s for r in rows for s in r["window_speed"]]
    return {"median": stats.median(speeds), "below_min": sum(s < MIN_SPEED for s in speeds) / len(speeds),
            "min_speed": MIN_SPEED}


def scatter(rows: list[dict], path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meas = [r["measured_ms"] for r in rows]
    pred = [r["predicted_ms"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(meas, pred, s=14)
    lo, hi = min(meas + pred) * 0.8, max(meas + pred) * 1.25
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    for f in (0.95, 1.05):
        ax.plot([lo, hi], [lo * f, hi * f], "k:", lw=0.6)
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured ms (nominal speed)",
           ylabel="predicted ms", title=title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
