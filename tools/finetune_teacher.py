"""Acceptance: the embedded all-MiniLM-L6-v2 fine-tuned on SST-2 reaches >= 87 % dev
accuracy within 30 minutes on this machine (2 cores).

    python tools/finetune_teacher.py                                    # the acceptance run
    python tools/finetune_teacher.py --max-examples 256 --results /tmp/r.json --out /tmp/t   # a smoke run

Recipe (defaults): one epoch over the whole training split (67,349 phrases),
batch 32, lr 1e-4 (linear warm-up 6 %, linear decay), max length 64, length
bucketing (SST-2 phrases average 13 tokens, so batches are mostly short), and a
training cap of --max-minutes 27 that compresses the learning-rate schedule
instead of cutting it. Records tools/results/finetune_teacher_<task>.json
(metrics, wall time, examples/s, device, versions, threads) and the README
section `finetune_teacher` when the README has one.

The other benchmark scripts import `environment` and `publish` from here.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
GLUE = REPO.parent / "shared" / "data" / "glue"
RESULTS = REPO / "tools" / "results"


def environment(precision: str = "fp32", threads: int | None = None) -> dict:
    """Device, versions and threads, recorded beside every figure; `precision` and `threads` those
    the figures were timed at (default: fp32 at torch's thread count)."""
    from edgebert.device.fingerprint import describe, fingerprint
    from edgebert.export import versions

    fp = fingerprint(threads=threads or torch.get_num_threads(), precision=precision)
    return {"device": describe(fp), "fingerprint": fp, "versions": versions(), "torch_threads": torch.get_num_threads(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def publish(path: Path, record: dict, section: str | None, markdown: str) -> None:
    """Write the JSON record and, for a section (None for smoke runs) the README has, its Markdown."""
    from edgebert.files import atomic_write_json

    atomic_write_json(path, record)
    print(f"wrote {path}")
    if section is None:
        return
    sys.path.insert(0, str(REPO / "tools"))
    from readme_section import replace_section

    try:
        replace_section(section, markdown)
        print(f"updated the README section {section}")
    except SystemExit:
        print(f"(the README has no <!-- {section}:start --> ... <!-- {section}:end --> section; not updated)")


def republish(path: Path, section: str, markdown_of) -> dict:
    """--summary-only: the README section rewritten from the stored record, nothing measured again."""
    import json

    if not path.is_file():
        raise SystemExit(f"--summary-only: no record {path.relative_to(REPO)} yet; run the benchmark first")
    record = json.loads(path.read_text())
    publish(path, record, section, markdown_of(record))
    return record


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def main() -> None:
    from edgebert.distill import FinetuneConfig, finetune_teacher
    from edgebert.distill.run import default_finetune_stage

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--data", type=Path, default=GLUE)
    ap.add_argument("--teacher", default=None, help="default: the embedded all-MiniLM-L6-v2")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "teacher-sst2")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-examples", type=int, default=None, help="training examples to see (smoke runs: 256)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--max-minutes", type=float, default=27.0, help="training cap (the schedule ends there)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, the physical cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=None, help="default tools/results/finetune_teacher_<task>.json")
    args = ap.parse_args()
    set_threads(args.threads)

    stage = replace(default_finetune_stage(), epochs=args.epochs, max_examples=args.max_examples, lr=args.lr,
                    batch_size=args.batch_size, max_minutes=args.max_minutes)
    cfg = FinetuneConfig(task=args.task, data=args.data, out=args.out, teacher=args.teacher, stage=stage,
                         max_length=args.max_length, seed=args.seed)
    r = finetune_teacher(cfg, say=print)
    acc = r["dev"][r["metric"]]
    minutes = r["seconds"] / 60
    record = {"result": r, "recipe": {"epochs": args.epochs, "max_examples": args.max_examples, "lr": args.lr,
                                      "batch_size": args.batch_size, "max_length": args.max_length,
                                      "max_minutes": args.max_minutes, "seed": args.seed},
              "acceptance": {"dev": acc, "minutes": round(minutes, 2),
                             "passed": bool(args.task == "sst2" and acc >= 0.87 and minutes <= 30)},
              **environment()}
    md = (f"`python tools/finetune_teacher.py` — all-MiniLM-L6-v2 fine-tuned on {r['task']}: "
          f"**{r['metric']} {acc:.4f}** (dev) in {minutes:.1f} min ({r['train_examples']} examples, "
          f"{r['examples_per_s']:.0f} examples/s, {record['torch_threads']} threads; {record['device']})")
    print(md)
    official = args.results is None and args.max_examples is None
    publish(args.results or RESULTS / f"finetune_teacher_{args.task}.json", record,
            "finetune_teacher" if official and args.task == "sst2" else None, md)


if __name__ == "__main__":
    main()
