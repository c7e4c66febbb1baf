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

Attention and sub-layer come out of *differences* of whole-layer entries, each
a few per cent noisy, so they are read from fits rather than raw cells: the
attention entries of each hidden size are fitted as c0 + c1·(heads x head size)
+ c2·heads (table.py, `fitted`; 15 cells, 3 terms), and the extra sub-layer
(ffn_stack - reference layer) / (stack - 1) as c0 + c1·h + c2·h·ref_inner(h)
over every profiled hidden size, by relative error; each keeps the share of its
distance from its fit that is more than its windows' noise. Two independent profiles of this machine then predict
whole models 5 % apart (median) instead of 16 %.

The sum is canary-normalised; a calibration fitted at profile time on whole
zoo models (`normalised = a * sum`; tables keep a `b`, now 0) absorbs what the
parts miss in proportion (cache effects between units), and the
table's nominal canary time turns the result into milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgebert import mlp
from edgebert.arch import ArchSpec, LayerSpec
from edgebert.errors import EdgebertError
from edgebert.latency.units import HS_REF, NH_REF, NO_ACTIVATION, SLICE, ref_inner
from edgebert.latency.table import LatencyTable, shrunk_fit


# 2: attention entries fitted per hidden size, the extra FFN sub-layer fitted over hidden sizes;
# 3: that fit by relative error, the sub-layer read from ffn_stack entries of any depth
# (tables calibrated by an older version are refitted on load from their stored measurements);
# 4: fitted cells moved back toward their measured costs by the share of their residual beyond noise;
# 5: so is the extra sub-layer's fit over hidden sizes.
PREDICTOR_VERSION = 5
SUBLAYER_FIT_MIN = 4  # profiled hidden sizes needed to fit the extra sub-layer (3 terms) over them


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
        sub = self._sublayer(hidden)
        return ref - sub, sub

    def _stack_probe(self) -> int:
        """Sub-layers per layer in the table's ffn_stack entries (2 in tables made before it varied)."""
        return max(p["stack"] for p in self.table.points("ffn_stack", None, seq=self.seq, batch=self.batch))

    def _measured_sublayer(self, hidden: int) -> float:
        stack = self._stack_probe()
        ref = self("mha", None, hidden=hidden, heads=NH_REF, head_size=HS_REF)
        return (self("ffn_stack", None, hidden=hidden, stack=stack) - ref) / (stack - 1)

    def _measured_sublayer_se(self, hidden: int) -> float | None:
        """The standard error of `_measured_sublayer` (its two entries' over windows), None if unknown."""
        stacks, stack_se = self.table.measured_cells("ffn_stack", None, self.batch)
        _, mha_se = self.table.measured_cells("mha", None, self.batch)
        a = stack_se.get((self.seq, hidden, self._stack_probe()))
        b = mha_se.get((self.seq, hidden, NH_REF, HS_REF))
        return None if a is None or b is None else (a * a + b * b) ** 0.5 / (self._stack_probe() - 1)

    def _sublayer_curve(self):
        """(profiled hidden sizes, the fit's coefficients, each size's kept relative residual), or None
        when there are too few sizes to fit."""
        import numpy as np

        points = self.table.points("ffn_stack", None, seq=self.seq, batch=self.batch)
        hiddens = sorted({p["hidden"] for p in points})
        if len(hiddens) < SUBLAYER_FIT_MIN:
            return None
        subs = np.array([self._measured_sublayer(h) for h in hiddens])
        se = [self._measured_sublayer_se(h) for h in hiddens]
        x = np.array([_sub_features(h) for h in hiddens])
        kept, coef = shrunk_fit(x, subs, None if None in se else np.asarray(se, float))
        return hiddens, coef, kept / (x @ coef) - 1.0

    def _sublayer(self, hidden: int) -> float:
        """One reference FFN sub-layer ((ffn_stack - reference layer) / (stack - 1)), fitted over every
        profiled hidden size as c0 + c1·h + c2·h·ref_inner(h) (its FLOPs and the residual/LayerNorm's),
        by relative error: the sub-layer grows ~20x from hidden 128 to 768, and an absolute fit leaves
        the small end to chance (measured here: 0.50 fitted for 0.26 measured at hidden 128). A
        difference of two noisy whole-layer entries, it is multiplied by stack - 1 in a stacked layer.

        Each profiled size keeps the share of its distance from the fit that is more than noise, as the
        cells do (table.shrunk_fit), interpolated between sizes: on the Zen 4 EPYC (five profiles pooled,
        entries within 0.4-0.7 %) the sub-layer at hidden 512 lies 3.7 % above the smooth curve, where
        each core's half of the weights outgrows its 1 MiB L2, and the curve alone put 1-layer models
        with 3-4 narrow sub-layers at hidden 512-560 7-9 % low."""
        import numpy as np

        curve = self.table.cached(f"sublayer_curve/{self.seq}/{self.batch}", self._sublayer_curve)
        if curve is None:  # too few sizes to fit three terms with any averaging: measured
            return self._measured_sublayer(hidden)
        hiddens, coef, kept = curve
        fit = float(sum(c * f for c, f in zip(coef, _sub_features(hidden))))
        return fit * (1.0 + float(np.interp(hidden, hiddens, kept)))

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


def _sub_features(hidden: int) -> tuple[float, float, float]:
    return 1.0, float(hidden), float(hidden * ref_inner(hidden))


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
    cal = _calibration(table) if calibrated else {"a": 1.0, "b": 0.0}
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


def calibrate(data: dict) -> dict:
    """The calibration of a table's data ({"a", "b", "models", "models_done", "predictor"}): a and b
    fitted on its measured zoo models (`calibration_measured`) against this predictor's sums."""
    table = LatencyTable.from_dict(data)
    models = [dict(m) for m in data.get("calibration_measured") or []]
    sums = [raw_sum(ArchSpec.from_dict(m["spec"]), table, seq_len=m["seq"], batch=m["batch"]) for m in models]
    fit = fit_calibration(sums, [m["measured"] for m in models])
    for m, s in zip(models, sums):
        m["sum"] = s
        m["predicted"] = fit["a"] * s + fit["b"]
        m["error_pct"] = 100.0 * (m["predicted"] - m["measured"]) / m["measured"]
    return {**fit, "models": models, "models_done": True, "predictor": PREDICTOR_VERSION}


def _calibration(table: LatencyTable) -> dict:
    """The table's calibration; refitted (once per table object) on its stored measurements when an
    older predictor fitted it, so that a and b always correct the sums they were fitted on."""
    cal = table.calibration
    if cal.get("predictor", 1) == PREDICTOR_VERSION or not table.data.get("calibration_measured"):
        return cal
    return table.cached("refitted_calibration", lambda: calibrate(table.data))


def raw_sum(spec: ArchSpec, table: LatencyTable, *, seq_len: int, batch: int) -> float:
    """The uncalibrated canary-normalised sum of a spec's units (what calibration is fitted on)."""
    return predict(spec, table, seq_len=seq_len, batch=batch, calibrated=False).normalised


def fit_calibration(sums: list[float], measured: list[float]) -> dict:
    """The scale a (b = 0) minimising the squared log error of a * sum against measured (canary units):
    the geometric mean of measured / sum.

    One parameter, not two: the shell is priced whole, run overhead included, so nothing is left for
    an offset, and an offset fitted on five models of which one is small followed that model's noise
    into every small prediction (measured here, on 40 random architectures: the two-parameter fit's
    b = -0.12 canary units put the smallest 17 % low; the scale alone, 10 % at worst)."""
    if not sums:
        return {"a": 1.0, "b": 0.0}
    import numpy as np

    ratios = np.asarray(measured, float) / np.asarray(sums, float)
    return {"a": float(np.exp(np.mean(np.log(ratios)))), "b": 0.0}
