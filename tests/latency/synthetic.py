"""A latency table with known costs: every entry is alpha_unit * FLOPs + beta_unit, so
interpolation in FLOPs must reproduce the same function exactly anywhere inside the grid."""

from __future__ import annotations

from edgebert.device.fingerprint import fingerprint
from edgebert.device.timing import TimingPolicy
from edgebert.latency.units import unit_flops
from edgebert.latency.profiler import Grid, entry_id
from edgebert.latency.table import SCHEMA_VERSION, LatencyTable

ALPHA = {"shell": 1e-7, "mha": 2e-8, "ffn": 3e-8, "ffn_stack": 2.5e-8, "ffn_act": 4e-8, "op": 5e-7}
BETA = {"shell": 0.5, "mha": 0.05, "ffn": 0.04, "ffn_stack": 0.06, "ffn_act": 0.03, "op": 0.001}
VARIANT_SCALE = {"relu": 0.5, "tanh": 2.0, "slice": 3.0}


def true_cost(unit, variant, key, seq=128, batch=1) -> float:
    return VARIANT_SCALE.get(variant, 1.0) * (ALPHA[unit] * unit_flops(unit, variant, key, seq, batch) + BETA[unit])


def grid(hidden: tuple[int, ...] = (128, 256, 512)) -> Grid:
    return Grid(name="synthetic", hidden=list(hidden), heads=[1, 4, 8], head_size=[32, 64], inner=[32, 64, 256, 1024, 2048],
                embedding_sizes=[64, 128], act_widths=[32, 256, 1024], op_widths=[32, 256, 1024], calibration=[])


def table(hidden: tuple[int, ...] = (128, 256, 512), noise=None, **overrides) -> LatencyTable:
    """The synthetic table; `noise(unit, key)` -> a factor applied to an entry's true cost."""
    policy = TimingPolicy()
    settings = {"threads": policy.threads, "precision": "fp32", "spinning": policy.spinning, "seq_lens": [128],
                "batch": 1, "graph_optimization": "none", "grid": {}}
    entries = [{"id": entry_id(u, v, k, 128, 1), "unit": u, "variant": v, "key": k, "seq": 128, "batch": 1,
                "cost": true_cost(u, v, k) * (noise(u, k) if noise else 1.0), "spread": 0.0, "runs": 1}
               for u, v, k in grid(hidden).entries()]
    data = {"schema_version": SCHEMA_VERSION, "device": fingerprint(policy.threads, "fp32", policy.spinning),
            "settings": settings, "canary": {"name": "canary-v1", "nominal_ms": 2.0},
            "calibration": {"a": 1.0, "b": 0.0, "models": []}, "entries": entries, **overrides}
    return LatencyTable.from_dict(data)
