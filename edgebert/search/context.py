"""Everything a search process needs, built once per process (coordinator or worker).

The teacher, the task data split into a training part and a held-out part (the
held-out part scores candidates; the dev set is only for the final report),
cached teacher logits, one importance ranking of the teacher's units, the
latency table and the budget. Every piece comes through the caches of the
data and distillation packages, so a second search (another budget, a worker
process) pays no tokenization and no teacher forward pass.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from edgebert import data, zoo
from edgebert.arch import SPACE, ArchSpec
from edgebert.distill import KDLoss, LossWeights, StageConfig, extract_student, layer_mapping, load_teacher
from edgebert.distill.evaluate import metrics_of, predict
from edgebert.distill.inputs import load_tokenizer, subset, tokenizer_dir_of
from edgebert.distill.losses import label_loss, needs
from edgebert.distill.teacher import teacher_outputs, weights_fingerprint
from edgebert.distill.train import Stage, train
from edgebert.errors import EdgebertError
from edgebert.importance import UnitOrder, rank_units
from edgebert.latency.predictor import predict as predict_latency
from edgebert.latency.table import LatencyTable, TableError
from edgebert.search.space import DEFAULT_MIN_LAYERS, SPACE_VERSION, UNRECORDED_MIN_LAYERS, BackboneStage, Limits


PROXY_LR = 2e-4  # the short KD run's learning rate (an extracted student starts near a good point)


@dataclass
class SearchConfig:
    """The settings of one search (saved in the output folder; a rerun must match them to resume)."""

    teacher: str
    task: str
    data: str
    out: str
    budget_ms: float | None = None
    speedup: float | None = None
    table: str | None = None
    storage: str | None = None
    trials: int = 12  # evaluated candidates per training stage (backbone, structure); 3x for dimensions
    workers: int = 1
    seed: int = 0
    quick: bool = False
    strategy: str = "progressive"  # progressive | random (the baseline: same trials, one joint random stage)
    space_file: str | None = None  # JSON {"expressions": [...]}: the structure stage's pool
    min_layers: int = DEFAULT_MIN_LAYERS  # the fewest encoder layers a candidate may have (the one-layer trap)
    heldout_fraction: float = 0.1
    heldout_max: int = 1000  # held-out examples that score a candidate
    max_length: int = 64
    proxy_steps: int = 150  # short KD steps per backbone/structure candidate
    supernet_steps: int = 300
    final_minutes: float = 18.0  # backstop on the winner's full distillation (warm-up + task)
    verify_top: int = 4  # candidates measured before one is accepted
    min_budget_use: float = 0.9  # the winner should use at least this share of the budget
    compare_with: str | None = "bert-base"  # measured beside the candidates (None: only with --budget-ms)

    def __post_init__(self):
        if self.quick:
            self.trials = min(self.trials, 4)
            self.proxy_steps, self.supernet_steps, self.heldout_max = 60, 80, 500
            self.final_minutes = min(self.final_minutes, 10.0)  # the quick recipe counts steps (verify)

    @property
    def out_path(self) -> Path:
        return Path(self.out)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> "SearchConfig":
        """The settings a run wrote (to_json). Runs made before --min-layers existed searched from one
        layer and wrote no such field: they are read as one, not as today's default."""
        return cls(**{"min_layers": UNRECORDED_MIN_LAYERS, **saved})

    def key_settings(self) -> dict[str, Any]:
        """What a resumed run must share with the original (not how many workers run it), and the
        version of the space it searches."""
        d = asdict(self)
        for k in ("workers", "storage"):
            d.pop(k)
        if d["min_layers"] == UNRECORDED_MIN_LAYERS:  # runs made before the setting existed resume
            d.pop("min_layers")
        return {**d, "space_version": SPACE_VERSION}


@dataclass
class SearchContext:
    cfg: SearchConfig
    task: data.Task
    teacher: Any  # LoadedModel with a trained head
    limits: Limits
    table: LatencyTable
    budget_ms: float
    bert_base_ms: float | None
    train_enc: data.Encoded
    heldout_enc: data.Encoded
    teacher_train: Any  # TeacherOutputs (logits) on train_enc
    order: UnitOrder
    mapping_kind: str = "uniform"
    # The predicted ms that measures as the whole budget (progressive.use_calibration); stages search under it.
    limit_ms: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return self.task.primary_metric

    def latency(self, spec: ArchSpec) -> float:
        """Predicted ms at the table's nominal speed."""
        return predict_latency(spec, self.table, seq_len=self.seq_len, batch=1).latency_ms

    @property
    def seq_len(self) -> int:
        return self.table.settings["seq_lens"][0]

    def margin(self, score: float) -> float:
        """One standard error of a held-out score near `score`, read as a proportion of the held-out
        examples: sqrt(s (1 - s) / n), 0.017 at s = 0.83, n = 500 (quick). Two candidates closer than
        this are not told apart by the proxy (eight supernet points of the 1/20 structure spanned
        0.823-0.833 and ranked against their distilled dev accuracy at tau -0.39)."""
        n = max(1, len(self.heldout_enc))
        return math.sqrt(min(max(score * (1.0 - score), 0.0), 0.25) / n)

    def backbone_stage(self) -> BackboneStage:
        return BackboneStage(self.limits, min_layers=self.cfg.min_layers)

    def mapping(self, spec: ArchSpec) -> tuple[int, ...]:
        return layer_mapping(self.mapping_kind, spec.num_layers, self.teacher.spec.num_layers)

    def proxy_score(self, spec: ArchSpec, *, steps: int | None = None, seed: int | None = None) -> float:
        """A candidate's worth: extracted from the teacher, a short KD run on the training part,
        its metric on the held-out part."""
        logits = self.proxy_logits(spec, steps=steps, seed=seed)
        return metrics_of(self.task.name, logits, self.heldout_enc)[self.metric]

    def proxy_logits(self, spec: ArchSpec, *, steps: int | None = None, seed: int | None = None,
                     lr: float = PROXY_LR):
        """(N held-out, C) logits of the proxy's student: extracted from the teacher, then
        `steps` (default cfg.proxy_steps) of KD on the training part at learning rate `lr`."""
        seed = self.cfg.seed if seed is None else seed
        mapping = self.mapping(spec)
        student = extract_student(self.teacher.model, spec, mapping, order=self.order, seed=seed).model
        weights = LossWeights(logits=1.0, labels=0.5)
        cfg = StageConfig("proxy", weights, max_steps=steps or self.cfg.proxy_steps, lr=lr)
        stage = Stage(cfg, self.train_enc, self.teacher_train, KDLoss(weights, mapping, spec, None))
        train(student, [stage], None, seed=seed, progress=False)
        return predict(student, self.heldout_enc)


def resolve_table(cfg: SearchConfig) -> LatencyTable:
    from edgebert.device.timing import default_threads
    from edgebert.latency.catalog import find_table, resolve

    if cfg.table:
        return LatencyTable.load(resolve(cfg.table))
    return find_table(threads=default_threads(), precision="fp32", seq_len=128, batch=1)


def budget_of(cfg: SearchConfig, table: LatencyTable) -> tuple[float, float]:
    """(budget ms, bert-base predicted ms) on this table; refuses a budget below the space's cheapest point."""
    if (cfg.budget_ms is None) == (cfg.speedup is None):
        raise EdgebertError("give exactly one of --budget-ms and --speedup")
    seq = table.settings["seq_lens"][0]
    if cfg.speedup is not None and not cfg.speedup > 0:
        raise EdgebertError(f"--speedup must be positive, got {cfg.speedup}")
    if not 1 <= cfg.min_layers <= SPACE.layers[1]:
        raise EdgebertError(f"--min-layers must lie in 1..{SPACE.layers[1]}, not {cfg.min_layers}")
    smallest = SPACE.smallest()
    smallest = smallest.with_layers(smallest.layers * cfg.min_layers)
    try:
        cheapest = predict_latency(smallest, table, seq_len=seq, batch=1).latency_ms
        bert = None
        if cfg.speedup is not None or cfg.compare_with:
            bert = predict_latency(zoo.get("bert-base"), table, seq_len=seq, batch=1).latency_ms
    except TableError as e:
        raise EdgebertError(f"the latency table lacks entries the search needs: {e}") from None
    budget = cfg.budget_ms if cfg.budget_ms is not None else bert / cfg.speedup
    if not budget > cheapest:
        raise EdgebertError(f"budget {budget:.2f} ms is below the cheapest point of the space "
                            f"({smallest.summary()}: {cheapest:.2f} ms on {table.name})")
    return budget, bert


class Inputs(NamedTuple):
    """What `check_inputs` resolved, handed on to `build_context` so nothing is loaded twice."""

    table: LatencyTable
    budget_ms: float
    bert_base_ms: float | None
    task: data.Task
    teacher: Any  # LoadedModel with a trained head


def check_inputs(cfg: SearchConfig) -> Inputs:
    """Everything that can be refused before any heavy work: the table, the budget, the task, the teacher."""
    table = resolve_table(cfg)
    budget, bert = budget_of(cfg, table)
    if cfg.speedup is not None and not cfg.compare_with:
        raise EdgebertError("--speedup is measured against bert-base: keep --compare-with bert-base")
    task = data.get_task(cfg.task)
    teacher = load_teacher(cfg.teacher, task)
    # The backbone stage's own check of the teacher's depth and width (budget_of knows only the space's 1..12).
    BackboneStage(Limits.of(teacher.spec), min_layers=cfg.min_layers).choices()
    return Inputs(table, budget, bert, task, teacher)


def build_context(cfg: SearchConfig, *, progress: bool = True, inputs: Inputs | None = None) -> SearchContext:
    import time

    t0 = time.perf_counter()
    table, budget, bert, task, teacher = inputs or check_inputs(cfg)
    tokenizer = load_tokenizer(tokenizer_dir_of(teacher), teacher.spec, what=f"teacher {cfg.teacher}")
    train_all = data.load_task(task.name, cfg.data, "train")
    train_part, heldout = data.heldout_split(train_all, cfg.heldout_fraction, seed=0)
    heldout = subset(heldout, cfg.heldout_max, 0)
    train_enc = data.encode(train_part, tokenizer, cfg.max_length)
    heldout_enc = data.encode(heldout, tokenizer, cfg.max_length)
    tkey = weights_fingerprint(teacher.model)
    teacher_train = teacher_outputs(teacher.model, tkey, train_enc, needs(LossWeights(logits=1.0), ()),
                                    progress=progress)
    order = _teacher_order(teacher.model, train_enc, cfg.seed)
    ctx = SearchContext(cfg, task, teacher, Limits.of(teacher.spec), table, budget, bert, train_enc, heldout_enc,
                        teacher_train, order)
    ctx.limit_ms = budget
    ctx.timings["context_s"] = round(time.perf_counter() - t0, 1)
    return ctx


def _teacher_order(teacher, train_enc: data.Encoded, seed: int) -> UnitOrder:
    """One gradient-importance ranking of the teacher (8 batches of task loss), shared by every candidate."""
    order = data.batch_order(train_enc.lengths, 32, shuffle=True, seed=seed)[:8]
    batches = [data.collate(train_enc, idx) for idx in order]
    return rank_units(teacher, method="gradient", batches=batches,
                      loss_fn=lambda m, b: label_loss(m(**b.model_inputs()).logits, b.labels))
