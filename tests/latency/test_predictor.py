
import pytest

from edgebert.arch import ArchSpec, Embedding, LayerSpec, validate
from edgebert.latency.predictor import fit_calibration, predict
from edgebert.latency.validate import sample_architectures, summarize
from tests.latency import synthetic
from tests.latency.synthetic import true_cost


def test_the_predictor_is_exact_on_a_synthetic_table():
    t = synthetic.table()
    spec = validate(ArchSpec(hidden=320, embedding=Embedding("factorized", 100), layers=(
        LayerSpec(heads=5, head_size=48, inner=640, stack=2),
        LayerSpec(heads=5, head_size=48, inner=300, ffn="tanh(W2(relu(W1(x))))"),
        LayerSpec(heads=5, head_size=48, inner=160, ffn="W2(mul(W1(x), x))"),
    )))
    # The reference layer (4 heads of 32) splits into its attention and one FFN sub-layer.
    ref = true_cost("mha", None, {"hidden": 320, "heads": 4, "head_size": 32})
    sub = true_cost("ffn_stack", None, {"hidden": 320}) - ref
    attention_ref = ref - sub
    mha = true_cost("mha", None, {"hidden": 320, "heads": 5, "head_size": 48}) - sub

    def ffn(inner):
        return true_cost("ffn", None, {"hidden": 320, "inner": inner}) - attention_ref

    by_hand = (
        true_cost("shell", "factorized", {"hidden": 320, "embedding_size": 100})
        + 3 * mha
        + 2 * ffn(640)
        + ffn(300)
        + true_cost("ffn_act", "relu", {"inner": 300}) - true_cost("ffn_act", "gelu", {"inner": 300})
        + true_cost("op", "tanh", {"width": 320})
        # layer 3: no activation after W1, a mul at width 160 whose x operand is sliced
        + ffn(160)
        + true_cost("ffn_act", "none", {"inner": 160}) - true_cost("ffn_act", "gelu", {"inner": 160})
        + true_cost("op", "mul", {"width": 160})
        + true_cost("op", "slice", {"width": 160}) - true_cost("op", "add", {"width": 160})
    )
    p = predict(spec, t, seq_len=128, batch=1)
    assert p.normalised == pytest.approx(by_hand, rel=1e-9)
    assert p.latency_ms == pytest.approx(by_hand * 2.0, rel=1e-9)  # nominal canary 2 ms
    b = p.breakdown
    assert b["mha_ms"] == pytest.approx(3 * mha * 2.0)
    assert b["mha_ms"] + b["ffn_ms"] + b["other_ms"] == pytest.approx(p.latency_ms)
    assert len(b["layers"]) == 3


def test_calibration_is_applied():
    t = synthetic.table(calibration={"a": 0.9, "b": 1.5, "models": []})
    spec = ArchSpec.uniform(layers=2, hidden=256, heads=4, inner=1024)
    raw = predict(spec, t, calibrated=False).normalised
    assert predict(spec, t).normalised == pytest.approx(0.9 * raw + 1.5)


def test_fit_calibration_recovers_a_line():
    sums = [1.0, 5.0, 20.0, 80.0]
    assert fit_calibration(sums, [0.8 * s + 2.0 for s in sums]) == pytest.approx({"a": 0.8, "b": 2.0})


def test_validation_samples_include_the_smallest_corner_and_no_calibration_model():
    t = synthetic.table()
    specs = sample_architectures(t, 20, seed=3)
    assert specs[0].num_layers == 1 and specs[0].hidden == 128
    assert len({s.key() for s in specs}) == 20
    assert specs == sample_architectures(t, 20, seed=3)


def test_summary_statistics():
    rows = [{"error_pct": e, "predicted": p, "measured": m}
            for e, p, m in [(1.0, 1, 1), (-4.0, 2, 2), (7.0, 3, 3), (-12.0, 4, 4)]]
    s = summarize(rows)
    assert s["within_5pct"] == 0.5 and s["within_10pct"] == 0.75
    assert s["max_abs_pct"] == 12.0 and s["mean_abs_pct"] == 6.0 and s["spearman"] == pytest.approx(1.0)
