"""The Optuna side of the search: storage, one stage's ask/tell loop, claims, the best and the Pareto front.

    storage = storage_for(cfg)                      # journal file in --out, or --storage URL
    study = open_study(cfg, "backbone", storage)    # NSGA-II (random search: RandomSampler)
    run_trials(ctx, study, stage, ctx.proxy_score, target=12)
    best_of(study), pareto([study])

Every proposed point's latency is predicted at once: a point outside the stage's
window is told to the study with its constraint violation and never trained. A
claim file (under a lock) maps each spec to its first trial, so that no worker
evaluates an architecture twice: a repeat proposal reuses that score, or is
skipped while another worker evaluates it. progressive.py decides which stage
runs when; this module only runs one.
"""

from __future__ import annotations

import fcntl
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from edgebert.arch import ArchSpec
from edgebert.errors import EdgebertError
from edgebert.files import atomic_write_json
from edgebert.search.context import SearchConfig, SearchContext
from edgebert.search.space import Stage, check_point

MAX_ASKS_PER_TRIAL = 200  # proposals (mostly rejected as infeasible) per evaluated candidate, at most

# --- storage and studies -----------------------------------------------------------------


def storage_for(cfg: SearchConfig):
    import optuna

    if cfg.storage:
        try:
            storage = optuna.storages.RDBStorage(cfg.storage, engine_kwargs={"pool_pre_ping": True})
            storage.get_all_studies()
        except Exception as e:  # noqa: BLE001 - SQLAlchemy raises many kinds; the user needs one line
            raise EdgebertError(f"--storage {cfg.storage!r} is unreachable: {str(e).splitlines()[0]}") from None
        return storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    cfg.out_path.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(cfg.out_path / "study.journal")))


def open_study(cfg: SearchConfig, stage_name: str, storage, worker: int = 0):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = cfg.seed * 7919 + worker  # each worker its own stream: parallel workers propose different points
    if cfg.strategy == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.NSGAIISampler(population_size=max(4, cfg.trials // 2), seed=seed)
    return optuna.create_study(study_name=f"{_study_prefix(cfg)}{stage_name}", storage=storage, sampler=sampler,
                               directions=["maximize", "minimize"], load_if_exists=True)


def _study_prefix(cfg: SearchConfig) -> str:
    return f"{cfg.strategy}-s{cfg.seed}-"


# --- claims: no architecture evaluated twice ------------------------------------------------


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            claims = json.loads(path.read_text()) if path.is_file() else {}
            yield claims
            atomic_write_json(path, claims)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def claim(cfg: SearchConfig, stage: str, key: str, trial: int) -> dict | None:
    """None if this trial now owns `key`; else the earlier claim ({"trial", "values"?})."""
    with _locked(cfg.out_path / f"claims-{_study_prefix(cfg)}{stage}.json") as claims:
        if key in claims:
            return claims[key]
        claims[key] = {"trial": trial}
        return None


def settle(cfg: SearchConfig, stage: str, key: str, values: list[float] | None) -> None:
    with _locked(cfg.out_path / f"claims-{_study_prefix(cfg)}{stage}.json") as claims:
        if values is None:
            claims.pop(key, None)  # failed: let another proposal try it
        else:
            claims[key] = {**claims.get(key, {}), "values": values}


# --- one stage's trial loop --------------------------------------------------------------------


def evaluated(study) -> list:
    """Complete, feasible, trained (not reused) trials."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("violation", 0.0) <= 0 and not t.user_attrs.get("reused")]


def run_trials(ctx: SearchContext, study, stage: Stage, evaluate: Callable[[ArchSpec], float], target: int,
               *, window: tuple[float, float] | None = None, progress: bool = True) -> None:
    """Ask/tell until `target` candidates of this stage have been evaluated (by any worker).

    A point is feasible when its predicted latency lies in `window` (low, high) ms: by default
    (0, `ctx.limit_ms`), the budget in predicted ms as measurement placed it; the refit stage
    narrows it to where measurement says the budget's last tenth lies."""
    from tqdm import tqdm

    from optuna.trial import TrialState

    cfg = ctx.cfg
    low, high = window or (0.0, ctx.limit_ms)
    # A refit's window is narrow: the sampler may stop finding new points in it before the target
    # (a flaky test run once spent 801 proposals on 4). It then ends with what it has; the search goes on.
    exhaustible = stage.name.startswith("refit")
    bar = tqdm(total=target, initial=min(len(evaluated(study)), target), desc=stage.name, unit="cand",
               disable=not progress, file=sys.stderr)
    asks = 0
    while len(evaluated(study)) < target:
        asks += 1
        if asks > MAX_ASKS_PER_TRIAL * target:
            if exhaustible:
                break
            raise EdgebertError(f"{stage.name} stage: {asks} proposals found too few feasible new points "
                                f"in {low:.2f}-{high:.2f} ms; raise the budget or shrink --trials")
        trial = study.ask()
        spec = check_point(stage.suggest(trial), ctx.limits)
        latency = ctx.latency(spec)
        violation = max(latency - high, low - latency)  # > 0: outside the window, by this many ms
        trial.set_user_attr("spec", spec.to_dict())
        trial.set_user_attr("latency_ms", latency)
        trial.set_user_attr("violation", violation)
        trial.set_constraint("latency_outside_budget_ms", violation)  # NSGA-II ranks by it
        if violation > 0:  # infeasible: rejected as proposed, never trained
            study.tell(trial, [0.0, latency])
            continue
        key = spec.key()
        earlier = claim(cfg, stage.name, key, trial.number)
        if earlier is not None:
            if "values" in earlier:  # evaluated before: reuse, do not train again
                trial.set_user_attr("reused", earlier["trial"])
                study.tell(trial, earlier["values"])
            else:  # another worker is on it right now
                study.tell(trial, state=TrialState.FAIL)
            continue
        try:
            t0 = time.perf_counter()
            score = evaluate(spec)
            trial.set_user_attr("eval_s", round(time.perf_counter() - t0, 1))
        except BaseException:
            settle(cfg, stage.name, key, None)
            study.tell(trial, state=TrialState.FAIL)
            raise
        settle(cfg, stage.name, key, [score, latency])
        study.tell(trial, [score, latency])
        bar.n = min(len(evaluated(study)), target)
        bar.refresh()
    bar.close()


def best_of(study, min_latency: float = 0.0, incumbent: str | None = None,
            margin: Callable[[float], float] | None = None) -> dict:
    """The highest-scoring feasible trial (ties: the faster), preferring those above min_latency;
    the `incumbent` (a spec key: the stage before's winner) stays unless beaten by more than
    `margin(its score)`."""
    trials = [t for t in evaluated(study) + _reused(study)]
    if not trials:
        raise EdgebertError(f"study {study.study_name} has no feasible evaluated candidate")
    pool = [t for t in trials if t.user_attrs["latency_ms"] >= min_latency] or trials
    t = max(pool, key=lambda t: (t.values[0], -t.values[1]))
    kept = [i for i in pool if ArchSpec.from_dict(i.user_attrs["spec"]).key() == incumbent]
    if kept and margin is not None and t.values[0] <= kept[0].values[0] + margin(kept[0].values[0]):
        t = kept[0]
    return {"spec": t.user_attrs["spec"], "score": t.values[0], "predicted_ms": t.values[1], "trial": t.number,
            "incumbent": bool(kept) and t is kept[0]}


def _reused(study) -> list:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("reused") is not None]


def pareto(studies: list) -> list[dict]:
    """Non-dominated feasible candidates over the given studies (score up, latency down)."""
    points = {}
    for study in studies:
        for t in evaluated(study):
            key = json.dumps(t.user_attrs["spec"], sort_keys=True)
            points[key] = {"spec": t.user_attrs["spec"], "predicted_ms": t.values[1], "score": t.values[0],
                           "stage": study.study_name.rsplit("-", 1)[-1]}
    front = [p for p in points.values()
             if not any(q["score"] >= p["score"] and q["predicted_ms"] <= p["predicted_ms"] and q != p
                        and (q["score"] > p["score"] or q["predicted_ms"] < p["predicted_ms"])
                        for q in points.values())]
    return sorted(front, key=lambda p: p["predicted_ms"])


# --- after a crash ---------------------------------------------------------------------------------


def fail_stale_trials(study) -> None:
    """Trials left RUNNING by a crashed run can never finish: mark them failed (coordinator start only)."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
