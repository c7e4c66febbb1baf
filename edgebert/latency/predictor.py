"""ArchSpec -> milliseconds on a device, from its latency table, without building the model.

    p = predict(zoo.get("efficientbert"), table, seq_len=128)
    p.latency_ms, p.breakdown["mha_ms"], p.breakdown["ffn_ms"], p.breakdown["layers"]

A model costs its shell (embeddings, mask, pooler, head, the session run) plus,
per layer, one attention block and, per stack sub-layer, the FFN. Attention and
FFN are measured inside whole layers (latency/micro.py) and split apart with the
reference layer's two parts; a sub-layer is priced as:

    ffn(hidden, inner) - attention_ref(hidden)       the standard sub-layer (W1+gelu, W2+residual+LayerNorm)
    + ffn_act(act, inner) - ffn_act(gelu, inner)     another activation fused to W1 (or none)
    + op(name, width) for every further operation    (tanh after W2, max before W1, ...)
    + slice(width) for every operand a binary op narrows

When W2's input is narrower than inner (a binary op mixed inner and hidden
widths), half of the sub-layer is priced at W2's real width (W1 and W2 carry
equal FLOPs in the standard sub-layer).

The sum is canary-normalised; a calibration of two parameters fitted at
profile time on whole zoo models (`normalised = a * sum + b`) absorbs what the
parts miss (cache effects between units, the run's fixed cost), and the
table's nominal canary time turns the result into milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgebert import mlp
from edgebert.arch import ArchSpec, LayerSpec
from edgebert.errors import EdgebertError
from edgebert.latency.units import HS_REF, NH_REF, NO_ACTIVATION, SLICE
from edgebert.latency.table import LatencyTable


@dataclass
class Prediction:
    latency_ms: float
    normalised: float  # calibrated, in canary units
    uncalibrated_ms: float
    breakdown: dict
    table: str
    seq_len: int
    batch: int
    extrapolated: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "latency_ms": self.latency_ms, "normalised": self.normalised, "uncalibrated_ms": self.uncalibrated_ms,
            "table": self.table, "seq_len": self.seq_len, "batch": self.batch,
            "breakdown": self.breakdown, "extrapolated": self.extrapolated,
        }


class _Pricer:
    """Looks costs up in one table at one (seq, batch), remembering extrapolations."""

    def __init__(self, table: LatencyTable, seq: int, batch: int):
        self.table, self.seq, self.batch = table, seq, batch
        self.extrapolated: set[str] = set()

    def __call__(self, unit: str, variant: str | None, **key) -> float:
        cost, outside = self.table.lookup(unit, variant, key, seq=self.seq, batch=self.batch)
        for axis in outside:
            self.extrapolated.add(f"{unit}{'/' + variant if variant else ''}.{axis}={key.get(axis, self.seq)}")
        return cost

    def shell(self, spec: ArchSpec) -> float:
        return self("shell", spec.embedding.kind, hidden=spec.hidden, embedding_size=spec.embedding.size or 0)

    def _split(self, hidden: int) -> tuple[float, float]:
        """(reference attention, one more FFN sub-layer) at this hidden size: the parts of the
        reference layer, from a layer with one and a layer with two FFN sub-layers."""
        ref = self("mha", None, hidden=hidden, heads=NH_REF, head_size=HS_REF)
        sub = self("ffn_stack", None, hidden=hidden) - ref
        return ref - sub, sub

    def mha(self, hidden: int, layer: LayerSpec) -> float:
        _, sub = self._split(hidden)
        return self("mha", None, hidden=hidden, heads=layer.heads, head_size=layer.head_size) - sub

    def ffn_sublayer(self, hidden: int, layer: LayerSpec) -> float:
        expr, inner = layer.expr, layer.inner
        attention, _ = self._split(hidden)
        base = self("ffn", None, hidden=hidden, inner=inner) - attention
        uses = mlp.op_uses(expr, hidden, inner)
        w2_in = next(u.in_width for u in uses if u.kind == "W2")
        if w2_in != inner:
            base = 0.5 * base + 0.5 * (self("ffn", None, hidden=hidden, inner=w2_in) - attention)
        act = next(u.fused for u in uses if u.kind == "W1") or NO_ACTIVATION
        cost = base
        if act != "gelu":
            cost += self("ffn_act", act, inner=inner) - self("ffn_act", "gelu", inner=inner)
        for u in uses:
            if u.kind == "op":
                cost += self("op", u.op, width=u.width)
        for node in expr.walk():  # every operand a binary op narrows costs a Slice
            if node.op in mlp.OPERATIONS and mlp.OPERATIONS[node.op].arity == 2:
                w = mlp.width(node, hidden, inner)
                for arg in node.args:
                    if mlp.width(arg, hidden, inner) > w:
                        cost += self("op", SLICE, width=w) - self("op", "add", width=w)
        return cost


def predict(spec: ArchSpec, table: LatencyTable, *, seq_len: int | None = None, batch: int | None = None,
            calibrated: bool = True) -> Prediction:
    """Predicted latency of `spec` with a per-layer MHA/FFN breakdown (ms at the table's nominal speed)."""
    seq = seq_len or table.settings["seq_lens"][0]
    batch = batch or table.settings["batch"]
    if seq > spec.max_positions:
        raise EdgebertError(f"--seq-len {seq} exceeds the model's {spec.max_positions} positions")
    price = _Pricer(table, seq, batch)
    shell = price.shell(spec)
    layers = []
    for i, layer in enumerate(spec.layers):
        mha = price.mha(spec.hidden, layer)
        ffn = layer.stack * price.ffn_sublayer(spec.hidden, layer)
        layers.append({"layer": i, "mha": mha, "ffn": ffn})
    total = shell + sum(l["mha"] + l["ffn"] for l in layers)
    cal = table.calibration if calibrated else {"a": 1.0, "b": 0.0}
    a, b = cal["a"], cal["b"]
    ms = table.nominal_canary_ms
    norm = a * total + b
    breakdown = {
        "mha_ms": a * sum(l["mha"] for l in layers) * ms,
        "ffn_ms": a * sum(l["ffn"] for l in layers) * ms,
        "other_ms": (a * shell + b) * ms,
        "layers": [{"layer": l["layer"], "mha_ms": a * l["mha"] * ms, "ffn_ms": a * l["ffn"] * ms} for l in layers],
    }
    return Prediction(norm * ms, norm, total * ms, breakdown, table.name, seq, batch, sorted(price.extrapolated))


def raw_sum(spec: ArchSpec, table: LatencyTable, *, seq_len: int, batch: int) -> float:
    """The uncalibrated canary-normalised sum of a spec's units (what calibration is fitted on)."""
    return predict(spec, table, seq_len=seq_len, batch=batch, calibrated=False).normalised


def fit_calibration(sums: list[float], measured: list[float]) -> dict:
    """a, b minimising the squared *relative* error of a * sum + b against measured (canary units)."""
    if len(sums) < 2:
        return {"a": 1.0, "b": 0.0}
    import numpy as np

    s, m = np.asarray(sums, float), np.asarray(measured, float)
    w = 1.0 / m  # relative error: divide each residual by the measured value
    A = np.stack([s * w, w], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, m * w, rcond=None)
    return {"a": float(a), "b": float(b)}
