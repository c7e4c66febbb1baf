"""Commands about training: finetune-teacher, distill, eval."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from edgebert.cli.common import add_command, emit, progress

GLUE = "../shared/data/glue"


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "finetune-teacher", cmd_finetune,
        help="fine-tune a teacher (default: the embedded all-MiniLM-L6-v2) on a task",
        examples=(
            f"  edgebert finetune-teacher --task sst2 --data {GLUE} --out runs/teacher-sst2 --max-examples 20000\n"
            f"  edgebert finetune-teacher --teacher /path/to/bert --task mrpc --data {GLUE} --out runs/teacher-mrpc --epochs 3\n"
            f"  edgebert finetune-teacher --task sst2 --data {GLUE} --out runs/teacher-sst2 --resume --json\n"
        ),
    )
    p.add_argument("--teacher", default=None, help="model folder or reference (default: the embedded all-MiniLM-L6-v2)")
    _common(p, lr=1e-4)

    p = add_command(
        sub, "distill", cmd_distill,
        help="distil a student architecture from a fine-tuned teacher (warm-up KD, then task KD)",
        examples=(
            f"  edgebert distill student.json --teacher runs/teacher-sst2 --task sst2 --data {GLUE} --out runs/student\n"
            f"  edgebert distill tinybert-4 --teacher runs/teacher-sst2 --task sst2 --data {GLUE} --out runs/tb4 \\\n"
            "      --init random --mapping 2,3,5,6 --max-steps 2000 --seed 1\n"
            f"  edgebert distill student.json --teacher runs/teacher-sst2 --task sst2 --data {GLUE} --out runs/student \\\n"
            "      --resume --json\n"
        ),
    )
    p.add_argument("model", help="student: zoo name or spec .json file (a model folder with --init weights)")
    p.add_argument("--teacher", required=True, help="teacher with a trained head for the task (finetune-teacher's --out)")
    p.add_argument("--init", choices=("extract", "random", "weights"), default="extract",
                   help="extract: the teacher's most important units (ETD, default); random; weights: MODEL's own")
    p.add_argument("--mapping", default="uniform", help="teacher layer of each student layer: uniform, last, or 2,4,6")
    p.add_argument("--importance", choices=("gradient", "magnitude"), default="gradient",
                   help="unit ranking for --init extract: gradient (task loss over 8 batches, default) or magnitude")
    _common(p, lr=2e-4)
    g = p.add_argument_group("losses")
    g.add_argument("--temperature", type=float, default=1.0, help="soft-logit temperature (default 1)")
    g.add_argument("--w-logits", type=float, default=1.0, help="task stage: soft-logit loss weight (default 1)")
    g.add_argument("--w-labels", type=float, default=0.5, help="task stage: gold-label loss weight (default 0.5)")
    g.add_argument("--w-embedding", type=float, default=1.0, help="warm-up: embedding loss weight (default 1)")
    g.add_argument("--w-hidden", type=float, default=1.0, help="warm-up: hidden-state loss weight (default 1)")
    g.add_argument("--w-attention", type=float, default=1.0, help="warm-up: attention loss weight (default 1)")
    g = p.add_argument_group("warm-up stage (task-agnostic KD on unlabeled text)")
    g.add_argument("--warmup-examples", type=int, default=20000,
                   help="sentences used (their teacher states are cached; 0 = no warm-up; default 20000)")
    g.add_argument("--warmup-epochs", type=float, default=1.0, help="passes over them (default 1)")
    g.add_argument("--warmup-text", type=Path, default=None,
                   help="unlabeled text file, one text per line (default: the task's training sentences)")
    g.add_argument("--warmup-lr", type=float, default=2e-4, help="default 2e-4")
    g.add_argument("--warmup-max-minutes", type=float, default=None, help="wall-clock cap of the warm-up stage")

    p = add_command(
        sub, "eval", cmd_eval,
        help="the task metric of a saved model or an exported ONNX file (fp32 or INT8, through ONNX Runtime)",
        examples=(
            f"  edgebert eval runs/student --task sst2 --data {GLUE}\n"
            f"  edgebert eval export/student --int8 --task sst2 --data {GLUE} --json\n"
            f"  edgebert eval export/student/model.onnx --task sst2 --data {GLUE} --split dev\n"
        ),
    )
    p.add_argument("model", help="saved model folder, export folder (manifest.json) or .onnx file")
    p.add_argument("--task", required=True, help="GLUE task: sst2, mrpc, rte, stsb, cola, qnli, mnli")
    p.add_argument("--data", required=True, help="GLUE root (holding SST-2/ ...) or the task's folder")
    p.add_argument("--split", default="dev", help="split to score (default dev)")
    p.add_argument("--int8", action="store_true", help="with an export folder: score model_int8.onnx")
    p.add_argument("--max-length", type=int, default=128, help="tokens per example (default 128)")
    p.add_argument("--batch-size", type=int, default=64)


def _common(p: argparse.ArgumentParser, *, lr: float) -> None:
    p.add_argument("--task", required=True, help="GLUE task: sst2, mrpc, rte, stsb, cola, qnli, mnli")
    p.add_argument("--data", required=True, help="GLUE root (holding SST-2/ ...) or the task's folder")
    p.add_argument("--out", type=Path, required=True, help="output folder (written only when the run succeeds)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=None, help="passes over the training split (default 1)")
    length.add_argument("--max-examples", type=int, default=None, help="training examples to see (e.g. 20000)")
    length.add_argument("--max-steps", type=int, default=None, help="optimizer steps")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="wall-clock cap of the (task) training stage; the learning rate still decays to 0 by then")
    p.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr:g})")
    p.add_argument("--batch-size", type=int, default=32, help="default 32")
    p.add_argument("--max-length", type=int, default=128, help="tokens per example (default 128; batches are padded "
                   "only to their longest)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints in <out>.ckpt/")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in <out>.ckpt/")


def _stage(base, args: argparse.Namespace, **weights):
    from edgebert.distill.losses import LossWeights

    return replace(
        base,
        weights=LossWeights(**weights) if weights else base.weights,
        epochs=args.epochs if args.epochs is not None else 1.0,
        max_examples=args.max_examples, max_steps=args.max_steps, max_minutes=args.max_minutes,
        lr=args.lr, batch_size=args.batch_size,
    )


def _human(r: dict) -> str:
    m = r["metric"]
    s = f"{r['task']} {m} {r['dev'][m]:.4f} (dev)"
    if "out" in r:
        s = f"wrote {r['out']}: " + s
    if "teacher_dev" in r:
        s += f", teacher {r['teacher_dev'][m]:.4f}"
    return s + f"; {r['seconds']:.0f} s, {r['examples_per_s']:.0f} examples/s"


def cmd_finetune(args: argparse.Namespace) -> None:
    from edgebert.distill.run import FinetuneConfig, default_finetune_stage, finetune_teacher

    cfg = FinetuneConfig(task=args.task, data=args.data, out=args.out, teacher=args.teacher,
                         stage=_stage(default_finetune_stage(), args), max_length=args.max_length, seed=args.seed,
                         checkpoint_every=args.checkpoint_every, resume=args.resume)
    emit(args, finetune_teacher(cfg, say=progress(args)), _human)


def cmd_distill(args: argparse.Namespace) -> None:
    from edgebert.distill.losses import LossWeights
    from edgebert.distill.run import DistillConfig, default_task_stage, default_warmup_stage, distill

    from edgebert.errors import EdgebertError

    if args.warmup_examples < 0:
        raise EdgebertError(f"--warmup-examples must be >= 0 (0 = no warm-up stage), got {args.warmup_examples}")
    warm = None
    if args.warmup_examples != 0:
        warm = replace(default_warmup_stage(), epochs=args.warmup_epochs, lr=args.warmup_lr, batch_size=args.batch_size,
                       max_minutes=args.warmup_max_minutes,
                       weights=LossWeights(embedding=args.w_embedding, hidden=args.w_hidden, attention=args.w_attention))
    cfg = DistillConfig(
        student=args.model, teacher=args.teacher, task=args.task, data=args.data, out=args.out, init=args.init,
        mapping=args.mapping, importance=args.importance, warmup=warm,
        warmup_examples=args.warmup_examples if args.warmup_examples > 0 else None, warmup_text=args.warmup_text,
        task_stage=_stage(default_task_stage(), args, logits=args.w_logits, labels=args.w_labels, temperature=args.temperature),
        max_length=args.max_length, seed=args.seed, checkpoint_every=args.checkpoint_every, resume=args.resume,
    )
    emit(args, distill(cfg, say=progress(args)), _human)


def cmd_eval(args: argparse.Namespace) -> None:
    from edgebert.distill.evaluate import evaluate

    emit(args, evaluate(args.model, args.task, args.data, split=args.split, int8=args.int8,
                        max_length=args.max_length, batch_size=args.batch_size), _human)
