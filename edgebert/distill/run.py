"""The two training commands as library calls: fine-tune a teacher, distil a student.

    finetune_teacher(FinetuneConfig(task="sst2", data="../shared/data/glue", out=Path("runs/teacher-sst2")))
    distill(DistillConfig(student="spec.json", teacher="runs/teacher-sst2", task="sst2",
                          data="../shared/data/glue", out=Path("runs/student")))

Distillation has two stages, as EfficientBERT's warm-up KD:

1. warm-up (task-agnostic): embedding, hidden-state and attention losses on
   unlabeled text (a text file, or by default a fixed sample of the task's own
   training sentences: sample seed 0 whatever the run's seed, so every
   student shares one cache entry of teacher states);
2. task: soft logits (+ gold labels) on the training split.

Every check runs before any training; the output folder is written once, when
everything succeeded (`files.atomic_dir`), with the model, its tokenizer and a
report (`distill.json` / `finetune.json`). Checkpoints go to `<out>.ckpt/`
beside it and are removed after a successful run.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from edgebert import data
from edgebert.arch import ArchSpec
from edgebert.distill.evaluate import metrics_of, predict
from edgebert.distill.extract import IMPORTANCE_METHODS, Extraction, check_fits, extract_student
from edgebert.distill.inputs import (
    check_max_length,
    check_tokenizer,
    load_tokenizer,
    read_text_file,
    subset,
    tokenizer_dir_of,
    unlabeled,
)
from edgebert.distill.losses import KDLoss, LossWeights, label_loss, layer_mapping, needs
from edgebert.distill.teacher import load_teacher, teacher_outputs, weights_fingerprint, with_head
from edgebert.distill.train import Checkpointer, Stage, StageConfig, StageResult, train
from edgebert.errors import EdgebertError
from edgebert.files import atomic_dir
from edgebert.hub import LoadedModel, default_teacher_dir, load_model, write_model

INITS = ("extract", "random", "weights")
WARMUP_SAMPLE_SEED = 0  # the warm-up sample does not follow --seed: one cached sample for every run


# Learning rates from smoke runs on a 4k-example SST-2 sample (tools/distill_student.py notes):
# all-MiniLM-L6-v2 fine-tuned at 1e-4 beat 5e-5 (80.5 vs 79.4 % dev); a 3L/h256 student
# extracted by gradient importance kept ~100 % of its teacher at 2e-4, 93-96 % at 1e-4.


def default_finetune_stage() -> StageConfig:
    return StageConfig("finetune", LossWeights(labels=1.0), epochs=1.0, lr=1e-4, lr_warmup=0.06)


def default_warmup_stage() -> StageConfig:
    return StageConfig("warmup", LossWeights(embedding=1.0, hidden=1.0, attention=1.0), epochs=1.0, lr=2e-4)


def default_task_stage() -> StageConfig:
    return StageConfig("task", LossWeights(logits=1.0, labels=0.5, temperature=1.0), epochs=1.0, lr=2e-4)


@dataclass
class FinetuneConfig:
    task: str
    data: str | Path
    out: Path
    teacher: str | None = None  # None: the embedded all-MiniLM-L6-v2
    stage: StageConfig = field(default_factory=default_finetune_stage)
    max_length: int = 128
    seed: int = 0
    checkpoint_every: int = 200
    resume: bool = False


@dataclass
class DistillConfig:
    student: str  # zoo name or spec file (a model folder with init="weights")
    teacher: str  # a model with a trained head for the task (e.g. finetune-teacher's output)
    task: str
    data: str | Path
    out: Path
    init: str = "extract"  # extract | random | weights (the student folder's own weights)
    mapping: str = "uniform"  # uniform | last | "2,4,6" (1-based teacher layers)
    importance: str = "gradient"  # unit ranking for extraction: gradient (task loss, a few batches) | magnitude
    importance_batches: int = 8  # labeled batches for gradient importance
    warmup: StageConfig | None = field(default_factory=default_warmup_stage)  # None: no warm-up stage
    warmup_examples: int | None = 20_000  # cap on warm-up sentences (their teacher states are cached)
    warmup_text: Path | None = None  # unlabeled text file, one text per line (default: the task's sentences)
    task_stage: StageConfig = field(default_factory=default_task_stage)
    max_length: int = 128
    seed: int = 0
    checkpoint_every: int = 200
    resume: bool = False


# --- shared plumbing -----------------------------------------------------------------------


def checkpoint_dir(out: Path) -> Path:
    return out.with_name(out.name + ".ckpt")


def check_out(out: Path) -> None:
    """Refuse to replace a folder that is not an earlier output (a typo must not delete a home folder)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise EdgebertError(f"--out {out} is a file; give a folder")
    ours = any((out / name).is_file() for name in ("config.json", "manifest.json"))
    if not ours and any(out.iterdir()):
        raise EdgebertError(f"--out {out} is a non-empty folder that holds no model; choose a new folder")


def settings_of(cfg) -> dict:
    """The settings a checkpoint must match on --resume (not the resume switches themselves)."""
    d = json.loads(json.dumps(asdict(cfg), default=str))
    for name in ("resume", "checkpoint_every"):
        d.pop(name, None)
    return d


def checkpointer(cfg, **architectures: ArchSpec) -> Checkpointer:
    """The run's checkpointer; a resume must match the settings *and* the models' architectures,
    since a path may hold another model by now (a search re-run rewrites its student spec) and
    that model's checkpoint would not load into this one."""
    settings = {**settings_of(cfg), **{f"{what} architecture": spec.key() for what, spec in architectures.items()}}
    return Checkpointer(checkpoint_dir(Path(cfg.out)), settings, cfg.checkpoint_every)


def _versions() -> dict[str, str]:
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}


def _load_train_dev(task: str, data_dir) -> tuple:
    train = data.load_task(task, data_dir, "train")
    dev = data.load_task(task, data_dir, "dev")
    for td in (train, dev):
        if not td.is_labeled:
            raise EdgebertError(f"{td.source}: split {td.split!r} has no labels")
    return train, dev


def _summary(stages: list[StageResult]) -> tuple[int, float]:
    examples = sum(r.examples for r in stages)
    seconds = sum(r.seconds for r in stages)
    return examples, seconds


def _save(out: Path, model, tokenizer_dir: Path, report_name: str, report: dict) -> None:
    with atomic_dir(out) as tmp:
        write_model(model, tmp, tokenizer_dir=tokenizer_dir, trained_head=True)
        (tmp / report_name).write_text(json.dumps(report, indent=2, default=str) + "\n")


# --- fine-tuning a teacher ----------------------------------------------------------------


def finetune_teacher(cfg: FinetuneConfig, *, progress: bool = True, say: Callable[[str], None] | None = None,
                     on_step: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Fine-tune `cfg.teacher` on the task's training split; save it with its dev metrics.

    progress: tqdm bars on stderr; say: status lines (after every check passed);
    on_step(stage, step): called after each optimizer step."""
    say = say or (lambda message: None)
    t0 = time.perf_counter()
    task = data.get_task(cfg.task)
    out = Path(cfg.out)
    check_out(out)
    train_td, dev_td = _load_train_dev(task.name, cfg.data)
    ref = cfg.teacher or str(default_teacher_dir())
    loaded = load_model(ref, num_labels=task.num_labels, seed=cfg.seed)
    model, head_reset = with_head(loaded, task.num_labels, cfg.seed)
    tok_dir = tokenizer_dir_of(loaded)
    tokenizer = load_tokenizer(tok_dir, loaded.spec, what=f"model {ref}")
    check_max_length(cfg.max_length, loaded.spec, what=f"model {ref}")
    ckpt = checkpointer(cfg, model=loaded.spec)
    state = ckpt.load() if cfg.resume else None
    train_enc = data.encode(train_td, tokenizer, cfg.max_length)
    dev_enc = data.encode(dev_td, tokenizer, cfg.max_length)
    stage = Stage(cfg.stage, train_enc, None, KDLoss(cfg.stage.weights, (), loaded.spec, None))
    say(f"fine-tuning {ref} ({loaded.spec.summary()}) on {len(train_enc)} {task.name} examples"
        f"{', resuming' if cfg.resume else ''}; checkpoints in {ckpt.folder}")
    results = train(model, [stage], ckpt, seed=cfg.seed, state=state, progress=progress, on_step=on_step)
    dev = metrics_of(task.name, predict(model, dev_enc), dev_enc)
    examples, train_s = _summary(results)
    result = {
        "out": str(out), "task": task.name, "metric": task.primary_metric, "dev": dev,
        "seconds": round(time.perf_counter() - t0, 1), "examples_per_s": round(examples / train_s, 1) if train_s else 0.0,
        "teacher": ref, "head_reset": head_reset, "train_examples": examples, "train_seconds": round(train_s, 1),
        "stages": [asdict(r) for r in results], "threads": torch.get_num_threads(), "versions": _versions(),
    }
    _save(out, model, tok_dir, "finetune.json", {**result, "settings": settings_of(cfg)})
    ckpt.remove()
    return result


# --- distilling a student ------------------------------------------------------------------


def distill(cfg: DistillConfig, *, progress: bool = True, say: Callable[[str], None] | None = None,
            on_step: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Distil `cfg.student` from `cfg.teacher` on the task: init, warm-up KD, task KD, dev metrics, save.
    progress, say, on_step: as for `finetune_teacher`."""
    say = say or (lambda message: None)
    t0 = time.perf_counter()
    run = _checked(cfg)  # every check a user can fail, before any heavy work
    say(f"distilling {run.sspec.summary()} from {run.tspec.summary()} "
        f"(layers {','.join(map(str, run.mapping))}, init {cfg.init})")
    stages_in, dev_enc, t_dev, cache = _teacher_targets(cfg, run, progress)
    model, extraction = _student(cfg, run, stages_in[-1][1])
    sources = {}
    if extraction is not None:
        wide = run.sspec.hidden == run.tspec.hidden  # then the hidden order is the teacher's own
        sources = {"hidden_sources": None if wide else extraction.hidden_sources, "head_sources": extraction.head_sources}
    stages = [Stage(sc, enc, tout, KDLoss(sc.weights, run.mapping, run.sspec, run.tspec, **sources))
              for sc, enc, tout in stages_in]
    say(f"teacher outputs: {cache['hits']} cache entries found, {cache['misses']} computed; "
        f"training{' (resuming)' if cfg.resume else ''}, checkpoints in {run.ckpt.folder}")
    results = train(model, stages, run.ckpt, seed=cfg.seed, state=run.state, progress=progress, on_step=on_step)

    primary = run.task.primary_metric
    dev = metrics_of(run.task.name, predict(model, dev_enc), dev_enc)
    teacher_dev = metrics_of(run.task.name, t_dev.logits, dev_enc)
    examples, train_s = _summary(results)
    result = {
        "out": str(cfg.out), "task": run.task.name, "metric": primary, "dev": dev,
        "seconds": round(time.perf_counter() - t0, 1), "examples_per_s": round(examples / train_s, 1) if train_s else 0.0,
        "teacher_dev": teacher_dev,
        "retained": round(dev[primary] / teacher_dev[primary], 4) if teacher_dev[primary] else None,
        "student": run.sspec.summary(), "params": sum(p.numel() for p in model.parameters()),
        "init": cfg.init, "mapping": list(run.mapping), "teacher_cache": cache,
        "train_examples": examples, "train_seconds": round(train_s, 1),
        "stages": [asdict(r) for r in results], "threads": torch.get_num_threads(), "versions": _versions(),
    }
    if extraction is not None:
        result["extraction"] = {"importance": cfg.importance, **extraction.report()}
    _save(Path(cfg.out), model, run.tok_dir, "distill.json",
          {**result, "settings": settings_of(cfg), "spec": run.sspec.to_dict()})
    run.ckpt.remove()
    return result


@dataclass
class _Run:
    """A distillation's inputs, resolved and checked."""

    task: data.Task
    train: data.TaskData
    dev: data.TaskData
    warm: data.TaskData | None  # a --warmup-text file's texts
    teacher: LoadedModel
    student: LoadedModel
    tok_dir: Path
    tokenizer: Any
    mapping: tuple[int, ...]
    ckpt: Checkpointer
    state: dict | None  # the checkpoint to resume from

    @property
    def sspec(self) -> ArchSpec:
        return self.student.spec

    @property
    def tspec(self) -> ArchSpec:
        return self.teacher.spec


def _checked(cfg: DistillConfig) -> _Run:
    task = data.get_task(cfg.task)
    check_out(Path(cfg.out))
    if cfg.init not in INITS:
        raise EdgebertError(f"--init {cfg.init!r}: use one of {', '.join(INITS)}")
    train_td, dev_td = _load_train_dev(task.name, cfg.data)
    warm_td = read_text_file(cfg.warmup_text, task.name) if cfg.warmup is not None and cfg.warmup_text else None
    teacher = load_teacher(cfg.teacher, task)
    student = load_model(cfg.student, num_labels=task.num_labels, seed=cfg.seed)
    if cfg.init == "weights" and student.kind not in ("edgebert", "hf-bert"):
        raise EdgebertError(f"--init weights needs a model folder; {cfg.student} is a {student.kind} reference")
    tok_dir = tokenizer_dir_of(teacher)
    tokenizer = load_tokenizer(tok_dir, teacher.spec, what=f"teacher {cfg.teacher}")
    check_tokenizer(tokenizer, student.spec, what=f"the student {cfg.student}")
    if student.spec.vocab_size != teacher.spec.vocab_size:
        raise EdgebertError(f"mismatched tokenizer: the student's vocabulary ({student.spec.vocab_size}) differs from "
                            f"the teacher's ({teacher.spec.vocab_size}); a student reads the teacher's tokens")
    for model, what in ((teacher, f"teacher {cfg.teacher}"), (student, f"the student {cfg.student}")):
        check_max_length(cfg.max_length, model.spec, what=what)
    mapping = layer_mapping(cfg.mapping, student.spec.num_layers, teacher.spec.num_layers)
    if cfg.init == "extract":
        check_fits(teacher.spec, student.spec, mapping)
        if cfg.importance not in IMPORTANCE_METHODS:
            raise EdgebertError(f"unknown importance method {cfg.importance!r}; use {' or '.join(IMPORTANCE_METHODS)}")
    ckpt = checkpointer(cfg, student=student.spec, teacher=teacher.spec)
    state = ckpt.load() if cfg.resume else None
    return _Run(task, train_td, dev_td, warm_td, teacher, student, tok_dir, tokenizer, mapping, ckpt, state)


def _teacher_targets(cfg: DistillConfig, run: _Run, progress: bool):
    """(stages as (config, tokens, teacher outputs), dev tokens, teacher dev outputs, cache report)."""
    t0 = time.perf_counter()
    model, tok, n = run.teacher.model, run.tokenizer, cfg.max_length
    key = weights_fingerprint(model)
    train_enc, dev_enc = data.encode(run.train, tok, n), data.encode(run.dev, tok, n)
    t_dev = teacher_outputs(model, key, dev_enc, needs(LossWeights(logits=1.0), run.mapping), progress=progress)
    outputs, stages_in = [t_dev], []
    if cfg.warmup is not None and (cfg.warmup_examples is None or cfg.warmup_examples > 0):
        texts = run.warm if run.warm is not None else unlabeled(run.train)
        warm_enc = data.encode(subset(texts, cfg.warmup_examples, WARMUP_SAMPLE_SEED), tok, n)
        outputs.append(teacher_outputs(model, key, warm_enc, needs(cfg.warmup.weights, run.mapping), progress=progress))
        stages_in.append((cfg.warmup, warm_enc, outputs[-1]))
    outputs.append(teacher_outputs(model, key, train_enc, needs(cfg.task_stage.weights, run.mapping), progress=progress))
    stages_in.append((cfg.task_stage, train_enc, outputs[-1]))
    cache = {"hits": sum(o.hits for o in outputs), "misses": sum(o.misses for o in outputs),
             "seconds": round(time.perf_counter() - t0, 1)}  # a one-time cost: ~0 once cached
    return stages_in, dev_enc, t_dev, cache


def _student(cfg: DistillConfig, run: _Run, train_enc: data.Encoded) -> tuple[torch.nn.Module, Extraction | None]:
    if cfg.init == "extract":
        ex = _extract(run.teacher.model, run.sspec, run.mapping, cfg, train_enc)
        return ex.model, ex
    if cfg.init == "weights":
        return with_head(run.student, run.task.num_labels, cfg.seed)[0], None
    return run.student.model, None


def _extract(teacher, sspec, mapping, cfg: DistillConfig, train_enc: data.Encoded) -> Extraction:
    batches = None
    if cfg.importance == "gradient":
        order = data.batch_order(train_enc.lengths, 32, shuffle=True, seed=cfg.seed)[: cfg.importance_batches]
        batches = [data.collate(train_enc, idx) for idx in order]
    return extract_student(teacher, sspec, mapping, method=cfg.importance, batches=batches, seed=cfg.seed,
                           loss_fn=lambda m, b: label_loss(m(**b.model_inputs()).logits, b.labels))
