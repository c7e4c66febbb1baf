
import pytest

from edgebert.arch import ArchSpec, Embedding, LayerSpec, validate
from edgebert.latency.predictor import fit_calibration, predict
from edgebert.latency.units import STACK_PROBE
from edgebert.latency.table import LatencyTable, TableError
from edgebert.latency.validate import sample_architectures, summarize
from tests.latency import synthetic
from tests.latency.synthetic import true_cost


@pytest.mark.parametrize("hidden", [(128, 256, 512), (128, 256, 384, 512)], ids=["measured-split", "fitted-split"])
def test_the_predictor_is_exact_on_a_synthetic_table(hidden):
    # Three hidden sizes: the sub-layer is the measured difference; four: its fit over hidden sizes,
    # exact too, since the synthetic costs have the fitted form.
    t = synthetic.table(hidden)
    spec = validate(ArchSpec(hidden=320, embedding=Embedding("factorized", 100), layers=(
        LayerSpec(heads=5, head_size=48, inner=640, stack=2),
        LayerSpec(heads=5, head_size=48, inner=300, ffn="tanh(W2(relu(W1(x))))"),
        LayerSpec(heads=5, head_size=48, inner=160, ffn="W2(mul(W1(x), x))"),
    )))
    # The reference layer (4 heads of 32) splits into its attention and one FFN sub-layer.
    ref = true_cost("mha", None, {"hidden": 320, "heads": 4, "head_size": 32})
    sub = (true_cost("ffn_stack", None, {"hidden": 320, "stack": STACK_PROBE}) - ref) / (STACK_PROBE - 1)
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


def test_fit_calibration_recovers_a_scale():
    sums = [1.0, 5.0, 20.0, 80.0]
    assert fit_calibration(sums, [0.8 * s for s in sums]) == pytest.approx({"a": 0.8, "b": 0.0})
    # Log errors: a model 10 % over and one 10 % under balance at the geometric mean.
    assert fit_calibration([1.0, 100.0], [1.1, 100 / 1.1])["a"] == pytest.approx(1.0)
    assert fit_calibration([], []) == {"a": 1.0, "b": 0.0}


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


def test_fitting_the_layer_entries_absorbs_their_noise(monkeypatch):
    """Whole-layer entries 6 % noisy (four seeded draws) on a grid of seven hidden sizes: the
    attention fitted per hidden size and the sub-layer fitted over hidden sizes predict random
    architectures closer to the truth than the raw entries do. (With three or four hidden sizes
    and six attention cells each, fitting has too little to average: a wash.)"""
    import json
    import random
    from dataclasses import replace

    from edgebert.latency import predictor, units
    from edgebert.latency.table import TableError

    hidden = (128, 192, 256, 320, 384, 448, 512)
    exact = synthetic.table(hidden)

    def inside(spec) -> bool:
        try:
            return not predict(spec, exact).extrapolated
        except TableError:
            return False

    specs = [s for s in sample_architectures(exact, 300, seed=1) if inside(s)][:30]
    draws = []
    for seed in range(4):
        rng = random.Random(seed)
        draws.append({(u, json.dumps(k, sort_keys=True)): 1.0 + rng.uniform(-0.06, 0.06)
                      for u, _, k in synthetic.grid(hidden).entries() if u in ("mha", "ffn_stack")})

    def mean_error() -> float:
        errors = []
        for noise in draws:
            noisy = synthetic.table(hidden, noise=lambda u, k: noise.get((u, json.dumps(k, sort_keys=True)), 1.0))
            errors += [abs(predict(s, noisy).normalised / predict(s, exact).normalised - 1) for s in specs]
        return sum(errors) / len(errors)

    fitted = mean_error()
    monkeypatch.setitem(units.UNITS, "mha", replace(units.UNITS["mha"], features=None))
    monkeypatch.setattr(predictor, "SUBLAYER_FIT_MIN", 10**6)
    raw = mean_error()
    assert len(specs) == 30 and fitted < 0.8 * raw


def test_a_calibration_an_older_predictor_fitted_is_refitted_on_its_measurements():
    from edgebert.latency.predictor import PREDICTOR_VERSION, raw_sum

    base = synthetic.table()
    specs = [ArchSpec.uniform(layers=2, hidden=256, heads=4, inner=1024),
             ArchSpec.uniform(layers=1, hidden=128, heads=2, head_size=64, inner=256)]
    measured = [{"spec": s.to_dict(), "seq": 128, "batch": 1,
                 "measured": 0.8 * raw_sum(s, base, seq_len=128, batch=1)} for s in specs]
    old = synthetic.table(calibration={"a": 5.0, "b": 0.0, "models": []}, calibration_measured=measured)
    spec = ArchSpec.uniform(layers=3, hidden=512, heads=8, inner=2048)
    raw = predict(spec, old, calibrated=False).normalised
    assert predict(spec, old).normalised == pytest.approx(0.8 * raw)
    current = synthetic.table(calibration={"a": 5.0, "b": 0.0, "models": [], "predictor": PREDICTOR_VERSION},
                              calibration_measured=measured)
    assert predict(spec, current).normalised == pytest.approx(5.0 * raw)


@pytest.mark.parametrize("hidden", [(128, 256, 512), (128, 256, 384, 512)], ids=["measured-split", "fitted-split"])
def test_a_table_whose_stack_probes_were_two_deep_predicts_the_same(hidden):
    """Tables made before the ffn_stack unit had a depth axis hold 2-deep probes keyed by hidden
    alone: they read as stack 2, and the sub-layer comes out the same."""
    current = synthetic.table(hidden)

    def two_deep(entry: dict) -> dict:  # the reference layer plus the one sub-layer the deep probe implies
        h = entry["key"]["hidden"]
        ref = true_cost("mha", None, {"hidden": h, "heads": 4, "head_size": 32})
        return {**entry, "key": {"hidden": h}, "cost": ref + (entry["cost"] - ref) / (STACK_PROBE - 1)}

    data = dict(current.data)
    data["entries"] = [two_deep(e) if e["unit"] == "ffn_stack" else e for e in current.data["entries"]]
    legacy = LatencyTable.from_dict(data)
    spec = validate(ArchSpec(hidden=320, layers=(LayerSpec(heads=5, head_size=48, inner=640, stack=3),)))
    # Between profiled hidden sizes the two tables' probes interpolate with their own FLOPs weights.
    assert predict(spec, legacy).normalised == pytest.approx(predict(spec, current).normalised, rel=1e-3)


def test_an_entry_missing_an_axis_is_refused_in_one_line():
    data = dict(synthetic.table().data)
    data["entries"] = [{**e, "key": {}} if e["unit"] == "mha" else e for e in data["entries"]]
    with pytest.raises(TableError, match="entry .* is malformed"):
        LatencyTable.from_dict(data)


def test_validation_windows_measure_every_model_once_among_fresh_company(monkeypatch, tmp_path):
    # A model's figure moves with the models beside it in the worker: each window regroups them.
    import random
    from types import SimpleNamespace

    from edgebert.device.timing import TimingPolicy, Workload
    from edgebert.latency import validate as v

    groups = []

    class Report(dict):  # report[name].normalised / .spread, report.speed_factor, as timing.measure's
        speed_factor = 1.0

    def fake_measure(workloads, *, policy, nominal_canary_ms):
        assert policy.windows == 1
        groups.append([w.name for w in workloads])
        return Report({w.name: SimpleNamespace(normalised=float(w.name[1:]), spread=0.1) for w in workloads})

    monkeypatch.setattr(v, "measure", fake_measure)
    workloads = [Workload(f"m{i}", tmp_path / f"m{i}.onnx", []) for i in range(25)]
    policy = TimingPolicy(threads=1, windows=3)
    per_model, speeds = v._measure_windows(workloads, policy, 1.0, random.Random(0), lambda n: None)
    assert all(len(g) <= v.GROUP for g in groups)
    windows = [groups[i:i + 3] for i in range(0, len(groups), 3)]
    assert len(windows) == 3
    for window in windows:  # every model exactly once per window
        assert sorted(n for g in window for n in g) == sorted(w.name for w in workloads)
    assert windows[0] != windows[1]  # not the same company every window
    assert per_model["m7"] == [7.0, 7.0, 7.0] and speeds["m7"] == [1.0, 1.0, 1.0]


def test_a_validation_says_how_much_of_it_ran_on_a_slow_machine():
    # Windows kept below MIN_SPEED after three attempts count against the machine, not the table.
    from edgebert.latency.validate import MIN_SPEED, machine_speed

    rows = [{"window_speed": [1.0, 0.95, MIN_SPEED - 0.1]}, {"window_speed": [0.9, MIN_SPEED, 0.4]}]
    speed = machine_speed(rows)
    assert speed["below_min"] == pytest.approx(2 / 6)
    assert speed["median"] == pytest.approx((0.9 + MIN_SPEED) / 2)
    assert machine_speed([{"window_speed": [1.0, 0.8]}])["below_min"] == 0


@pytest.mark.parametrize("window_noise, kept", [(0.002, (0.7, 1.0)), (0.2, (0.0, 0.3))], ids=["precise", "noisy"])
def test_the_sublayer_keeps_what_its_fit_misses_beyond_noise(window_noise, kept):
    """One hidden size's stack probe 12 % dearer than the smooth curve through the others: with the
    entries' windows precise the sub-layer there keeps most of its distance from the fit (and half of
    it half-way to the next size); with them noisy, little."""
    from edgebert.latency.predictor import _Pricer

    hidden, kinked = (128, 192, 256, 320, 384, 448, 512), 384
    bump = 1.12

    def windows(cost: float) -> list[dict]:  # seven windows spread by +-window_noise around the cost
        return [{"cost": cost * (1 + window_noise * d)} for d in (-1.0, -0.6, -0.2, 0.0, 0.2, 0.6, 1.0)]

    def data(kink: bool) -> dict:
        base = synthetic.table(hidden).data
        entries = []
        for e in base["entries"]:
            e = dict(e)
            if kink and e["unit"] == "ffn_stack" and e["key"]["hidden"] == kinked:
                ref = true_cost("mha", None, {"hidden": kinked, "heads": 4, "head_size": 32})
                e["cost"] = ref + bump * (e["cost"] - ref)  # every sub-layer of the probe 12 % dearer
            e["measurements"] = windows(e["cost"])
            entries.append(e)
        return {**base, "entries": entries}

    smooth, kinked_table = (LatencyTable.from_dict(data(k)) for k in (False, True))
    at = lambda t, h: _Pricer(t, 128, 1)._sublayer(h)  # noqa: E731
    assert at(smooth, kinked) == pytest.approx(_Pricer(smooth, 128, 1)._measured_sublayer(kinked), rel=1e-6)
    measured = _Pricer(kinked_table, 128, 1)._measured_sublayer(kinked)
    fit_only = at(smooth, kinked)  # what the curve alone gives (the kink pulls it a little too)
    share = (at(kinked_table, kinked) - fit_only) / (measured - fit_only)
    assert kept[0] <= share <= kept[1]
    if window_noise < 0.01:  # what it keeps fades linearly to the neighbouring sizes
        halfway = (at(kinked_table, 416) / at(smooth, 416) - 1) / (at(kinked_table, kinked) / at(smooth, kinked) - 1)
        assert halfway == pytest.approx(0.5, abs=0.2)
