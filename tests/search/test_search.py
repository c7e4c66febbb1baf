"""The search on a tiny teacher, 240 SST-2 rows and a synthetic latency table."""

import json
import subprocess
import sys

import pytest
import torch

from edgebert.arch import ArchSpec
from edgebert.modeling import extract_active
from edgebert.search import progressive
from edgebert.search.context import build_context
from edgebert.search.progressive import search
from edgebert.search.space import BackboneStage, DimensionStage, check_point
from edgebert.search.study import best_of, evaluated, open_study, run_trials, storage_for
from edgebert.search.supernet import Supernet

BUDGET = 4.0


@pytest.fixture
def ctx(tiny_config):
    return build_context(tiny_config(budget_ms=BUDGET), progress=False)


def test_every_proposed_point_is_valid_inside_its_stage_and_feasible_when_trained(ctx):
    study = open_study(ctx.cfg, "backbone", storage_for(ctx.cfg))
    stage = BackboneStage(ctx.limits)
    run_trials(ctx, study, stage, lambda spec: 0.5, target=4, progress=False)
    choices = stage.choices()
    trials = study.get_trials()
    assert any(t.user_attrs["violation"] > 0 for t in trials), "the budget should reject some proposals"
    for t in trials:
        spec = check_point(ArchSpec.from_dict(t.user_attrs["spec"]), ctx.limits)
        assert all(t.params[k] in v for k, v in choices.items())
        assert spec.num_layers == t.params["layers"] and spec.hidden == t.params["hidden"]
    for t in evaluated(study):
        assert t.values[1] <= BUDGET
    assert len(evaluated(study)) == 4


@pytest.mark.parametrize("teacher", ["minilm-l6-h384", "bert-base"])
def test_backbone_attention_spans_half_to_all_of_hidden(teacher):
    """Every backbone point's attention (heads x the teacher's head size) lies within one head of its
    share of hidden, the shares spanning half to all of it; full attention is teacher-shaped."""
    from edgebert import zoo
    from edgebert.search.space import ATTENTION_SHARES, Limits

    limits = Limits.of(zoo.get(teacher))
    stage = BackboneStage(limits)
    choices = stage.choices()
    assert min(ATTENTION_SHARES) == 0.5 and max(ATTENTION_SHARES) == 1.0
    for hidden in choices["hidden"]:
        for share in choices["attention"]:
            layer = stage.to_spec({"layers": 1, "hidden": hidden, "attention": share, "inner_ratio": 2.0}).layers[0]
            assert layer.head_size == limits.head_size and 1 <= layer.heads <= limits.heads
            assert abs(layer.attn_width - share * hidden) <= limits.head_size / 2 or layer.heads == limits.heads
    for p in stage.teacher_shaped():
        assert stage.to_spec(p).layers[0].attn_width == p["hidden"]


@pytest.mark.parametrize("min_layers", [1, 2, 6])
def test_min_layers_bounds_every_backbone_and_random_point(min_layers):
    """--min-layers removes the shallow backbones from the backbone stage and from the random baseline
    alike (one space for both), and nothing else."""
    import random

    from edgebert import zoo
    from edgebert.search.space import JointRandomStage, Limits, expression_pool

    limits = Limits.of(zoo.get("minilm-l6-h384"))
    stage = BackboneStage(limits, min_layers=min_layers)
    assert stage.choices()["layers"] == list(range(min_layers, limits.layers + 1))
    assert {k: v for k, v in stage.choices().items() if k != "layers"} == \
        {k: v for k, v in BackboneStage(limits).choices().items() if k != "layers"}
    assert all(p["layers"] >= min_layers for p in stage.teacher_shaped())
    rng = random.Random(0)
    joint = JointRandomStage(limits, expression_pool(), min_layers)
    assert all(joint.sample(rng)[1].num_layers >= min_layers for _ in range(50))


def test_min_layers_keeps_old_runs_resumable_and_prices_its_own_cheapest_point(tiny_config):
    from edgebert.errors import EdgebertError
    from edgebert.latency.table import LatencyTable
    from edgebert.search.context import SearchConfig, budget_of
    from edgebert.search.space import DEFAULT_MIN_LAYERS

    one, two = tiny_config(min_layers=1), tiny_config(min_layers=2)
    assert "min_layers" not in one.key_settings()  # runs made before the setting existed (one layer) resume
    assert two.key_settings()["min_layers"] == 2
    default = SearchConfig(teacher="t", task="sst2", data="d", out="o", budget_ms=1.0)
    assert default.min_layers == DEFAULT_MIN_LAYERS == 2  # the one-layer trap (README)
    assert default.key_settings()["min_layers"] == 2  # so a run of the old default does not resume as the new
    usage = subprocess.run([sys.executable, "-m", "edgebert.cli.main", "search", "--help"], capture_output=True,
                           text=True).stdout  # the CLI states the default without importing the space at start-up
    assert f"(default {DEFAULT_MIN_LAYERS}:" in " ".join(usage.split())
    saved = json.loads(one.to_json())
    del saved["min_layers"]  # a run made before the setting existed
    assert SearchConfig.from_saved(saved).min_layers == 1
    table = LatencyTable.load(one.table)
    budget_of(tiny_config(budget_ms=2.5), table)  # one layer fits 2.5 ms on the synthetic table (2.0)...
    with pytest.raises(EdgebertError, match=r"cheapest point of the space \(2L h128 1x32 standard"):
        budget_of(tiny_config(budget_ms=2.5, min_layers=2), table)  # ...two do not (3.0)
    with pytest.raises(EdgebertError, match="--min-layers must lie in 1..12"):
        budget_of(tiny_config(min_layers=0), table)


def test_a_search_with_min_layers_proposes_and_calibrates_on_deep_enough_backbones(tiny_config):
    import random

    from edgebert.search.verify import calibration_points

    ctx = build_context(tiny_config(budget_ms=BUDGET, min_layers=2), progress=False)
    state = {"stages": {}}
    for name in ("backbone", "random"):
        stage, _, _ = progressive.stage_for(ctx, name, state)
        assert {stage.sample(random.Random(i))[0]["layers"] for i in range(20)} == {2}
    points = calibration_points(ctx)
    assert points and all(spec.num_layers == 2 for spec in points)


def test_an_infeasible_point_is_never_best(ctx):
    study = open_study(ctx.cfg, "backbone", storage_for(ctx.cfg))
    # Score bigger (slower) models higher: the best feasible must still respect the budget.
    run_trials(ctx, study, BackboneStage(ctx.limits), lambda spec: spec.param_count() / 1e7, target=3, progress=False)
    best = best_of(study)
    assert best["predicted_ms"] <= BUDGET
    infeasible = [t for t in study.get_trials() if t.user_attrs["violation"] > 0]
    assert infeasible and all(t.values[0] == 0.0 for t in infeasible)


def test_the_backbone_stage_starts_from_teacher_shaped_backbones_that_use_the_budget(tiny_config):
    ctx = build_context(tiny_config(budget_ms=8.0, trials=4), progress=False)
    stage = BackboneStage(ctx.limits)
    window = (3.0, 8.0)  # holds teacher-shaped backbones of both depths on the synthetic table
    study = open_study(ctx.cfg, "backbone", storage_for(ctx.cfg))
    progressive.warm_start(ctx, study, stage, {}, window)
    run_trials(ctx, study, stage, lambda spec: 0.5, target=4, window=window, progress=False)
    shaped = {tuple(sorted(p.items())) for p in stage.teacher_shaped()}
    # The tiny teacher has 2 layers: one seed per depth, the one using the most of the budget.
    seeds = study.get_trials()[:2]
    assert all(tuple(sorted(t.params.items())) in shaped for t in seeds)
    assert sorted(t.params["layers"] for t in seeds) == [1, 2]
    assert seeds[0].user_attrs["latency_ms"] >= seeds[1].user_attrs["latency_ms"]
    for t in seeds:
        same_depth = [ctx.latency(stage.to_spec(dict(p))) for p in shaped if dict(p)["layers"] == t.params["layers"]]
        assert t.user_attrs["latency_ms"] == max(x for x in same_depth if window[0] <= x <= window[1])
    assert all(window[0] <= t.values[1] <= window[1] for t in evaluated(study))


def test_the_structure_stage_keeps_the_backbone_unless_a_new_expression_beats_it(ctx):
    from edgebert.search.space import StructureStage

    backbone = ArchSpec.uniform(layers=2, hidden=128, heads=4, head_size=32, inner=256, **dict(ctx.limits.shared))
    state = {"stages": {"backbone": {"spec": backbone.to_dict(), "score": 0.8, "predicted_ms": ctx.latency(backbone),
                                     "trial": 3}}}
    stage = StructureStage(backbone)
    study = open_study(ctx.cfg, "structure", storage_for(ctx.cfg))
    progressive.warm_start(ctx, study, stage, state, None)
    trained = []
    run_trials(ctx, study, stage, lambda spec: trained.append(spec.key()) or 0.7, target=2, progress=False)
    assert len(evaluated(study)) == 2 and backbone.key() not in trained  # carried, never retrained
    assert best_of(study)["spec"] == backbone.to_dict()
    # A new expression ahead by less than the held-out set's standard error does not displace it ...
    run_trials(ctx, study, stage, lambda spec: 0.81, target=3, progress=False)
    assert ctx.margin(0.8) > 0.01
    assert best_of(study)["score"] == 0.81  # (no incumbent given: the top score)
    kept = best_of(study, incumbent=backbone.key(), margin=ctx.margin)
    assert kept["spec"] == backbone.to_dict() and kept["incumbent"]
    assert progressive.incumbent_of("structure", state) == backbone.key()
    # ... one ahead by more does.
    run_trials(ctx, study, stage, lambda spec: 0.8 + 2 * ctx.margin(0.8), target=4, progress=False)
    won = best_of(study, incumbent=backbone.key(), margin=ctx.margin)
    assert won["score"] > 0.8 and not won["incumbent"]


def test_a_refit_that_finds_no_new_point_in_its_window_ends_quietly(ctx, monkeypatch):
    from edgebert.errors import EdgebertError
    from edgebert.search import study

    monkeypatch.setattr(study, "MAX_ASKS_PER_TRIAL", 5)
    structure = ArchSpec.uniform(layers=1, hidden=128, heads=4, head_size=32, inner=128, **dict(ctx.limits.shared))
    empty = (0.001, 0.002)  # no point of the space is predicted this fast
    refit = DimensionStage(structure, ctx.limits)
    refit.name = "refit1"
    run_trials(ctx, open_study(ctx.cfg, "refit1", storage_for(ctx.cfg)), refit, lambda spec: 0.5, target=2,
               window=empty, progress=False)
    with pytest.raises(EdgebertError, match="too few feasible"):  # any other stage fails with one line
        run_trials(ctx, open_study(ctx.cfg, "dimensions", storage_for(ctx.cfg)), DimensionStage(structure, ctx.limits),
                   lambda spec: 0.5, target=2, window=empty, progress=False)


def test_a_sliced_supernet_point_equals_a_standalone_model(ctx):
    structure = ArchSpec.uniform(layers=2, hidden=128, heads=4, head_size=32, inner=128,
                                 ffn="W2(relu(mul(W1(x), x)))", max_positions=128)
    stage = DimensionStage(structure, ctx.limits)
    net = Supernet.build(ctx.teacher.model, stage, ctx.mapping(structure), ctx.order)
    assert net.model.config.spec == stage.largest()
    import random

    _, point = stage.sample(random.Random(1))
    net.model.set_active(point)
    ids = torch.randint(1, 1000, (2, 9))
    sliced = net.model(ids).logits
    alone = extract_active(net.model)(ids).logits
    torch.testing.assert_close(sliced, alone, atol=1e-6, rtol=1e-6)
    net.model.set_active(None)
    torch.testing.assert_close(net.sub_model(point)(ids).logits, alone, atol=1e-6, rtol=1e-6)


def test_the_supernet_sandwich_stays_within_the_latency_bound(ctx):
    """With a cost, the warm-up trains only points the search may pick: its largest is the costliest
    uniform point within the bound, its random points lie within it; without one, the whole stage."""
    structure = ArchSpec.uniform(layers=2, hidden=128, heads=4, head_size=32, inner=128, max_positions=128)
    stage = DimensionStage(structure, ctx.limits)
    net = Supernet(None, stage, ())
    costs = sorted({ctx.latency(spec) for spec in stage.uniform_points()})
    assert ctx.latency(stage.smallest()) == costs[0] < costs[len(costs) // 2] < ctx.latency(stage.largest())
    bound = costs[len(costs) // 2]
    top = net.top(ctx.latency, bound)
    assert ctx.latency(top) == bound and len({(l.inner, l.stack) for l in top.layers}) == 1
    subnets = net.sandwich(0, ctx.latency, bound)
    drawn = [spec for step in range(20) for spec in subnets(step)]
    assert all(ctx.latency(spec) <= bound for spec in drawn)
    assert len({spec.key() for spec in drawn}) > 3  # random points, not only the two ends
    assert net.sandwich(0)(0)[0] == stage.largest() == net.top()
    assert net.top(ctx.latency, costs[0] / 2) == stage.smallest()  # nothing fits: the smallest


def test_search_end_to_end_then_resume_is_free(tiny_config):
    cfg = tiny_config(budget_ms=BUDGET)
    result = search(cfg, progress=False)
    for key in ("out", "budget_ms", "best", "pareto", "trials", "seconds"):
        assert key in result
    best, limit = result["best"], result["limit_ms"]
    # The stages searched under the budget as measurement placed it in predicted ms (held near the budget).
    assert limit == result["calibration"]["limit_ms"] and 0.75 * BUDGET <= limit <= 1.33 * BUDGET
    # The winner fits as measured, and comes from under the limit or from a refit's measured window.
    windows = [(0.0, limit)] + [tuple(r["window_ms"]) for r in progressive.load_state(cfg).get("refits", {}).values()]
    assert best["fits"] and best["measured_ms"] > 0
    assert any(low <= best["predicted_ms"] <= high for low, high in windows)
    assert "accuracy" in best["dev"]
    assert all(p["predicted_ms"] <= limit for p in result["pareto"])
    from edgebert.hub import load_model

    assert load_model(best["student"]).spec == ArchSpec.from_dict(best["spec"])
    assert progressive.load_state(cfg)["final"]["init"] == "extract"
    assert [s["name"] for s in best["final_stages"]] == ["warmup", "task"]
    phases = result["phase_seconds"]
    assert list(phases) == ["context", "calibration", "backbone", "structure", "dimensions", "verify", "final"]
    assert sum(phases.values()) <= result["seconds"] + 1
    # Rerunning the same command finds every stage done: no new trial.
    again = search(tiny_config(budget_ms=BUDGET), progress=False)
    assert again["trials"] == result["trials"] and again["best"]["spec"] == best["spec"]
    assert again["phase_seconds"]["final"] == phases["final"]  # a finished phase is not timed again
    # A student distilled (or begun) for another candidate (a search verified again chose anew) is not
    # the winner's: it is distilled afresh.
    from dataclasses import replace

    spec = ArchSpec.from_dict(best["spec"])
    other = spec.with_layers([replace(spec.layers[0], inner=spec.layers[0].inner + 32), *spec.layers[1:]])
    (cfg.out_path / "best_spec.json").write_text(other.to_json())
    from edgebert.distill.run import checkpoint_dir

    half_way = checkpoint_dir(cfg.out_path / "student")  # its interrupted distillation, left behind
    half_way.mkdir(exist_ok=True)
    (half_way / "checkpoint.pt").write_bytes(b"another candidate's weights")
    said = []
    third = search(tiny_config(budget_ms=BUDGET), progress=False, say=said.append)
    assert any(m.startswith("distilling the winner") for m in said)
    assert load_model(third["best"]["student"]).spec == spec
    (cfg.out_path / "best_spec.json").unlink()  # whose student it is cannot be told: distilled again
    said.clear()
    fourth = search(tiny_config(budget_ms=BUDGET), progress=False, say=said.append)
    assert any(m.startswith("distilling the winner") for m in said)
    assert load_model(fourth["best"]["student"]).spec == spec
    said.clear()
    search(tiny_config(budget_ms=BUDGET), progress=False, say=said.append)  # and then it is the winner's
    assert not any(m.startswith("distilling the winner") for m in said)


def test_random_search_runs_end_to_end_under_the_budget(tiny_config):
    result = search(tiny_config(budget_ms=BUDGET, strategy="random"), progress=False)
    assert result["strategy"] == "random" and list(result["stages"]) == ["random"]
    assert result["best"]["fits"] and "accuracy" in result["best"]["dev"]


def test_an_interrupted_stage_resumes_the_same_study(ctx, monkeypatch):
    calls = []

    def crash_on_second(spec):
        calls.append(spec.key())
        if len(calls) == 2:
            raise KeyboardInterrupt
        return 0.5

    study = open_study(ctx.cfg, "backbone", storage_for(ctx.cfg))
    with pytest.raises(KeyboardInterrupt):
        run_trials(ctx, study, BackboneStage(ctx.limits), crash_on_second, target=3, progress=False)
    assert len(evaluated(study)) == 1
    again = open_study(ctx.cfg, "backbone", storage_for(ctx.cfg))
    run_trials(ctx, again, BackboneStage(ctx.limits), lambda spec: calls.append(spec.key()) or 0.5, target=3,
               progress=False)
    assert len(evaluated(again)) == 3
    keys = [ArchSpec.from_dict(t.user_attrs["spec"]).key() for t in evaluated(again)]
    assert len(set(keys)) == 3 and calls[0] in keys  # the first result was kept, not redone


def test_two_workers_share_one_study_and_evaluate_nothing_twice(tiny_config):
    from edgebert.files import atomic_write_text

    cfg = tiny_config(budget_ms=BUDGET, workers=2, trials=3)
    cfg.out_path.mkdir(parents=True)
    atomic_write_text(cfg.out_path / progressive.CONFIG_FILE, cfg.to_json())
    progressive.save_state(cfg, progressive.load_state(cfg))
    worker = subprocess.Popen([sys.executable, "-m", "edgebert.search.worker",
                               str(cfg.out_path / progressive.CONFIG_FILE), "backbone", "1"])
    ctx = build_context(cfg, progress=False)
    study = open_study(cfg, "backbone", storage_for(cfg))
    run_trials(ctx, study, BackboneStage(ctx.limits), ctx.proxy_score, target=3, progress=False)
    assert worker.wait(timeout=600) == 0
    trained = [t for t in study.get_trials() if "eval_s" in t.user_attrs]
    keys = [ArchSpec.from_dict(t.user_attrs["spec"]).key() for t in trained]
    assert len(keys) == len(set(keys)) >= 3
    assert len({t.number for t in trained}) == len(trained)


def _one_line(r, fragment):
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_bad_inputs_get_one_line(tiny_teacher, tiny_glue, tiny_table, tmp_path):
    base = ["search", "--teacher", str(tiny_teacher), "--task", "sst2", "--data", str(tiny_glue),
            "--table", str(tiny_table), "--out", str(tmp_path / "s"), "--compare-with", "none"]
    bad_space = tmp_path / "space.json"
    bad_space.write_text(json.dumps({"expressions": ["W2(gelu(W1(x)))", "W2(gelu(x))"]}))
    partial = json.loads(tiny_table.read_text())
    partial["entries"] = [e for e in partial["entries"] if e["unit"] != "mha"]
    lacking = tmp_path / "lacking.json"
    lacking.write_text(json.dumps(partial))
    cases = [
        # the default depth floor, two layers: 3.0 ms on the synthetic table
        (base + ["--budget-ms", "2.5"], "below the cheapest point of the space (2L h128 1x32 standard: "),
        (base + ["--budget-ms", "4", "--storage", "postgresql://nobody@127.0.0.1:9/none"], "is unreachable"),
        (base + ["--budget-ms", "4", "--space", str(bad_space)], "expressions[1]: invalid MLP expression"),
        ([a if a != str(tiny_table) else str(lacking) for a in base] + ["--budget-ms", "4"], "lacks entries"),
        # within the space's 1..12 but deeper than the two-layer teacher: refused before its caches are built
        (base + ["--budget-ms", "10", "--min-layers", "3"], "--min-layers must lie in 1..2 (the teacher's layers), not 3"),
    ]
    for args, fragment in cases:
        r = subprocess.run([sys.executable, "-m", "edgebert.cli.main", *args], capture_output=True, text=True)
        _one_line(r, fragment)
        assert not (tmp_path / "s").exists(), args  # nothing half-written


class _Timed:
    def __init__(self, ms, windows=None):
        self.median_ms, self.normalised, self.window_median_ms = ms, None, windows or [ms]


class _Report(dict):
    windows = [type("Window", (), {"canary_median_ms": 1.0})()]


def test_a_winner_leaving_budget_unused_is_refitted_into_the_last_tenth(tiny_config, monkeypatch):
    """A table that over-predicts by a third (measured = 0.75 x predicted, simulated): the first
    pass's winner uses at most 75 % of the budget; the refit searches the window measurement
    points to, and the final winner uses 90-100 % of the budget."""
    from edgebert.search import verify as verify_mod

    calls = []

    def biased(ctx, specs, **_):
        # The machine sped up after the calibration (first call: the table was right), as it does here.
        share = 0.75 if calls else 1.0
        calls.append(len(specs))
        return _Report({f"candidate{i}": _Timed(share * ctx.latency(s)) for i, s in enumerate(specs, start=1)})

    monkeypatch.setattr(verify_mod, "measure_candidates", biased)
    result = search(tiny_config(budget_ms=BUDGET, trials=3), progress=False)
    state = progressive.load_state(tiny_config(budget_ms=BUDGET, trials=3))
    assert state["calibration"]["limit_ms"] == pytest.approx(BUDGET)
    first = state["verify_first"]["winner"]
    assert first["budget_use"] <= 0.76
    refit = state["refits"]["refit1"]
    assert refit["calibration"] == pytest.approx(0.75)
    low, high = refit["window_ms"]
    assert low == pytest.approx(0.92 * BUDGET / 0.75) and high == pytest.approx(0.98 * BUDGET / 0.75)
    best = result["best"]
    assert 0.9 <= best["budget_use"] <= 1.0 and low <= best["predicted_ms"] <= high
    assert result["stages"]["refit1"]["done"] and len(state["refits"]) <= progressive.REFITS
    measured = [c for r in refit["verified"]["rounds"] for c in r]
    assert len({round(c["predicted_ms"], 6) for c in measured}) == len(measured)  # spread, not repeats


def test_calibration_moves_the_budget_to_where_measurement_puts_it(ctx, monkeypatch):
    """Teacher-shaped backbones near the budget, one per depth, measured at `share` x predicted:
    the search limit is the budget over the median measured/predicted share, held within 0.75-1.33x."""
    from edgebert.search import verify as verify_mod
    from edgebert.search.verify import calibrate_budget, calibration_points

    points = calibration_points(ctx)
    assert points and len({p.num_layers for p in points}) == len(points)
    shaped = {BackboneStage(ctx.limits).to_spec(p).key() for p in BackboneStage(ctx.limits).teacher_shaped()}
    assert all(p.key() in shaped and 0.75 * BUDGET <= ctx.latency(p) <= 1.33 * BUDGET for p in points)
    for share, limit in ((0.9, BUDGET / 0.9), (1.1, BUDGET / 1.1), (0.5, 1.33 * BUDGET), (2.0, 0.75 * BUDGET)):
        monkeypatch.setattr(verify_mod, "measure_candidates", lambda ctx, specs, share=share, **_: _Report(
            {f"candidate{i}": _Timed(share * ctx.latency(s)) for i, s in enumerate(specs, start=1)}))
        result = calibrate_budget(ctx)
        assert result["limit_ms"] == pytest.approx(limit)
        assert [r["budget_use"] for r in result["measured"]] == pytest.approx(
            [share * ctx.latency(p) / BUDGET for p in points])
    # Beside a reference over several windows, a candidate's ratio is the median of each window's.
    monkeypatch.setattr(ctx.cfg, "compare_with", "bert-base")
    monkeypatch.setattr(verify_mod, "measure_candidates", lambda ctx, specs, **_: _Report(
        reference=_Timed(150.0, [100.0, 200.0, 100.0]), candidate1=_Timed(11.0, [10.0, 10.0, 12.0])))
    (row,) = verify_mod.measure_rows(ctx, [{"spec": points[0].to_dict(), "predicted_ms": 1.0}], windows=3)
    assert row["ratio_to_bert_base"] == pytest.approx(0.1)  # of 0.1, 0.05 and 0.12
    # ... and its figures are that median window's own interleaved pair.
    assert (row["measured_ms"], row["bert_base_measured_ms"]) == (10.0, 100.0)
    assert row["window_ratios"] == pytest.approx([0.1, 0.05, 0.12])


def _study_of(points):
    """An in-memory two-objective study holding (spec, held-out score, predicted ms) as finished trials."""
    import optuna

    study = optuna.create_study(directions=["maximize", "minimize"])
    for spec, score, predicted in points:
        study.add_trial(optuna.trial.create_trial(values=[score, predicted],
                                                  user_attrs={"spec": spec.to_dict(), "latency_ms": predicted}))
    return study


def test_verification_gathers_a_choice_where_measurement_puts_the_budget_then_rescores_it(ctx, monkeypatch):
    """A table that under-predicts by a fifth (measured = 1.2 x predicted): everything in the budget's
    last tenth as predicted breaks the budget. The next round measures where the first round's
    figures put that tenth, until CHOICE fit there; the winner is the finalist the stand-alone
    proxy scores best, not the one the supernet ranked first, and no finalist is scored twice."""
    from edgebert.search import verify as verify_mod

    ctx.limit_ms = BUDGET
    specs = [ArchSpec.uniform(layers=1 + k // 24, hidden=128, heads=4, head_size=32, inner=32 + 16 * (k % 24))
             for k in range(48)]
    predicted = {s.key(): BUDGET * (0.5 + 0.5 * k / 47) for k, s in enumerate(specs)}  # 0.5-1.0 x budget
    # The stage's (supernet's) score rises with predicted latency; the stand-alone proxy's falls.
    study = _study_of([(s, 0.5 + 0.01 * k, predicted[s.key()]) for k, s in enumerate(specs)])
    monkeypatch.setattr(verify_mod, "measure_candidates", lambda ctx, specs, **_: _Report(
        {f"candidate{i}": _Timed(1.2 * predicted[s.key()]) for i, s in enumerate(specs, start=1)}))
    result = verify_mod.verify(ctx, study)
    first, *later = result["rounds"]
    assert first and not any(c["fits"] for c in first)
    assert later and all(0.92 / 1.2 * BUDGET - 1e-9 <= c["predicted_ms"] <= 0.98 / 1.2 * BUDGET + 1e-9
                         for c in later[0])
    everything = verify_mod.measured_in([result])
    full = verify_mod.finalists(everything, ctx.cfg.min_budget_use)
    assert len(full) >= verify_mod.CHOICE and all(0.9 <= c["budget_use"] <= 1.0 for c in full)
    calls = []
    monkeypatch.setattr(ctx, "proxy_score", lambda spec: calls.append(spec.key()) or 1.0 - predicted[spec.key()] / 10)
    scores = {}
    verify_mod.rescore(ctx, everything, scores)
    winner = verify_mod.choose(everything, ctx.cfg.min_budget_use)
    assert winner is min(full, key=lambda c: c["predicted_ms"])  # the stand-alone proxy's best, the supernet's last
    assert winner is not max(full, key=lambda c: c["stage_score"])
    assert sorted(calls) == sorted(scores) == sorted(ArchSpec.from_dict(c["spec"]).key() for c in full)
    verify_mod.rescore(ctx, everything, scores)  # resumed: nothing scored again, stage scores kept
    assert len(calls) == len(full) and verify_mod.choose(everything, ctx.cfg.min_budget_use) is winner


def test_choose_prefers_fitting_candidates_that_use_the_budget():
    from edgebert.search.verify import calibration, choose, spread

    c = [{"score": 0.9, "predicted_ms": 5, "budget_use": 1.05, "fits": False},
         {"score": 0.8, "predicted_ms": 4, "budget_use": 0.8, "fits": True},
         {"score": 0.7, "predicted_ms": 4.5, "budget_use": 0.95, "fits": True}]
    assert choose(c, 0.9)["score"] == 0.7
    assert choose(c[:2], 0.9)["score"] == 0.8  # nothing uses 90 %: the best that fits
    assert choose(c[:1], 0.9) is None
    # A power law measured at two sizes is recovered exactly; one size means a constant ratio.
    from edgebert.search.verify import aim

    law = [{"predicted_ms": p, "budget_use": 0.5 * (p / 4) ** 1.2} for p in (3.0, 4.0)]
    assert aim(law, 0.9) == pytest.approx((4 * (0.92 / 0.5) ** (1 / 1.2), 4 * (0.98 / 0.5) ** (1 / 1.2)))
    # A slope beyond what window-to-window noise allows is held at the bound (here 0.8, not 0.3).
    import math

    flat = [{"predicted_ms": p, "budget_use": 0.8 * (p / 4) ** 0.3} for p in (4.0, 5.0)]
    log_c = sum(math.log(x["budget_use"]) - 0.8 * math.log(x["predicted_ms"]) for x in flat) / 2
    assert aim(flat, 0.9) == pytest.approx(tuple(math.exp((math.log(u) - log_c) / 0.8) for u in (0.92, 0.98)))
    assert aim(law[1:], 0.9) == pytest.approx((4 * 0.92 / 0.5, 4 * 0.98 / 0.5))
    # One per slice of [4, 5] ms (the top scorer sits at the top edge), then the best of the rest.
    assert [x["score"] for x in spread(c, 4.0, 5.0, 2)] == [0.8, 0.9]
    # measured share / predicted share of a 5 ms budget: 1.05 / 1.0, 0.8 / 0.8, 0.95 / 0.9 -> median 1.05
    assert calibration(c, budget_ms=5.0) == pytest.approx(1.05)
    # A fitting incumbent is measured besides the slices' picks, and stays unless beaten by its margin.
    inc = {"score": 0.65, "predicted_ms": 4.2, "budget_use": 0.92, "fits": True, "incumbent": True, "margin": 0.06}
    assert [x["score"] for x in spread(c + [inc], 4.0, 5.0, 2)] == [0.65, 0.8, 0.9]
    assert choose(c + [inc], 0.9) is inc  # 0.7 - 0.65 < 0.06
    assert choose(c + [{**inc, "margin": 0.04}], 0.9)["score"] == 0.7
    assert choose(c + [{**inc, "fits": False}], 0.9)["score"] == 0.7


def test_the_quick_final_recipe_counts_steps_by_the_budgets_share_of_bert_base(tiny_config):
    """Identical steps for every student at one budget (the search's winner and the hand baseline),
    whatever the machine's load or the table's canary speed: no wall clock and no millisecond figure
    decides how long the quick recipe trains, only the budget's share of bert-base."""
    from edgebert.search.verify import QUICK_STEPS_PER_SPEEDUP, final_stages

    warmup, task_stage = final_stages(tiny_config(budget_ms=BUDGET, quick=True), 10.0)
    assert (warmup.max_steps, task_stage.max_steps) == (212, 850) and QUICK_STEPS_PER_SPEEDUP == 85.0
    assert final_stages(tiny_config(budget_ms=BUDGET, quick=True), 40.0)[1].max_steps == 3400
    # The default recipe is two epochs; the minutes are a backstop in both.
    default = final_stages(tiny_config(budget_ms=BUDGET), 10.0)
    assert [s.max_steps for s in default] == [None, None] and [s.epochs for s in default] == [2.0, 2.0]


def test_the_quick_step_count_reads_the_budget_against_bert_base_on_the_table():
    from types import SimpleNamespace

    from edgebert.latency.table import TableError
    from edgebert.search.verify import QUICK_STEPS_PER_SPEEDUP, budget_speedup

    assert budget_speedup(SimpleNamespace(bert_base_ms=140.0, budget_ms=3.5)) == 40.0

    def no_bert_base(spec):
        raise TableError("outside the grid")

    # A custom grid short of bert-base: the old 10 000 / budget ms steps.
    ctx = SimpleNamespace(bert_base_ms=None, budget_ms=4.0, latency=no_bert_base)
    assert round(QUICK_STEPS_PER_SPEEDUP * budget_speedup(ctx)) == 2500
