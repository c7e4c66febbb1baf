"""The units a latency table prices: their names, grid axes, chains and FLOPs (no PyTorch here).

latency/micro.py builds each unit's micro-model; this module is what the table,
the predictor and the catalogue need to read a table, so predicting a latency
never imports PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgebert import mlp

# Reference hidden size of the ffn_act unit: an activation's cost depends on the
# inner width only (it runs over T x inner elements).
ACT_REFERENCE_HIDDEN = 256
NO_ACTIVATION = "none"


@dataclass(frozen=True)
class Unit:
    name: str
    axes: tuple[str, ...]
    chain: tuple[int, ...]  # (k,) priced whole, or (0, k) priced as (T(k) - T(0)) / k (micro.py)
    flops: Callable[[str | None, dict, int, int], float]  # (variant, key, seq, batch) -> FLOPs: the
    # interpolation coordinate (cost is close to linear in it between grid points)
    # Optional: the entries sharing seq and the `fit_within` axes are replaced by their least-squares
    # fit on `features(key)` before lookup (table.py, `fitted`), for units whose entries the predictor differences.
    fit_within: tuple[str, ...] = ()
    features: Callable[[dict], tuple[float, ...]] | None = None
    # Values of axes that tables made before the axis existed leave out of their entries' keys.
    defaults: dict | None = None
    passes: int = 1  # windows per entry, in multiples of the profiler's PASSES

UNITS: dict[str, Unit] = {}


def register_unit(unit: Unit) -> Unit:
    if unit.name in UNITS:
        raise ValueError(f"unit {unit.name!r} registered twice")
    UNITS[unit.name] = unit
    return unit


def _shell_flops(variant, key, seq, batch):
    t = seq * batch
    h, e = key["hidden"], key["embedding_size"]
    proj = {"standard": 0, "factorized": e, "trigram": 3 * e}[variant]
    return 2.0 * t * proj * h + 10.0 * t * h + 2.0 * batch * h * h


NH_REF, HS_REF = 4, 32  # the reference attention: on the heads and head-size grids


def ref_inner(hidden: int) -> int:
    """The reference FFN sub-layer's inner size: twice hidden, a multiple of 16."""
    return 16 * round(2 * hidden / 16)


def _attention_flops(h: int, nh: int, hs: int, t: int, batch: int, seq: int) -> float:
    a = nh * hs
    return 8.0 * t * h * a + 4.0 * batch * seq * seq * a


def _mha_flops(variant, key, seq, batch):
    t, h = seq * batch, key["hidden"]
    return _attention_flops(h, key["heads"], key["head_size"], t, batch, seq) + 4.0 * t * h * ref_inner(h)


def _ffn_flops(variant, key, seq, batch):
    t, h = seq * batch, key["hidden"]
    return _attention_flops(h, NH_REF, HS_REF, t, batch, seq) + 4.0 * t * h * key["inner"]


# Sub-layers per layer in the ffn_stack unit. One sub-layer's cost is (ffn_stack - reference layer)
# / (STACK_PROBE - 1): a difference of two whole-layer entries, so the deeper the probe, the more of
# the difference is signal. Measured here (fp32, 6 windows): the sub-layer read from 4-deep layers
# follows one smooth curve over hidden sizes within 4 %; a profile's 2-deep probes (tables before
# this axis, stack 2) scattered by up to 2x at hidden 128-256.
STACK_PROBE = 4


def _ffn_stack_flops(variant, key, seq, batch):
    t, h = seq * batch, key["hidden"]
    return _attention_flops(h, NH_REF, HS_REF, t, batch, seq) + 4.0 * key["stack"] * t * h * ref_inner(h)


def _ffn_act_flops(variant, key, seq, batch):
    return 4.0 * seq * batch * ACT_REFERENCE_HIDDEN * key["inner"]


SLICE = "slice"


def op_variants() -> tuple[str, ...]:
    return tuple(mlp.OPERATIONS) + (SLICE,)


def _op_flops(variant, key, seq, batch):
    return float(seq * batch * key["width"])


def _ffn_features(key: dict) -> tuple[float, ...]:
    """At one hidden size a layer with the reference attention and an FFN sub-layer of inner size I
    runs 4·T·h·I FLOPs in its two GEMMs and T·I in the activation: cost ~ c0 + c1·I, and a c2·I²
    for how the kernels' efficiency moves with I. Measured here: fp32 entries (6 windows each) lie
    within ±3 % of the line, no inner size off it on average by more than 1.4 %; INT8 entries bow
    above it in the middle (on average -4.5 % at inner 768, +3.5 % at 32 and 3072), which the
    square term takes (validated on 40 random architectures: 80 % within 5 % against 68 % with the
    line; fp32 unchanged at 85-90 %)."""
    inner = float(key["inner"])
    return 1.0, inner, inner * inner


def _mha_features(key: dict) -> tuple[float, ...]:
    """At one hidden size a layer's attention runs 8·T·h·A + 4·S²·A FLOPs (A = heads x head size,
    linear in A) plus per-head work (reshapes, a softmax per head): cost ~ c0 + c1·A + c2·heads."""
    return 1.0, float(key["heads"] * key["head_size"]), float(key["heads"])


register_unit(Unit("shell", ("hidden", "embedding_size"), (1,), _shell_flops))
# The predictor takes a layer's attention as mha(layer) minus one FFN sub-layer, and a sub-layer
# as ffn(...) minus the reference attention: differences of whole-layer entries, each ~4 % noisy,
# which made two profiles of this machine disagree by 16 % (median) on whole models. With the mha
# cells fitted per hidden size (15 cells, 3 terms) and the sub-layer fitted over hidden sizes
# (predictor.py), they disagreed by 5 %; the ffn cells are fitted per hidden size too (12 cells, 3 terms).
register_unit(Unit("mha", ("hidden", "heads", "head_size"), (0, 2), _mha_flops, ("hidden",), _mha_features))
register_unit(Unit("ffn", ("hidden", "inner"), (0, 2), _ffn_flops, ("hidden",), _ffn_features))
# Every layer's split into attention and sub-layer rests on these eleven entries: measured in
# three times the windows of the others.
register_unit(Unit("ffn_stack", ("hidden", "stack"), (0, 2), _ffn_stack_flops, defaults={"stack": 2}, passes=3))
register_unit(Unit("ffn_act", ("inner",), (0, 2), _ffn_act_flops))
register_unit(Unit("op", ("width",), (0, 8), _op_flops))


def unit_flops(unit: str, variant: str | None, key: dict, seq: int, batch: int) -> float:
    return UNITS[unit].flops(variant, key, seq, batch)


