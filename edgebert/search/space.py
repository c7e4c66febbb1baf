"""What may vary, stage by stage (ranges from arch.SPACE, capped by the teacher).

    backbone    layers, hidden, attention width (heads), and a uniform standard FFN (as AutoTinyBERT)
    structure   with the backbone fixed: each layer's MLP expression, from a fixed pool
                (the standard FFN, EfficientBERT's six, and seeded random valid ones)
    dimensions  with structures fixed: each layer's inner size and stack depth (1-4)

Widths never exceed the teacher's: extraction cannot fill units the teacher does
not have. Every stage draws from fixed lists of choices per parameter name, as
Optuna's samplers need (an expression is one categorical per layer slot, not a
growing tree), and can also sample points uniformly for random search.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any, Protocol

from edgebert import mlp
from edgebert.arch import SPACE, ArchSpec, LayerSpec, Space, validate
from edgebert.errors import EdgebertError
from edgebert.zoo import EFFICIENTBERT_FFNS

# The backbone's attention width (heads x the teacher's head size) as a share of hidden. Below half
# the hidden width, students distil badly while the short proxy rates them well: of the 86 winners
# recorded before this change (search, hand and random; both machines; 1/10, 1/20, 1/40; the README's
# search section tabulates every recorded winner this way, tools/search_bench.py), the 12
# with attention under half of hidden scored 2.5-4.8 points below those between half and all of it
# (mean SST-2 dev 85.2 against 87.7 % at 1/10, 83.0 / 87.8 at 1/20, 83.1 / 85.8 at 1/40), and at 1/40
# seed 2 the backbone stage chose one head of 32 at hidden 256 (0.794 held-out, 83.9 % dev). Wider
# than hidden did no better either (4 winners: 86.2 / 87.8 at 1/20, 84.4 / 85.8 at 1/40).
ATTENTION_SHARES = (0.5, 0.75, 1.0)
SPACE_VERSION = 2  # 2: the backbone's attention as a share of hidden (1: any head count); a run resumes only its own
# The fewest encoder layers a search candidate has by default (search --min-layers). Every one-layer
# winner recorded (five at 1/40, three machines) distilled to 80.8-81.9 % SST-2 dev against 85.9 % for
# two layers: the short KD proxy rates a one-layer student extracted from the teacher highly because
# it recovers fastest, then it stops improving (README, "the one-layer trap"). The space keeps one
# layer (BackboneStage's own default) for a user who asks for it with --min-layers 1.
DEFAULT_MIN_LAYERS = 2
UNRECORDED_MIN_LAYERS = 1  # what a run that recorded no depth floor searched (made before the setting)
POOL_SIZE = 24
POOL_SEED = 2021  # the pool is part of the space: fixed, so every run searches the same one


def expression_pool(size: int = POOL_SIZE, seed: int = POOL_SEED, max_ops: int = 4) -> tuple[str, ...]:
    """The structure stage's choices: the standard FFN, EfficientBERT's six, then seeded random ones."""
    pool = [mlp.STANDARD_FFN] + [f for f, _, _ in EFFICIENTBERT_FFNS]
    rng = random.Random(seed)
    while len(pool) < size:
        text = mlp.to_text(mlp.random_expression(rng, max_ops))
        if text not in pool:
            pool.append(text)
    return tuple(pool)


@dataclass(frozen=True)
class Limits:
    """The teacher's widths (no student dimension may exceed them) and the fields a student
    shares with it (vocabulary, positions, segments, LayerNorm epsilon)."""

    layers: int
    hidden: int
    heads: int
    head_size: int
    inner: int
    shared: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def of(teacher: ArchSpec) -> "Limits":
        shared = tuple((k, getattr(teacher, k)) for k in ("vocab_size", "max_positions", "type_vocab_size",
                                                          "layer_norm_eps"))
        return Limits(
            layers=teacher.num_layers, hidden=teacher.hidden,
            heads=min(l.heads for l in teacher.layers), head_size=min(l.head_size for l in teacher.layers),
            inner=min(l.inner for l in teacher.layers), shared=shared,
        )


class Trial(Protocol):  # the part of optuna.Trial a stage uses
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


class Stage:
    """A stage's choices: `choices()` names each parameter's fixed list; `to_spec` builds the point."""

    name = "stage"

    def choices(self) -> dict[str, list]:
        raise NotImplementedError

    def to_spec(self, params: dict[str, Any]) -> ArchSpec:
        raise NotImplementedError

    def suggest(self, trial: Trial) -> ArchSpec:
        return self.to_spec({k: trial.suggest_categorical(k, v) for k, v in self.choices().items()})

    def sample(self, rng: random.Random) -> tuple[dict[str, Any], ArchSpec]:
        params = {k: rng.choice(v) for k, v in self.choices().items()}
        return params, self.to_spec(params)

    def size(self) -> int:
        n = 1
        for v in self.choices().values():
            n *= len(v)
        return n


@dataclass
class BackboneStage(Stage):
    limits: Limits
    space: Space = SPACE
    min_layers: int = 1  # the fewest encoder layers a backbone may have (search --min-layers)
    name = "backbone"

    def choices(self) -> dict[str, list]:
        lim, s = self.limits, self.space
        hidden = [h for h in s.hidden_grid if h <= lim.hidden and s.search_hidden[0] <= h]
        ratios = [r for r in s.inner_ratio_grid if r >= 1.0]
        if not hidden:
            raise EdgebertError(f"the teacher (hidden {lim.hidden}) is narrower than the search space")
        # A share, not a head count: Optuna's choices stay fixed per parameter while the heads a
        # hidden size allows change with it.
        if not 1 <= self.min_layers <= lim.layers:
            raise EdgebertError(f"--min-layers must lie in 1..{lim.layers} (the teacher's layers), "
                                f"not {self.min_layers}")
        return {"layers": list(range(self.min_layers, lim.layers + 1)), "hidden": hidden,
                "attention": list(ATTENTION_SHARES), "inner_ratio": ratios}

    def heads(self, hidden: int, share: float) -> int:
        """Heads of the teacher's head size nearest to share x hidden wide, within the teacher's count."""
        return max(1, min(self.limits.heads, round(share * hidden / self.limits.head_size)))

    def teacher_shaped(self) -> list[dict[str, Any]]:
        """The points shaped like the teacher (and like a hand-designed student): attention as
        wide as the hidden size (heads x head size = hidden) and an FFN at least as wide."""
        c = self.choices()
        return [{"layers": n, "hidden": h, "attention": 1.0, "inner_ratio": r}
                for n in c["layers"] for h in c["hidden"] for r in c["inner_ratio"]
                if self.heads(h, 1.0) * self.limits.head_size == h]

    def to_spec(self, p: dict[str, Any]) -> ArchSpec:
        inner = self.space.inner_for(p["hidden"], p["inner_ratio"], cap=self.limits.inner)
        return ArchSpec.uniform(layers=p["layers"], hidden=p["hidden"], heads=self.heads(p["hidden"], p["attention"]),
                                head_size=self.limits.head_size, inner=inner, **dict(self.limits.shared))


@dataclass
class StructureStage(Stage):
    backbone: ArchSpec
    pool: tuple[str, ...] = expression_pool()
    name = "structure"

    def choices(self) -> dict[str, list]:
        return {f"ffn_{i}": list(self.pool) for i in range(self.backbone.num_layers)}

    def to_spec(self, p: dict[str, Any]) -> ArchSpec:
        layers = [replace(l, ffn=p[f"ffn_{i}"]) for i, l in enumerate(self.backbone.layers)]
        return self.backbone.with_layers(layers)


@dataclass
class DimensionStage(Stage):
    structure: ArchSpec
    limits: Limits
    space: Space = SPACE
    name = "dimensions"

    def inner_choices(self) -> list[int]:
        h = self.structure.hidden
        return sorted({self.space.inner_for(h, r, cap=self.limits.inner) for r in self.space.inner_ratio_grid})

    def choices(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for i in range(self.structure.num_layers):
            out[f"inner_{i}"] = self.inner_choices()
            out[f"stack_{i}"] = list(self.space.stack_grid)
        return out

    def to_spec(self, p: dict[str, Any]) -> ArchSpec:
        layers = [replace(l, inner=p[f"inner_{i}"], stack=p[f"stack_{i}"]) for i, l in enumerate(self.structure.layers)]
        return self.structure.with_layers(layers)

    def largest(self) -> ArchSpec:
        """The supernet: every layer at its widest inner and deepest stack."""
        return self.to_spec({k: max(v) for k, v in self.choices().items()})

    def smallest(self) -> ArchSpec:
        return self.to_spec({k: min(v) for k, v in self.choices().items()})

    def uniform_points(self) -> list[ArchSpec]:
        """Every point with one inner size and one stack depth in all layers."""
        n = self.structure.num_layers
        return [self.to_spec({**{f"inner_{i}": inner for i in range(n)}, **{f"stack_{i}": stack for i in range(n)}})
                for inner in self.inner_choices() for stack in self.space.stack_grid]


class JointRandomStage(Stage):
    """The random-search baseline: backbone, structures and dimensions all drawn at once."""

    name = "random"

    def __init__(self, limits: Limits, pool: tuple[str, ...], min_layers: int = 1):
        self.backbone = BackboneStage(limits, min_layers=min_layers)
        self.pool = pool
        self.limits = limits
        self.max_layers = limits.layers

    def choices(self) -> dict[str, list]:
        out = dict(self.backbone.choices())
        probe = self.backbone.to_spec({k: max(v) for k, v in self.backbone.choices().items()})
        dims = DimensionStage(probe, self.limits)
        for i in range(self.max_layers):
            out[f"ffn_{i}"] = list(self.pool)
            out[f"ratio_{i}"] = list(dims.space.inner_ratio_grid)
            out[f"stack_{i}"] = list(dims.space.stack_grid)
        return out

    def to_spec(self, p: dict[str, Any]) -> ArchSpec:
        base = self.backbone.to_spec(p)
        space = self.backbone.space
        layers = [replace(l, ffn=p[f"ffn_{i}"], stack=p[f"stack_{i}"],
                          inner=space.inner_for(base.hidden, p[f"ratio_{i}"], cap=self.limits.inner))
                  for i, l in enumerate(base.layers)]
        return base.with_layers(layers)


def user_expressions(texts: list[str]) -> tuple[str, ...]:
    """A user's own expression pool (from a space file): each checked, errors name the entry."""
    pool = []
    for i, t in enumerate(texts):
        try:
            pool.append(mlp.canonical(t))
        except mlp.ExpressionError as e:
            raise EdgebertError(f"space file expressions[{i}]: {e}") from None
    if not pool:
        raise EdgebertError("space file: 'expressions' must list at least one MLP expression")
    return tuple(dict.fromkeys(pool))


def check_point(spec: ArchSpec, limits: Limits) -> ArchSpec:
    """Validate a proposed point and enforce the teacher's widths."""
    spec = validate(spec)
    if spec.hidden > limits.hidden or spec.num_layers > limits.layers:
        raise EdgebertError(f"point {spec.summary()} exceeds the teacher")
    for l in spec.layers:
        if l.heads > limits.heads or l.head_size > limits.head_size or l.inner > limits.inner:
            raise EdgebertError(f"point {spec.summary()} exceeds the teacher's widths")
    return spec


__all__ = ["BackboneStage", "DimensionStage", "Limits", "Stage", "StructureStage", "check_point", "expression_pool",
           "user_expressions", "LayerSpec"]
