"""Is the search's proxy worth something? Kendall tau between proxy scores and stand-alone
distilled scores over >= 8 architectures (goal: tau >= 0.5).

    python tools/proxy_rank.py                          # 8 + 8 architectures, ~75 min
    python tools/proxy_rank.py --kinds kd --count 8     # the short-KD proxy only, ~35 min
    python tools/proxy_rank.py --summary-only           # README section again, from the records

Two proxies, as the search uses them:
- kd: the backbone and structure stages' proxy (extraction from the teacher, `proxy_steps`
  of KD, metric on the held-out split of the training data) over architectures drawn at
  random from the search's default space (backbone, MLP expressions, dimensions; two layers
  or more since 2026-12-07, records before that from one) under the 1/X budget;
- supernet: the dimension stage's proxy (a sub-network sliced from the warmed-up supernet,
  no training) over dimension points of the structure the search chose. It needs a
  finished search in --search (default runs/search-sst2-20x-seed0, from
  `python tools/search_bench.py --speedup 20`).
Each architecture is then distilled stand-alone by the search's final recipe
(`verify.final_distill`, --minutes each) and scored on SST-2 dev, once per seed of
--target-seeds (default 2): tau is taken against the seeds' mean, and tau between the
seeds' own dev scores is the ceiling any proxy can reach against one seed's target (two
architectures within the target's noise of each other rank by chance). The kd proxy is
also read as a continuous score, the held-out KL divergence from the teacher (held-out
accuracy steps in units of 1/688). Records tools/results/proxy_rank.json and the README
section `proxy_rank`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import GLUE, REPO, RESULTS, environment, publish, republish  # noqa: E402


def draw(stage, ctx, count: int, seed: int) -> list:
    """`count` distinct points of `stage` predicted under the budget, spread over latency."""
    from edgebert.search.space import check_point

    rng, points = random.Random(seed), {}
    for _ in range(20_000):
        _, spec = stage.sample(rng)
        spec = check_point(spec, ctx.limits)
        if spec.key() not in points and ctx.latency(spec) <= ctx.budget_ms:
            points[spec.key()] = spec
        if len(points) >= 4 * count:
            break
    by_latency = sorted(points.values(), key=ctx.latency)
    step = max(1, len(by_latency) // count)
    return by_latency[::step][:count]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", choices=("kd", "supernet"), default=["kd", "supernet"])
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--speedup", type=float, default=20.0)
    ap.add_argument("--minutes", type=float, default=4.0, help="stand-alone distillation per architecture")
    ap.add_argument("--target-seeds", type=int, default=2, help="stand-alone distillations per architecture")
    ap.add_argument("--variants", nargs="*", default=[], metavar="steps=N,lr=X",
                    help="further kd proxies read on the same architectures (e.g. steps=600 lr=1e-3 steps=600,lr=1e-3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher", type=Path, default=REPO / "runs" / "teacher-sst2")
    ap.add_argument("--search", type=Path, default=REPO / "runs" / "search-sst2-20x-seed0")
    ap.add_argument("--data", type=Path, default=GLUE)
    ap.add_argument("--out-root", type=Path, default=REPO / "runs" / "proxy-rank")
    ap.add_argument("--summary-only", action="store_true", help="rewrite the README section from the records")
    args = ap.parse_args()
    if args.summary_only:
        republish(RESULTS / "proxy_rank.json", "proxy_rank", table)
        return

    import numpy as np
    from scipy.stats import kendalltau

    from edgebert.arch import ArchSpec
    from edgebert.files import read_json
    from edgebert.search.context import PROXY_LR, SearchConfig, build_context
    from edgebert.search.progressive import STATE_FILE, structure_pool
    from edgebert.search.space import DimensionStage, JointRandomStage
    from edgebert.search.supernet import Supernet
    from edgebert.distill.evaluate import metrics_of, predict
    from edgebert.search.verify import final_distill

    cfg = SearchConfig(teacher=str(args.teacher), task="sst2", data=str(args.data), out=str(args.out_root),
                       speedup=args.speedup, seed=args.seed, final_minutes=args.minutes)
    ctx = build_context(cfg)
    path = RESULTS / "proxy_rank.json"
    # Each kind is recorded as it finishes and kept beside the other kind's earlier record,
    # so the two proxies (~35 min each) can run in separate sittings.
    earlier = read_json(path, "proxy_rank record") if path.is_file() else {}
    kept = earlier.get("kinds", {})
    if kept and not same_machine(earlier):
        # Another CPU's record: kept whole in history, never mixed with this machine's kinds.
        (RESULTS / "history").mkdir(exist_ok=True)
        from edgebert.device.fingerprint import machine_tag

        moved = RESULTS / "history" / f"proxy_rank@{machine_tag(earlier['environment']['fingerprint'])}.json"
        if moved.exists():  # that machine's still earlier record is kept too: name this one by its last run's day
            last = max(v.get("recorded", "") for v in kept.values())[:10]
            moved = moved.with_name(f"{moved.stem}-{last}.json")
        path.replace(moved)
        kept = {}
    record = {"environment": environment(), "speedup": args.speedup, "minutes": args.minutes, "seed": args.seed,
              "kinds": kept}
    teacher_heldout = predict(ctx.teacher.model, ctx.heldout_enc)  # (N, C), for the KL reading
    for kind in args.kinds:
        if kind == "kd":
            specs = draw(JointRandomStage(ctx.limits, structure_pool(cfg), cfg.min_layers), ctx, args.count, args.seed)

            def proxy(spec):
                logits = ctx.proxy_logits(spec)
                return metrics_of(ctx.task.name, logits, ctx.heldout_enc)[ctx.metric], kl_from(teacher_heldout, logits)

            def variant_scores(spec) -> dict:
                return {v: metrics_of(ctx.task.name, ctx.proxy_logits(spec, **parse_variant(v)), ctx.heldout_enc)[ctx.metric]
                        for v in args.variants}
        else:
            state = read_json(args.search / STATE_FILE, "search state")
            structure = ArchSpec.from_dict(state["stages"]["structure"]["spec"])
            stage = DimensionStage(structure, ctx.limits)
            net = Supernet.load(args.search / "supernet", stage, ctx.mapping(structure))
            specs = draw(stage, ctx, args.count, args.seed)
            proxy = lambda spec: (net.score(spec, ctx.heldout_enc, ctx.task.name, ctx.metric), None)  # noqa: E731
            variant_scores = lambda spec: {}  # noqa: E731
        rows = []
        for i, spec in enumerate(specs):
            t0 = time.perf_counter()
            score, kl = proxy(spec)
            proxy_s = time.perf_counter() - t0
            variants = variant_scores(spec)
            devs, minutes = [], []
            for s in range(args.target_seeds):
                one = replace(ctx, cfg=replace(cfg, out=str(args.out_root / f"{kind}-{i}-seed{s}"), seed=s))
                final = final_distill(one, {"spec": spec.to_dict()}, progress=False)
                devs.append(final["dev"][ctx.metric])
                minutes.append(round(final["seconds"] / 60, 1))
            rows.append({"spec": spec.to_dict(), "summary": spec.summary(), "predicted_ms": ctx.latency(spec),
                         "proxy": score, "proxy_kl": kl, "proxy_s": round(proxy_s, 1), "variants": variants, "dev": float(np.mean(devs)),
                         "dev_seeds": devs, "distill_min": minutes})
            print(f"{kind} {i}: {spec.summary()} proxy {score:.4f} ({proxy_s:.0f} s) -> dev "
                  + " ".join(f"{d:.4f}" for d in devs))
        tau, p = kendalltau([r["proxy"] for r in rows], [r["dev"] for r in rows])
        result = {"tau": tau, "p_value": p, "rows": rows, "minutes": args.minutes, "speedup": args.speedup,
                  "min_layers": cfg.min_layers,  # the kd architectures' depth floor (records without it: 1)
                  "target_seeds": args.target_seeds, "recorded": time.strftime("%Y-%m-%d %H:%M")}
        if kind == "kd":  # lower KL is better: ranked by -KL
            result["tau_kl"] = kendalltau([-r["proxy_kl"] for r in rows], [r["dev"] for r in rows])[0]
        if args.target_seeds >= 2:  # the target's agreement with itself
            result["tau_seeds"] = kendalltau([r["dev_seeds"][0] for r in rows], [r["dev_seeds"][1] for r in rows])[0]
            result["tau_seed0"] = kendalltau([r["proxy"] for r in rows], [r["dev_seeds"][0] for r in rows])[0]
        if args.variants and kind == "kd":  # the same architectures and targets, other short KD runs
            result["proxy_settings"] = {"steps": cfg.proxy_steps, "lr": PROXY_LR}
            result["tau_variants"] = {v: kendalltau([r["variants"][v] for r in rows], [r["dev"] for r in rows])[0]
                                      for v in args.variants}
        record["kinds"][kind] = result
        print(f"{kind}: Kendall tau {tau:.3f} (p {p:.3f}) over {len(rows)} architectures; "
              + ", ".join(f"{k} {result[k]:.3f}" for k in ("tau_kl", "tau_seeds", "tau_seed0") if k in result))
        publish(path, record, "proxy_rank", table(record))


def kl_from(teacher_logits, logits) -> float:
    """Mean KL(teacher || student) over held-out examples, from (N, C) logits: a continuous reading
    of how far the proxy's student is from its teacher."""
    import numpy as np

    def log_softmax(x):
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    lt, ls = log_softmax(np.asarray(teacher_logits, float)), log_softmax(np.asarray(logits, float))
    return float((np.exp(lt) * (lt - ls)).sum(axis=1).mean())


def same_machine(record: dict) -> bool:
    from edgebert.device.fingerprint import fingerprint, machine_key

    return machine_key(record["environment"]["fingerprint"]) == machine_key(fingerprint(2))


def kept_records(current: dict) -> list[dict]:
    """This machine's record and every earlier one kept in tools/results/history, oldest first."""
    import json

    earlier = [json.loads(p.read_text()) for p in sorted((RESULTS / "history").glob("proxy_rank@*.json"))]
    first_day = lambda r: min(v.get("recorded", "") for v in r["kinds"].values())  # noqa: E731
    return sorted([*(r for r in earlier if r != current), current], key=first_day)


def short_device(device: str) -> str:
    """'AMD EPYC [25/17/1, L3 32 MiB], 2C/2T, ...' -> 'AMD EPYC [25/17/1, L3 32 MiB]' (the CPU alone)."""
    return device.split("], ")[0] + "]" if "], " in device else device.split(", ")[0]


def table(record: dict) -> str:
    lines = ["`python tools/proxy_rank.py` — each architecture distilled stand-alone by the search's final recipe, "
             "SST-2 dev; every record kept, oldest first (earlier ones in tools/results/history)", "",
             "| recorded | machine | proxy | architectures | depth | budget | stand-alone minutes each | seeds each "
             "| Kendall τ (vs the seeds' mean) | p | τ vs seed 0 alone | τ of the held-out KL "
             "| τ seed 0 vs seed 1 (the target's own) | proxy cost per architecture |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    for one in kept_records(record):
        for kind, v in sorted(one["kinds"].items(), key=lambda kv: kv[1].get("recorded", "")):
            cost = sum(r["proxy_s"] for r in v["rows"]) / len(v["rows"])
            lines.append(f"| {v.get('recorded', '')[:10]} | {short_device(one['environment']['device'])} | {kind} | "
                         f"{len(v['rows'])} | {depth_of(kind, v)} | 1/{v['speedup']:g} | {v['minutes']:g} | {v.get('target_seeds', 1)} | "
                         f"{v['tau']:.3f} | {v['p_value']:.3f} | {fmt(v.get('tau_seed0'))} | {fmt(v.get('tau_kl'))} | "
                         f"{fmt(v.get('tau_seeds'))} | {cost:.1f} s |")
    for kind, v in sorted(record["kinds"].items()):
        if v.get("tau_variants"):
            lines += ["", f"Other short KD runs as the {kind} proxy, on the same architectures and targets (the search's: "
                      f"{v['proxy_settings']['steps']} steps at lr {v['proxy_settings']['lr']:g}):", "",
                      "| proxy variant | Kendall τ (vs the seeds' mean) |", "|---|---:|"]
            lines += [f"| {name} | {tau:.3f} |" for name, tau in v["tau_variants"].items()]
    return "\n".join(lines)


def depth_of(kind: str, result: dict) -> str:
    """The depths a record's architectures were drawn from: the kd proxy's from the space's depth
    floor up (records before the floor was recorded drew from one layer); the supernet's dimension
    points keep the depth of the structure they slice."""
    from edgebert.search.space import UNRECORDED_MIN_LAYERS

    return f"≥ {result.get('min_layers', UNRECORDED_MIN_LAYERS)}" if kind == "kd" else "the structure's"


def parse_variant(text: str) -> dict:
    """'steps=600,lr=1e-3' -> {'steps': 600, 'lr': 0.001} (proxy_logits' keywords)."""
    out = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key not in ("steps", "lr") or not value:
            sys.exit(f"proxy_rank: error: variant {text!r}: give steps=N and/or lr=X, comma-separated")
        out[key] = int(value) if key == "steps" else float(value)
    return out


if __name__ == "__main__":
    main()
