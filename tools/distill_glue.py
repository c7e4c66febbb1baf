"""The SST-2 recipe on MRPC, RTE, STS-B and CoLA from the shared GLUE copy, about 8 minutes
each for the teacher and for the student; every metric reported as it comes, weak ones included.

    python tools/distill_glue.py                                        # ~65 min in all
    python tools/distill_glue.py --tasks rte --max-examples 64 --warmup-examples 32 \\
        --results /tmp/r.json --out-root /tmp/glue-runs                 # a smoke run

Per task: the embedded all-MiniLM-L6-v2 fine-tuned (lr 1e-4, batch 32, up to 5 epochs,
capped at --teacher-minutes 7.5 with the schedule compressed to the cap), then the
SST-2 student (3L, hidden 256, 8x32 heads, inner 512; teacher layers 2, 4, 6;
gradient-importance extraction) distilled: warm-up KD on up to 2,000 of the task's own
training texts (2 epochs, capped at 2 min; pair tasks' long sequences make their
cached attention large: ~1.2 GB for RTE), then task KD (soft logits + 0.5 labels; MSE
for STS-B) up to 10 epochs capped at 6 min, lr 2e-4, max length 128. Records
tools/results/distill_glue.json and the README section `distill_glue` when present.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import GLUE, REPO, RESULTS, environment, publish, set_threads  # noqa: E402

TASKS = ("mrpc", "rte", "stsb", "cola")


def main() -> None:
    from edgebert.arch import ArchSpec
    from edgebert.distill import DistillConfig, FinetuneConfig, distill, finetune_teacher
    from edgebert.distill.run import default_finetune_stage, default_task_stage, default_warmup_stage

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--data", type=Path, default=GLUE)
    ap.add_argument("--out-root", type=Path, default=REPO / "runs" / "glue")
    ap.add_argument("--reuse-teachers", action="store_true", help="keep a teacher already in <out-root>/teacher-<task>")
    ap.add_argument("--teacher-epochs", type=float, default=5.0)
    ap.add_argument("--teacher-minutes", type=float, default=7.5)
    ap.add_argument("--teacher-lr", type=float, default=1e-4)
    ap.add_argument("--student", default=None, help="student spec file (default: the SST-2 student)")
    ap.add_argument("--warmup-examples", type=int, default=2000)
    ap.add_argument("--warmup-epochs", type=float, default=2.0)
    ap.add_argument("--warmup-minutes", type=float, default=2.0)
    ap.add_argument("--epochs", type=float, default=10.0, help="student task-stage epochs")
    ap.add_argument("--student-minutes", type=float, default=6.0, help="student task-stage cap")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--max-examples", type=int, default=None, help="cap training examples seen (smoke runs)")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--results", type=Path, default=None, help="default tools/results/distill_glue.json")
    args = ap.parse_args()
    set_threads(args.threads)

    args.out_root.mkdir(parents=True, exist_ok=True)
    spec_file = Path(args.student) if args.student else args.out_root / "student.json"
    if not args.student:
        spec_file.write_text(ArchSpec.uniform(layers=3, hidden=256, heads=8, head_size=32, inner=512).to_json())
    rows = []
    for task in args.tasks:
        t_out = args.out_root / f"teacher-{task}"
        if args.reuse_teachers and (t_out / "finetune.json").is_file():
            import json

            t = json.loads((t_out / "finetune.json").read_text())
        else:
            stage = replace(default_finetune_stage(), epochs=args.teacher_epochs, lr=args.teacher_lr,
                            max_minutes=args.teacher_minutes, max_examples=args.max_examples)
            t = finetune_teacher(FinetuneConfig(task=task, data=args.data, out=t_out, stage=stage,
                                                max_length=args.max_length), say=print)
        warm = replace(default_warmup_stage(), epochs=args.warmup_epochs, lr=args.lr, max_minutes=args.warmup_minutes)
        task_stage = replace(default_task_stage(), epochs=args.epochs, lr=args.lr, max_minutes=args.student_minutes,
                             max_examples=args.max_examples)
        s = distill(DistillConfig(student=str(spec_file), teacher=str(t_out), task=task, data=args.data,
                                  out=args.out_root / f"student-{task}", warmup=warm if args.warmup_examples else None,
                                  warmup_examples=args.warmup_examples or None, task_stage=task_stage,
                                  max_length=args.max_length), say=print)
        m = t["metric"]
        row = {"task": task, "metric": m, "teacher": t["dev"][m], "student": s["dev"][m], "retained": s["retained"],
               "teacher_minutes": round(t["seconds"] / 60, 2),
               "student_minutes": round((s["seconds"] - s["teacher_cache"]["seconds"]) / 60, 2),
               "teacher_cache_minutes": round(s["teacher_cache"]["seconds"] / 60, 2),
               "teacher_examples_per_s": t["examples_per_s"], "student_examples_per_s": s["examples_per_s"],
               "teacher_dev": t["dev"], "student_dev": s["dev"], "teacher_result": t, "student_result": s}
        rows.append(row)
        print(f"{task}: {m} teacher {row['teacher']:.4f}, student {row['student']:.4f} "
              f"({row['teacher_minutes']:.1f} + {row['student_minutes']:.1f} min)")

    lines = ["`python tools/distill_glue.py` — all-MiniLM-L6-v2 teacher and the 3L/h256 student, ~8 min each; "
             f"{environment()['device']}", "",
             "| task | metric | teacher | student | of teacher | teacher min | student min |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['metric']} | {r['teacher']:.4f} | {r['student']:.4f} | "
              f"{r['retained'] if r['retained'] is not None else float('nan'):.3f} | {r['teacher_minutes']:.1f} | "
              f"{r['student_minutes']:.1f} |" for r in rows]
    md = "\n".join(lines)
    print(md)
    record = {"rows": rows, "recipe": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              **environment()}
    official = args.results is None and args.max_examples is None
    publish(args.results or RESULTS / "distill_glue.json", record, "distill_glue" if official else None, md)


if __name__ == "__main__":
    main()
