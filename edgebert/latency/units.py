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
    chain: tuple[int, ...]  # (k,) priced whole, or (k1, k2) priced by difference
    flops: Callable[[str | None, dict, int, int], float]  # (variant, key, seq, batch) -> FLOPs: the
    # interpolation coordinate (cost is close to linear in it between grid points)

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


def _ffn_stack_flops(variant, key, seq, batch):
    t, h = seq * batch, key["hidden"]
    return _attention_flops(h, NH_REF, HS_REF, t, batch, seq) + 8.0 * t * h * ref_inner(h)


def _ffn_act_flops(variant, key, seq, batch):
    return 4.0 * seq * batch * ACT_REFERENCE_HIDDEN * key["inner"]


SLICE = "slice"


def op_variants() -> tuple[str, ...]:
    return tuple(mlp.OPERATIONS) + (SLICE,)


def _op_flops(variant, key, seq, batch):
    return float(seq * batch * key["width"])


register_unit(Unit("shell", ("hidden", "embedding_size"), (1,), _shell_flops))
register_unit(Unit("mha", ("hidden", "heads", "head_size"), (1, 3), _mha_flops))
register_unit(Unit("ffn", ("hidden", "inner"), (1, 3), _ffn_flops))
register_unit(Unit("ffn_stack", ("hidden",), (1, 3), _ffn_stack_flops))
register_unit(Unit("ffn_act", ("inner",), (1, 3), _ffn_act_flops))
register_unit(Unit("op", ("width",), (1, 9), _op_flops))


def unit_flops(unit: str, variant: str | None, key: dict, seq: int, batch: int) -> float:
    return UNITS[unit].flops(variant, key, seq, batch)


