"""The progressive, latency-constrained search on Optuna, and its result.

    result = search(SearchConfig(teacher="runs/teacher-sst2", task="sst2", data="../shared/data/glue",
                                 out="runs/search-20x", speedup=20))

Stages (space.py): backbone -> structure -> dimensions. Each stage is one Optuna
study (ask/tell) in the output folder's journal file, with two objectives:
held-out score (maximise) and predicted latency (minimise); study.py runs one
stage's trials, this module decides which stage runs when and on what.

- *The budget is respected before anything trains*: a proposed point's latency
  is predicted from the device's table at once; an infeasible point is told to
  the study with its constraint violation (so the sampler learns where the
  budget lies) and never trained. The limit is the budget *as measured*: before
  the first stage a few teacher-shaped backbones near the budget are timed
  beside bert-base (`verify.calibrate_budget`), and the stages search under the
  predicted latency that measures as the whole budget.
- *Sampler*: NSGA-II (Deb et al. 2002). Every parameter is a categorical with a
  fixed list of choices (layer slots for expressions), the search is
  multi-objective (score against latency: the result is a Pareto front), and
  NSGA-II ranks feasible points above infeasible ones by the constraint each
  trial carries (`Trial.set_constraint`: predicted latency minus budget);
  TPE and GP samplers model continuous spaces and would see our categorical
  slots as unordered labels anyway. The random-search baseline uses
  RandomSampler over the joint space.
- *Warm start* (`warm_start`): the backbone stage first tries the teacher-shaped backbones
  that use the most of the budget (what a person would draw by hand) and searches only
  backbones predicted above half the budget; each later stage starts from the winner of
  the stage before, so a progressive search can only leave a point the proxy ranks lower.
- *No architecture is evaluated twice*: claims (study.py) map each spec to its
  first trial; a repeat proposal reuses that score, or is skipped while another
  worker evaluates it.
- *Resume*: rerunning the same command reopens the studies and the state file
  (`search_state.json`); finished stages are skipped, trials left running by a
  crash are marked failed. One process (the coordinator) owns every move from
  one stage to the next and the supernet's warm-up; `--workers K` starts K-1
  worker processes per stage that load the coordinator's state rather than
  racing to make it.

Then verify-and-fallback: the top candidates under the budget are *measured*
through the harness beside bert-base in three interleaved windows (with no
training running; each candidate's median window counts), round after round
until a few truly fit in the budget's last tenth; the stand-alone proxy scores
those (verify.rescore), the best wins, and it is distilled fully by the distillation engine into
`<out>/student`, ready for `edgebert export`. It starts from a fresh extraction
from the teacher, not from its slice of the supernet: on the quick 1/10 winners
the slice did no better (`python tools/winner_start_ab.py`; README, "Search").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from edgebert.arch import ArchSpec
from edgebert.errors import EdgebertError
from edgebert.files import atomic_write_json, atomic_write_text, read_json
from edgebert.search.context import SearchConfig, SearchContext, build_context, check_inputs
from edgebert.search.space import (
    SPACE_VERSION, BackboneStage, DimensionStage, JointRandomStage, Stage, StructureStage, expression_pool, user_expressions,
)
from edgebert.search.study import (
    best_of, claim, evaluated, fail_stale_trials, open_study, pareto, run_trials, settle, storage_for,
)

STATE_FILE = "search_state.json"
CONFIG_FILE = "search_config.json"
REFITS = 2  # dimension re-searches when too few measured candidates fit in the budget's last tenth
# A backbone predicted under this share of the budget wastes it: the later stages only re-shape
# its FFNs, and a few trials drawn from the whole space land mostly on tiny backbones (at 1/10,
# three of four quick backbones used under a quarter of the budget).
BACKBONE_FLOOR = 0.5
# The supernet's warm-up trains sub-networks predicted up to this multiple of the limit: the refits
# search the dimensions again on the same weights wherever measurement puts the budget, and their
# windows have reached 1.07x the limit (quick 1/10, seed 1: 11.32-12.06 ms under a limit of 11.27).
SUPERNET_HEADROOM = 1.15


# --- the winner a later stage must beat ------------------------------------------------------------


def incumbent_of(name: str, state: dict) -> str | None:
    """The spec key a stage must beat by more than the proxy's noise to move away from: the structure
    stage's is the backbone's winner (standard FFNs), the dimension stage's the structure's winner at
    its own sizes. Each later stage only re-shapes the one before's winner, and most of what it scores
    lies within the held-out set's standard error of it, so without the margin it moved on noise: at
    quick 1/10, seed 0, the dimension stage swapped the backbone design (6L h384 inner 384) for thin
    stacks (inner 96-128, stacks of 1-4) that scored 0.860 on the supernet against its 0.858 (one
    held-out example) and distilled to 85.9 %; kept (with the step-counted recipe) it reached 88.4 %."""
    before = {"structure": "backbone", "dimensions": "structure"}.get(name)
    if before is None or "spec" not in state["stages"].get(before, {}):
        return None
    return ArchSpec.from_dict(state["stages"][before]["spec"]).key()


# --- state -------------------------------------------------------------------------------------


def load_state(cfg: SearchConfig) -> dict:
    path = cfg.out_path / STATE_FILE
    if not path.is_file():
        return {"settings": cfg.key_settings(), "stages": {}}
    state = json.loads(path.read_text())
    if state.get("settings") != cfg.key_settings():
        raise EdgebertError(f"{cfg.out_path} holds a search with other settings; use another --out")
    return state


def save_state(cfg: SearchConfig, state: dict) -> None:
    atomic_write_json(cfg.out_path / STATE_FILE, state)


# --- stages ------------------------------------------------------------------------------------


def stage_for(ctx: SearchContext, name: str, state: dict) -> tuple[Stage, Callable[[ArchSpec], float], int]:
    """(the stage, its candidate scorer, how many candidates it evaluates)."""
    cfg = ctx.cfg
    if name == "random":
        return JointRandomStage(ctx.limits, structure_pool(cfg), cfg.min_layers), ctx.proxy_score, 3 * cfg.trials
    if name == "backbone":
        return ctx.backbone_stage(), ctx.proxy_score, cfg.trials
    if name == "structure":
        pool = structure_pool(cfg)
        return StructureStage(ArchSpec.from_dict(state["stages"]["backbone"]["spec"]), pool), ctx.proxy_score, cfg.trials
    if name == "dimensions" or name.startswith("refit"):
        net = load_supernet(ctx, state)
        stage = net.stage
        stage.name = name  # the refit stage keeps its own claims and study
        target = 3 * cfg.trials if name == "dimensions" else state["refits"][name]["target"]
        return stage, lambda spec: net.score(spec, ctx.heldout_enc, ctx.task.name, ctx.metric), target
    raise ValueError(name)


def load_supernet(ctx: SearchContext, state: dict):
    """The warmed-up supernet over the structure stage's winner (prepare_stage made it)."""
    from edgebert.search.supernet import Supernet

    structure = ArchSpec.from_dict(state["stages"]["structure"]["spec"])
    return Supernet.load(ctx.cfg.out_path / "supernet", DimensionStage(structure, ctx.limits), ctx.mapping(structure))


def window_of(name: str, state: dict) -> tuple[float, float] | None:
    """The predicted-latency window a stage's points must lie in (None: up to the budget)."""
    if name.startswith("refit"):
        return tuple(state["refits"][name]["window_ms"])
    window = state.get("windows", {}).get(name)
    return tuple(window) if window else None


def structure_pool(cfg: SearchConfig) -> tuple[str, ...]:
    if not cfg.space_file:
        return expression_pool()
    return load_space_file(cfg.space_file)


def load_space_file(path: str) -> tuple[str, ...]:
    p = Path(path)
    if not p.is_file():
        raise EdgebertError(f"space file not found: {p}")
    d = read_json(p, "space file JSON")
    if not isinstance(d, dict) or not isinstance(d.get("expressions"), list):
        raise EdgebertError(f"{p}: a space file is {{\"expressions\": [\"W2(gelu(W1(x)))\", ...]}}")
    return user_expressions(d["expressions"])

def prepare_stage(ctx: SearchContext, name: str, state: dict, *, progress: bool) -> None:
    """Coordinator-only work before a stage's trials: the backbone's window, the supernet and its warm-up."""
    if name == "backbone" and "backbone" not in state.setdefault("windows", {}):
        window = (BACKBONE_FLOOR * ctx.limit_ms, ctx.limit_ms)
        room = window_capacity(ctx, ctx.backbone_stage(), window, seed=ctx.cfg.seed)
        # A budget near the cheapest corner may leave too few backbones above the floor to search.
        state["windows"]["backbone"] = list(window) if room >= 2 * ctx.cfg.trials else None
        save_state(ctx.cfg, state)
    if name != "dimensions" or state["stages"].get("supernet", {}).get("done"):
        return
    from edgebert.search.supernet import SUPERNET_VERSION, Supernet

    structure = ArchSpec.from_dict(state["stages"]["structure"]["spec"])
    stage = DimensionStage(structure, ctx.limits)
    net = Supernet.build(ctx.teacher.model, stage, ctx.mapping(structure), ctx.order, seed=ctx.cfg.seed)
    bound = SUPERNET_HEADROOM * ctx.limit_ms
    report = net.warm_up(ctx.train_enc, ctx.teacher_train, steps=ctx.cfg.supernet_steps, seed=ctx.cfg.seed,
                         cost=ctx.latency, bound=bound, progress=progress)
    net.save(ctx.cfg.out_path / "supernet")
    state["stages"]["supernet"] = {"done": True, "version": SUPERNET_VERSION, "bound_ms": bound,
                                   "largest": stage.largest().to_dict(), **report}
    save_state(ctx.cfg, state)


def stage_names(cfg: SearchConfig) -> list[str]:
    return ["random"] if cfg.strategy == "random" else ["backbone", "structure", "dimensions"]


def run_stage(ctx: SearchContext, name: str, state: dict, storage, *, progress: bool) -> Any:
    """Coordinator: prepare, start workers, run trials, wait, record the stage's best."""
    cfg = ctx.cfg
    study = open_study(cfg, name, storage)
    if state["stages"].get(name, {}).get("done"):
        return study
    fail_stale_trials(study)
    prepare_stage(ctx, name, state, progress=progress)
    stage, evaluate, target = stage_for(ctx, name, state)
    if not study.get_trials(deepcopy=False) and cfg.strategy == "progressive":
        warm_start(ctx, study, stage, state, window_of(name, state))
    workers = [_start_worker(cfg, name, k) for k in range(1, cfg.workers)]
    try:
        run_trials(ctx, study, stage, evaluate, target, window=window_of(name, state), progress=progress)
    finally:
        for w in workers:
            w.wait()
    bad = [w.returncode for w in workers if w.returncode]
    if bad:
        raise EdgebertError(f"{len(bad)} search worker(s) failed in the {name} stage (exit {bad[0]}); rerun to resume")
    floor = cfg.min_budget_use * ctx.limit_ms if name in ("dimensions", "random") else 0.0
    if name.startswith("refit"):
        floor = state["refits"][name]["window_ms"][0]
        if not evaluated(study):  # an exhausted refit that found nothing new
            state["stages"][name] = {"done": True, "evaluated": 0}
            save_state(cfg, state)
            return study
    state["stages"][name] = {"done": True, **best_of(study, floor, incumbent_of(name, state), ctx.margin)}
    save_state(cfg, state)
    return study


def warm_start(ctx: SearchContext, study, stage: Stage, state: dict, window: tuple[float, float] | None) -> None:
    """Start a fresh stage from what a person would try first, and never lose the stage before's best.

    - backbone: the teacher-shaped backbones (attention as wide as hidden, FFN at least as wide)
      that use the most of the budget, one per layer count, best first, filling half the trials;
      the sampler explores the rest. A hand-designed student is one of these, so a search that
      starts here has to lose to it on the proxy to pick something worse.
    - structure: the backbone's winner (the standard FFN in every layer) enters as a finished
      trial with the score it already has; a new expression must beat it on the same proxy.
    - dimensions: the structure's winner at its own sizes is the first point the supernet scores.
    Refit stages start cold: their window is narrow and their sampler should spread over it."""
    low, high = window or (0.0, ctx.limit_ms)
    if isinstance(stage, BackboneStage):
        best_per_depth: dict[int, tuple[float, dict]] = {}
        for params in stage.teacher_shaped():
            latency = ctx.latency(stage.to_spec(params))
            if low <= latency <= high and latency > best_per_depth.get(params["layers"], (-1.0, {}))[0]:
                best_per_depth[params["layers"]] = (latency, params)
        ranked = sorted(best_per_depth.values(), key=lambda lp: -lp[0])
        for _, params in ranked[: (ctx.cfg.trials + 1) // 2]:
            study.enqueue_trial(params)
    elif isinstance(stage, StructureStage):
        incumbent = state["stages"]["backbone"]
        params = {f"ffn_{i}": l.ffn for i, l in enumerate(stage.backbone.layers)}
        if all(p in stage.pool for p in params.values()):
            carry(ctx.cfg, study, stage, params, incumbent, origin="backbone")
    elif isinstance(stage, DimensionStage) and not stage.name.startswith("refit"):
        params = {}
        for i, l in enumerate(stage.structure.layers):
            params[f"inner_{i}"], params[f"stack_{i}"] = l.inner, l.stack
        choices = stage.choices()
        if all(v in choices[k] for k, v in params.items()):
            study.enqueue_trial(params)


def carry(cfg: SearchConfig, study, stage: Stage, params: dict[str, Any], incumbent: dict, *, origin: str) -> None:
    """Add the stage before's winner to this study as a finished, already-scored trial (not retrained;
    `evaluated` does not count it, `best_of` may still return it, a repeat proposal reuses its score)."""
    import optuna

    values = [incumbent["score"], incumbent["predicted_ms"]]
    key = ArchSpec.from_dict(incumbent["spec"]).key()
    if claim(cfg, stage.name, key, -1) is None:
        settle(cfg, stage.name, key, values)
    distributions = {k: optuna.distributions.CategoricalDistribution(v) for k, v in stage.choices().items()}
    study.add_trial(optuna.trial.create_trial(
        params=params, distributions=distributions, values=values,
        user_attrs={"spec": incumbent["spec"], "latency_ms": incumbent["predicted_ms"], "violation": 0.0,
                    "reused": f"{origin} trial {incumbent['trial']}"},
        constraints={"latency_outside_budget_ms": 0.0}))


def use_calibration(ctx: SearchContext, state: dict) -> None:
    """Search under the predicted latency measurement says uses the whole budget (verify.calibrate_budget)."""
    ctx.limit_ms = state.get("calibration", {}).get("limit_ms", ctx.budget_ms)


def _start_worker(cfg: SearchConfig, stage: str, index: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgebert.search.worker", str(cfg.out_path / CONFIG_FILE), stage,
                             str(index)], stdout=subprocess.DEVNULL)


def worker_main(config_path: str, stage_name: str, index: int) -> int:
    """A worker process: the same context, the coordinator's state, trials on the shared study."""
    cfg = SearchConfig.from_saved(json.loads(Path(config_path).read_text()))
    _share_threads(cfg)
    ctx = build_context(cfg, progress=False)
    state = load_state(cfg)
    use_calibration(ctx, state)
    storage = storage_for(cfg)
    study = open_study(cfg, stage_name, storage, worker=index)
    stage, evaluate, target = stage_for(ctx, stage_name, state)
    run_trials(ctx, study, stage, evaluate, target, window=window_of(stage_name, state), progress=False)
    return 0


def _share_threads(cfg: SearchConfig) -> None:
    """K training processes on one machine: each gets its share of the cores."""
    import torch

    if cfg.workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.workers))


# --- the whole search ----------------------------------------------------------------------------


def search(cfg: SearchConfig, *, progress: bool = True, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = say or (lambda m: None)
    t0 = time.perf_counter()
    if cfg.strategy not in ("progressive", "random"):
        raise EdgebertError(f"unknown strategy {cfg.strategy!r}; use progressive or random")
    if cfg.workers < 1 or cfg.trials < 1:
        raise EdgebertError("--workers and --trials must be at least 1")
    if not 0 < cfg.min_budget_use <= 0.95:  # the refit aims two points inside [min_use, 1]
        raise EdgebertError(f"min_budget_use must lie in (0, 0.95], not {cfg.min_budget_use}")
    if cfg.space_file:
        load_space_file(cfg.space_file)  # bad input fails before any work
    inputs = check_inputs(cfg)
    storage = storage_for(cfg)
    cfg.out_path.mkdir(parents=True, exist_ok=True)
    state = load_state(cfg)
    atomic_write_text(cfg.out_path / CONFIG_FILE, cfg.to_json())
    _share_threads(cfg)
    say("preparing the teacher, the data and their caches")
    with timed(cfg, state, "context"):
        ctx = build_context(cfg, progress=progress, inputs=inputs)
    state["budget_ms"], state["bert_base_predicted_ms"] = ctx.budget_ms, ctx.bert_base_ms
    save_state(cfg, state)
    bert = f" (bert-base predicted {ctx.bert_base_ms:.1f} ms)" if ctx.bert_base_ms else ""
    say(f"budget {ctx.budget_ms:.2f} ms on {ctx.table.name}{bert}")
    if "calibration" not in state and not state["stages"]:  # before anything trains (older runs: none)
        from edgebert.search.verify import calibrate_budget

        say("measuring teacher-shaped backbones near the budget beside bert-base (where does the budget lie?)")
        with timed(cfg, state, "calibration"):
            state["calibration"] = calibrate_budget(ctx)
        save_state(cfg, state)
    use_calibration(ctx, state)
    say(f"searching under {ctx.limit_ms:.2f} ms predicted (measurement puts the budget there)")
    studies = []
    for name in stage_names(cfg):
        with timed(cfg, state, name):
            studies.append(run_stage(ctx, name, state, storage, progress=progress))
        say(f"{name}: best {ArchSpec.from_dict(state['stages'][name]['spec']).summary()} "
            f"score {state['stages'][name]['score']:.4f} at {state['stages'][name]['predicted_ms']:.2f} ms predicted")
    front = pareto(studies[-1:])
    atomic_write_json(cfg.out_path / "pareto.json", front)
    _plot_pareto(front, studies[-1], ctx, cfg.out_path / "pareto.png")

    if not state.get("verify"):
        with timed(cfg, state, "verify"):
            state["verify"] = verify_and_refit(ctx, studies[-1], state, storage, progress=progress, say=say)
        save_state(cfg, state)
    best = state["verify"]["winner"]
    winner_key = ArchSpec.from_dict(best["spec"]).key()
    distilled = distilled_key(cfg)
    if (distilled is not None or state.get("final")) and distilled != winner_key:
        # Verified again (tools/search_bench.py --reverify) and another candidate won: the student, distilled
        # or interrupted half-way, is another's (or nobody can say whose: best_spec.json is gone).
        say("the winner changed since the last distillation: distilling the new one")
        from edgebert.distill.run import checkpoint_dir

        for folder in (cfg.out_path / "student", checkpoint_dir(cfg.out_path / "student")):
            shutil.rmtree(folder, ignore_errors=True)
        state.pop("final", None)
        state.get("phase_seconds", {}).pop("final", None)
    if not state.get("final"):
        from edgebert.search.verify import final_distill

        say(f"distilling the winner {ArchSpec.from_dict(best['spec']).summary()} fully")
        with timed(cfg, state, "final"):
            state["final"] = final_distill(ctx, best, progress=progress)
        save_state(cfg, state)
    trials = sum(len(s.get_trials(deepcopy=False)) for s in studies)
    from edgebert.search.verify import VERIFY_VERSION

    return {
        "out": str(cfg.out_path),
        "budget_ms": ctx.budget_ms,
        "limit_ms": ctx.limit_ms,
        "calibration": state.get("calibration"),
        "strategy": cfg.strategy,
        "space_version": SPACE_VERSION,
        "min_layers": cfg.min_layers,
        "verify_version": VERIFY_VERSION,
        "best": {**best, "dev": state["final"]["dev"], "student": state["final"]["out"],
                 "final_stages": state["final"].get("stages"),
                 "held_out_score": best.get("score"), "spec_summary": ArchSpec.from_dict(best["spec"]).summary()},
        "pareto": front,
        "trials": trials,
        "evaluated": sum(len(evaluated(s)) for s in studies),
        "stages": {k: {kk: vv for kk, vv in v.items() if kk not in ("largest", "top")} for k, v in state["stages"].items()},
        "table": str(ctx.table.path),
        "seconds": round(time.perf_counter() - t0, 1),
        "phase_seconds": state.get("phase_seconds", {}),
    }


def distilled_key(cfg: SearchConfig) -> str | None:
    """The spec key of the student the final phase distilled or began to (best_spec.json, written before it
    starts), None before any."""
    path = cfg.out_path / "best_spec.json"
    return ArchSpec.from_json(path.read_text()).key() if path.is_file() else None


@contextmanager
def timed(cfg: SearchConfig, state: dict, phase: str):
    """Adds a phase's wall time to state["phase_seconds"] (summed over the runs that resumed it), so that
    a record says where a search spent its minutes: context, calibration, each stage (dimensions with
    its supernet warm-up, refits under verify), verify, final."""
    t0 = time.perf_counter()
    yield
    seconds = state.setdefault("phase_seconds", {})
    seconds[phase] = round(seconds.get(phase, 0.0) + time.perf_counter() - t0, 1)
    save_state(cfg, state)


def verify_and_refit(ctx: SearchContext, study, state: dict, storage, *, progress: bool,
                     say: Callable[[str], None]) -> dict:
    """Measure the top candidates; while fewer than verify.CHOICE of them fit in the budget's last
    tenth (the best that fits leaves more than a tenth unused, or the pool held too few there),
    search the dimensions again in the window the latest measurements point to (at most REFITS
    times), and measure those; the stand-alone proxy then scores the finalists."""
    from edgebert.search.verify import CHOICE, aim, choose, choice_size, measured_in, merge, rescore, verify

    cfg = ctx.cfg
    if not state.get("verify_first"):
        say("measuring the top candidates beside bert-base (three interleaved windows)")
        first = verify(ctx, study, incumbent=incumbent_of("dimensions", state))  # random search: none
        state["verify_first"] = first
        save_state(cfg, state)
    passes = [state["verify_first"]]
    state.setdefault("refits", {})
    for attempt in range(1, REFITS + 1):
        everything = measured_in(passes)
        found = choice_size(everything, cfg.min_budget_use)
        if cfg.strategy != "progressive" or found >= CHOICE:
            break  # random search has no structure to refit: it keeps what its trials found
        structure = ArchSpec.from_dict(state["stages"]["structure"]["spec"])
        name = f"refit{attempt}"
        k = passes[-1]["calibration"]  # the latest window's measured/predicted share (reported)
        if k is None:  # the last refit measured nothing
            break
        window = state["refits"].get(name, {}).get("window_ms") or aim(everything, cfg.min_budget_use)
        room = window_capacity(ctx, DimensionStage(structure, ctx.limits), window, seed=cfg.seed + attempt)
        best = choose(everything, cfg.min_budget_use)
        use = f"the best fitting using {best['budget_use']:.0%}" if best else "none fitting"
        say(f"{found} of {CHOICE} wanted fit in the budget's last tenth, {use} (measured/predicted {k:.3f}); "
            f"{name}: the dimensions in {window[0]:.2f}-{window[1]:.2f} ms predicted ({room} points there)")
        if not room:
            state["refits"][name] = {"calibration": k, "window_ms": list(window), "target": 0}
            save_state(cfg, state)
            break
        # Half the points the window holds at most: NSGA-II should not have to hunt down the last few.
        state["refits"][name] = {**state["refits"].get(name, {}), "calibration": k, "window_ms": list(window),
                                 "target": max(1, min(2 * cfg.trials, room // 2))}
        save_state(cfg, state)
        if "verified" not in state["refits"][name]:
            refit = run_stage(ctx, name, state, storage, progress=progress)
            state["refits"][name]["verified"] = (verify(ctx, refit, window=window, max_rounds=1) if evaluated(refit)
                                                 else {"winner": None, "rounds": [], "calibration": None})
            save_state(cfg, state)
        passes.append(state["refits"][name]["verified"])
    if cfg.strategy == "progressive":  # random search's candidates carry the stand-alone proxy's scores already
        say("scoring the fitting candidates by the stand-alone proxy (the supernet's score only ranked them)")
        rescore(ctx, measured_in(passes), state.setdefault("rescored", {}), save=lambda: save_state(cfg, state))
    result = merge(passes, cfg.min_budget_use)
    if result["winner"] is None:
        raise EdgebertError(f"no candidate measured within the budget ({len(measured_in(passes))} measured, "
                            f"{len(passes) - 1} refits); re-profile the latency table (the machine may differ from it)")
    return result


def window_capacity(ctx: SearchContext, stage: Stage, window: tuple[float, float], *, seed: int,
                    samples: int = 2000) -> int:
    """How many distinct points of `stage` a random sample finds with predicted latency in `window`."""
    import random

    rng, found = random.Random(seed), set()
    for _ in range(samples):
        _, spec = stage.sample(rng)
        if window[0] <= ctx.latency(spec) <= window[1]:
            found.add(spec.key())
    return len(found)


def _plot_pareto(front: list[dict], study, ctx: SearchContext, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    allp = [(t.values[1], t.values[0]) for t in evaluated(study)]
    fig, ax = plt.subplots(figsize=(6, 4))
    if allp:
        ax.scatter(*zip(*allp), s=12, c="0.6", label="candidates")
    if front:
        ax.plot([p["predicted_ms"] for p in front], [p["score"] for p in front], "o-", c="C0", label="Pareto front")
    ax.axvline(ctx.limit_ms, c="C3", ls="--",
               label=f"budget {ctx.budget_ms:.1f} ms (measured: {ctx.limit_ms:.1f} ms predicted)")
    ax.set(xlabel="predicted latency (ms)", ylabel=f"held-out {ctx.metric}", title="edgebert search")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["SearchConfig", "search", "worker_main"]
