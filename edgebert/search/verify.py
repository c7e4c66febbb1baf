"""After the search: measure the best candidates for real, keep the best that truly fits, distil it fully.

Predictions are only predictions: the top candidates by held-out score are
exported and timed beside bert-base in one interleaved window of the harness
(no training runs then: the search's own processes have finished). A candidate
fits when its measured latency over bert-base's is at most 1/X (`--speedup X`),
or its canary-normalised time at the table's nominal speed is within
`--budget-ms`. When none of a round fits, the next round takes candidates
predicted faster, down to the budget's lower edge and below.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edgebert import zoo
from edgebert.arch import ArchSpec
from edgebert.device.timing import TimingPolicy, Workload, measure
from edgebert.errors import EdgebertError
from edgebert.export import cached_export, model_inputs
from edgebert.files import atomic_write_text
from edgebert.search.context import SearchContext

ROUNDS = 4
SHRINK = 0.95  # each fallback round looks at candidates predicted this much faster


def _candidates(study) -> list[dict]:
    from edgebert.search.progressive import evaluated

    seen, out = set(), []
    for t in sorted(evaluated(study), key=lambda t: (-t.values[0], t.values[1])):
        key = ArchSpec.from_dict(t.user_attrs["spec"]).key()
        if key not in seen:
            seen.add(key)
            out.append({"spec": t.user_attrs["spec"], "score": t.values[0], "predicted_ms": t.values[1],
                        "trial": t.number})
    return out


def measure_candidates(ctx: SearchContext, specs: list[ArchSpec], *, runs: int = 20) -> Any:
    """Each spec (and the reference, bert-base), exported the table's way, timed interleaved in one window."""
    graph_opt = ctx.table.settings.get("graph_optimization", "none")
    seq = ctx.seq_len
    workloads = []
    ref = ctx.cfg.compare_with
    if ref:
        _, path = cached_export(ref, int8=False, graph_optimization=graph_opt)
        workloads.append(Workload("reference", path, model_inputs(zoo.get(ref), 1, seq)))
    for i, spec in enumerate(specs, start=1):
        _, path = cached_export(f"cand-{spec.key()}", spec=spec, int8=False, graph_optimization=graph_opt)
        workloads.append(Workload(f"candidate{i}", path, model_inputs(spec, 1, seq)))
    s = ctx.table.settings
    policy = TimingPolicy(threads=s["threads"], spinning=s["spinning"], warmup=3, runs=runs, rounds=5)
    return measure(workloads, policy=policy, nominal_canary_ms=ctx.table.nominal_canary_ms)


def verify(ctx: SearchContext, study, state: dict) -> dict[str, Any]:
    cfg = ctx.cfg
    pool = _candidates(study)
    if not pool:
        raise EdgebertError("the search found no feasible candidate to verify")
    floor = cfg.min_budget_use * ctx.budget_ms
    rounds, tried = [], set()
    limit = ctx.budget_ms
    for r in range(ROUNDS):
        fresh = [c for c in pool if ArchSpec.from_dict(c["spec"]).key() not in tried and c["predicted_ms"] <= limit]
        batch = ([c for c in fresh if c["predicted_ms"] >= floor] or fresh)[: cfg.verify_top]
        if not batch:
            break
        specs = [ArchSpec.from_dict(c["spec"]) for c in batch]
        rep = measure_candidates(ctx, specs)
        bert = rep["reference"].median_ms if cfg.compare_with else None
        measured = []
        for i, c in enumerate(batch, start=1):
            t = rep[f"candidate{i}"]
            nominal = t.normalised * ctx.table.nominal_canary_ms if t.normalised else t.median_ms
            ratio = t.median_ms / bert if bert else None
            fits = ratio <= 1.0 / cfg.speedup if cfg.speedup else nominal <= ctx.budget_ms
            measured.append({**c, "measured_ms": t.median_ms, "measured_nominal_ms": nominal,
                             "bert_base_measured_ms": bert, "ratio_to_bert_base": ratio, "fits": fits,
                             "canary_ms": rep.windows[0].canary_median_ms})
            tried.add(specs[i - 1].key())
        rounds.append(measured)
        fitting = [c for c in measured if c["fits"]]
        if fitting:
            winner = max(fitting, key=lambda c: (c["score"], -c["predicted_ms"]))
            return {"winner": winner, "rounds": rounds}
        limit = min(c["predicted_ms"] for c in measured) * SHRINK
    raise EdgebertError(f"no candidate measured within the budget after {len(rounds)} rounds; "
                        "re-profile the latency table (the machine may differ from it)")


def final_distill(ctx: SearchContext, best: dict, *, progress: bool = True) -> dict[str, Any]:
    """The winner, distilled by the distillation engine (warm-up KD, then task KD) into <out>/student."""
    from edgebert.distill import DistillConfig, distill
    from edgebert.distill.run import checkpoint_dir, default_task_stage, default_warmup_stage

    cfg = ctx.cfg
    spec_path = cfg.out_path / "best_spec.json"
    atomic_write_text(spec_path, ArchSpec.from_dict(best["spec"]).to_json())
    out = cfg.out_path / "student"
    minutes = cfg.final_minutes
    dc = DistillConfig(
        student=str(spec_path), teacher=cfg.teacher, task=cfg.task, data=cfg.data, out=out, init="extract",
        warmup=replace(default_warmup_stage(), epochs=2.0, max_minutes=0.25 * minutes),
        warmup_examples=20_000 if not cfg.quick else 4_000,
        task_stage=replace(default_task_stage(), epochs=2.0, max_minutes=0.75 * minutes),
        max_length=cfg.max_length, seed=cfg.seed, resume=(checkpoint_dir(out) / "checkpoint.pt").is_file(),
    )
    result = distill(dc, progress=progress)
    return {k: result[k] for k in ("out", "dev", "teacher_dev", "retained", "seconds", "examples_per_s")}
