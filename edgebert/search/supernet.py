"""The dimension stage's weight-sharing supernet: one set of weights, every inner size and stack depth.

    net = Supernet.build(teacher, stage, mapping, order)      # the largest point, extracted from the teacher
    net.warm_up(train_enc, teacher_logits, steps=300,           # KD, sandwich rule over the points
                cost=predicted_ms, bound=1.15 * limit_ms)         # predicted within `bound`
    score = net.score(stage.to_spec(params), heldout_enc, task)  # a sub-network, sliced, no training
    model = net.sub_model(stage.to_spec(params))               # standalone, to distil further

The supernet is the structure stage's winner at its largest dimensions (every
layer's widest inner size and deepest stack), extracted from the teacher, so the
first inner units of each layer are the teacher's most important ones. Warm-up
trains it by knowledge distillation with the sandwich rule (Yu et al. 2019;
AutoTinyBERT, HAT): each step runs the largest and the smallest sub-networks and
two random ones on the same batch and sums their gradients, so that every
sub-network, not only the largest, is good when sliced. Slicing is the model
family's own `set_active`; a sliced point equals a standalone model of its
weights (tests/test_modeling.py).

The sandwich is drawn from the points the search may pick (SUPERNET_VERSION 2):
given a cost (predicted ms) and a bound, its "largest" is the costliest uniform
point (one inner size and stack depth in every layer) within the bound, and its
random points are drawn among those within it. HAT and AutoTinyBERT train one
supernet for every budget; this one serves one search under one budget, and the
space's largest point costs 3-4x the budget (47 ms predicted against a 1/10
budget of 12 ms: inner 1152 x stack 4 in six layers), as do three quarters of its
random points, none of which the dimension stage may pick. Training them took
about 30 % of every warm-up step (`tools/sandwich_ab.py`: a bounded step costs 0.70
of a whole-stage one on quick 1/10's 6L h320 structure).
"""

from __future__ import annotations

import math
import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from edgebert.arch import ArchSpec
from edgebert.distill import KDLoss, LossWeights, StageConfig, extract_student
from edgebert.distill.evaluate import metrics_of, predict
from edgebert.distill.train import Stage, train
from edgebert.importance import UnitOrder
from edgebert.modeling import EdgeBertForSequenceClassification, extract_active
from edgebert.search.space import DimensionStage

SANDWICH_RANDOM = 2  # random sub-networks per step, besides the largest and the smallest
SANDWICH_DRAWS = 200  # draws for one random point within the bound, before settling for the smallest
SUPERNET_VERSION = 2  # 2: the sandwich within the search's latency bound (1: over the whole stage)


@dataclass
class Supernet:
    model: EdgeBertForSequenceClassification
    stage: DimensionStage
    mapping: tuple[int, ...]

    @staticmethod
    def build(teacher: EdgeBertForSequenceClassification, stage: DimensionStage, mapping: Sequence[int],
              order: UnitOrder | None, seed: int = 0) -> "Supernet":
        extraction = extract_student(teacher, stage.largest(), mapping, order=order, seed=seed)
        return Supernet(extraction.model, stage, tuple(mapping))

    def sandwich(self, seed: int, cost: Callable[[ArchSpec], float] | None = None, bound: float = math.inf):
        """subnets(step) for the training loop: the largest and smallest points of the stage and
        SANDWICH_RANDOM random ones, all within `bound` of `cost` when one is given (`top`)."""
        largest, smallest = self.top(cost, bound), self.stage.smallest()

        def fits(spec: ArchSpec) -> bool:
            return cost is None or cost(spec) <= bound

        def draw(rng: random.Random) -> ArchSpec:
            for _ in range(SANDWICH_DRAWS):
                spec = self.stage.sample(rng)[1]
                if fits(spec):
                    return spec
            return smallest

        def subnets(step: int) -> list[ArchSpec]:
            rng = random.Random(seed * 100_003 + step)
            return [largest, smallest] + [draw(rng) for _ in range(SANDWICH_RANDOM)]

        return subnets

    def top(self, cost: Callable[[ArchSpec], float] | None = None, bound: float = math.inf) -> ArchSpec:
        """The sandwich's largest point: the stage's largest, or with a cost, the costliest uniform point
        within `bound` (the smallest point when none is)."""
        if cost is None:
            return self.stage.largest()
        within = [(cost(spec), spec) for spec in self.stage.uniform_points()]
        within = [(c, spec) for c, spec in within if c <= bound]
        return max(within, key=lambda cs: cs[0])[1] if within else self.stage.smallest()

    def warm_up(self, train_enc, teacher_outputs, *, steps: int, lr: float = 2e-4, seed: int = 0,
                cost: Callable[[ArchSpec], float] | None = None, bound: float = math.inf,
                max_minutes: float | None = None, progress: bool = True) -> dict:
        """KD on soft logits and labels, sandwich rule (within `bound` of `cost`, if given); returns
        the stage result and the sandwich's largest point ("top")."""
        weights = LossWeights(logits=1.0, labels=0.5)
        cfg = StageConfig("supernet", weights, max_steps=steps, lr=lr, max_minutes=max_minutes)
        loss = KDLoss(weights, self.mapping, self.stage.largest(), None)
        subnets = self.sandwich(seed, cost, bound)
        result = train(self.model, [Stage(cfg, train_enc, teacher_outputs, loss, subnets=subnets)],
                       None, seed=seed, progress=progress)[0]
        return {"steps": result.steps, "seconds": round(result.seconds, 1), "examples": result.examples,
                "top": subnets(0)[0].to_dict()}  # the sandwich's own largest point, not priced again

    def score(self, spec: ArchSpec, heldout_enc, task: str, metric: str) -> float:
        """The sub-network's metric on held-out data, sliced from the shared weights."""
        with self._active(spec):
            return metrics_of(task, predict(self.model, heldout_enc), heldout_enc)[metric]

    def sub_model(self, spec: ArchSpec) -> EdgeBertForSequenceClassification:
        """A standalone model of the sub-network `spec`, its weights the supernet's slices: the model
        the proxy scored (weight inheritance, as AutoTinyBERT does; tools/winner_start_ab.py compares
        it with a fresh extraction as the start of the final distillation)."""
        with self._active(spec):
            return extract_active(self.model)

    @contextmanager
    def _active(self, spec: ArchSpec):
        self.model.set_active(spec)
        try:
            yield
        finally:
            self.model.set_active(None)

    def save(self, folder: Path) -> None:
        from edgebert.hub import save_model

        save_model(self.model, folder, trained_head=True)

    @staticmethod
    def load(folder: Path, stage: DimensionStage, mapping: Sequence[int]) -> "Supernet":
        model = EdgeBertForSequenceClassification.from_pretrained(folder).eval()
        return Supernet(model, stage, tuple(mapping))
