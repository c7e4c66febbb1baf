"""Does a longer KD proxy rank architectures better? The search's backbone and structure proxy
(extraction, then `proxy_steps` of KD, accuracy on the held-out split of the training data)
read at several lengths, against stand-alone targets already distilled.

    python tools/proxy_steps.py [--steps 60 150 300 600] [--record FILE]   # ~15 min on the Zen 3 EPYC
    python tools/proxy_steps.py --summary-only                          # README section again

The targets are the kd rows of a `tools/proxy_rank.py` record (default: the newest kd rows,
current or in tools/results/history): each architecture's spec and its SST-2 dev accuracy after
the search's final recipe, per seed. Distilling them again would cost ~8 minutes each; the proxy
costs seconds to a minute, so only the proxy is run here, with this checkout's teacher
(runs/teacher-sst2). The record keeps the targets' device and this teacher's dev accuracy: when
another machine fine-tuned the targets' teacher, the ranking also carries the two teachers'
difference. Kendall tau per proxy length against the seeds' mean and against seed 0, and the
cost per architecture. Records tools/results/proxy_steps.json (one entry per length, written as
each finishes, so a rerun skips the lengths done) and the README section `proxy_steps`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import GLUE, REPO, RESULTS, environment, publish, republish  # noqa: E402

RECORD = RESULTS / "proxy_steps.json"


def source_record(path: Path | None) -> Path:
    """The proxy_rank record whose kd rows are the targets."""
    if path is not None:
        if not path.is_file():
            raise SystemExit(f"proxy_steps: --record {path}: no such file")
        return path.resolve()
    # The newest kd rows, by the day they were recorded (a fresh clone's file times say nothing):
    # the current record may hold only the supernet kind, its machine's kd rows moved to history.
    records = [RESULTS / "proxy_rank.json", *(RESULTS / "history").glob("proxy_rank@*.json")]
    with_kd = {p: kinds["kd"].get("recorded", "") for p in records if p.is_file()
               and "kd" in (kinds := json.loads(p.read_text()).get("kinds", {}))}
    if not with_kd:
        raise SystemExit("proxy_steps: no proxy_rank record with kd rows to take targets from; "
                         "run tools/proxy_rank.py --kinds kd")
    return max(with_kd, key=with_kd.get)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[60, 150, 300, 600])
    ap.add_argument("--record", type=Path, default=None, help="a proxy_rank record with kd rows (the targets)")
    ap.add_argument("--teacher", type=Path, default=REPO / "runs" / "teacher-sst2")
    ap.add_argument("--data", type=Path, default=GLUE)
    ap.add_argument("--out-root", type=Path, default=REPO / "runs" / "proxy-steps")
    ap.add_argument("--summary-only", action="store_true", help="rewrite the README section from the record")
    args = ap.parse_args(argv)
    if args.summary_only:
        return republish(RECORD, "proxy_steps", markdown)
    if any(s < 1 for s in args.steps):
        raise SystemExit("proxy_steps: --steps must be positive")

    from scipy.stats import kendalltau
    from tqdm import tqdm

    from edgebert.arch import ArchSpec
    from edgebert.errors import EdgebertError
    from edgebert.files import read_json
    from edgebert.search.context import PROXY_LR, SearchConfig, build_context

    source = source_record(args.record)
    try:
        targets = read_json(source, "proxy_rank record")
    except EdgebertError as e:
        raise SystemExit(f"proxy_steps: {e}") from None
    shown = str(source.relative_to(REPO)) if source.is_relative_to(REPO) else str(source)
    kd = targets.get("kinds", {}).get("kd")
    if not kd or len(kd.get("rows", [])) < 3:
        raise SystemExit(f"proxy_steps: {source} has no kd rows to rank")
    rows = kd["rows"]
    cfg = SearchConfig(teacher=str(args.teacher), task="sst2", data=str(args.data), out=str(args.out_root),
                       speedup=kd["speedup"], seed=targets.get("seed", 0))
    ctx = build_context(cfg)
    finetune = args.teacher / "finetune.json"  # written by tools/finetune_teacher.py
    teacher_dev = read_json(finetune, "teacher record").get("dev", {}) if finetune.is_file() else {}

    record = read_json(RECORD, "proxy_steps record") if RECORD.is_file() else {}
    if record.get("source") != shown or record.get("lr") != PROXY_LR:
        record = {}
    record.update({
        "environment": environment(), "source": shown,
        "source_device": targets["environment"]["device"], "lr": PROXY_LR, "search_proxy_steps": cfg.proxy_steps,
        "teacher": {"path": str(args.teacher), "dev": teacher_dev},
        "targets": [{"summary": r["summary"], "dev": r["dev"], "dev_seeds": r["dev_seeds"]} for r in rows],
        "target_minutes": kd["minutes"],
    })
    record.setdefault("lengths", {})
    dev = [r["dev"] for r in rows]
    for steps in args.steps:
        if str(steps) in record["lengths"]:
            continue
        scores, seconds = [], []
        for r in tqdm(rows, desc=f"proxy {steps} steps", unit="arch", file=sys.stderr):
            t0 = time.perf_counter()
            scores.append(float(ctx.proxy_score(ArchSpec.from_dict(r["spec"]), steps=steps)))
            seconds.append(time.perf_counter() - t0)
        tau, p = kendalltau(scores, dev)
        record["lengths"][str(steps)] = {
            "steps": steps, "scores": scores, "tau": float(tau), "p_value": float(p),
            "tau_seed0": float(kendalltau(scores, [r["dev_seeds"][0] for r in rows])[0]),
            "seconds_per_arch": sum(seconds) / len(seconds)}
        print(f"proxy {steps} steps: Kendall tau {tau:.3f} (p {p:.3f})", flush=True)
        publish(RECORD, record, "proxy_steps", markdown(record))
    return record


def markdown(record: dict) -> str:
    lengths = sorted(record["lengths"].values(), key=lambda v: v["steps"])
    targets = record["targets"]
    lines = ["| proxy KD steps | Kendall τ (vs the seeds' mean) | p | τ vs seed 0 alone | seconds per architecture |"
             + "".join(f" {t['summary']} |" for t in targets),
             "|---:|---:|---:|---:|---:|" + "---:|" * len(targets),
             "| stand-alone dev (target) | | | | |" + "".join(f" {100 * t['dev']:.1f} |" for t in targets)]
    for v in lengths:
        mark = " (the search's)" if v["steps"] == record["search_proxy_steps"] else ""
        lines.append(f"| {v['steps']}{mark} | {v['tau']:.3f} | {v['p_value']:.3f} | {v['tau_seed0']:.3f} | "
                     f"{v['seconds_per_arch']:.0f} |" + "".join(f" {100 * s:.1f} |" for s in v["scores"]))
    teacher = record["teacher"]["dev"]
    teacher_dev = f"{100 * teacher['accuracy']:.2f} % dev" if isinstance(teacher, dict) and "accuracy" in teacher else "dev unknown"
    lines.append(f"\n`python tools/proxy_steps.py` — held-out accuracy (%) of each proxy at lr {record['lr']:g}; targets: "
                 f"{len(targets)} architectures of `{record['source']}` distilled stand-alone ({record['target_minutes']:g} "
                 f"min each, {len(targets[0]['dev_seeds'])} seeds) on {record['source_device']}; proxies run on {record['environment']['device']} "
                 f"with the teacher in {Path(record['teacher']['path']).name} ({teacher_dev}).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
