"""The one timing harness: every latency figure in edgebert comes from `measure`.

    report = measure([Workload(name="tiny", onnx_path="tiny.onnx",
                               inputs=[InputSpec(name="input_ids", shape=[1, 128], high=30522)])],
                     policy=TimingPolicy(runs=50))
    report["tiny"].median_ms, report["tiny"].normalised, report.canary_median_ms

How, and why:
  - Each window is one fresh worker subprocess (see runners.py) holding every
    workload's session plus a canary and an empty model. They run interleaved
    in round-robin rounds (untimed warm run, then timed runs, order rotated
    each round), because this machine's speed drifts by up to 2x within a
    minute: only figures from one window, or canary-normalised ones, compare.
  - `normalised` = workload median / canary median of the same window. With
    `windows` > 1 each window is a separate subprocess and the report gives
    per-window values and their median.
  - The empty model's median is the fixed per-run overhead (ORT dispatch plus
    the Python binding), for callers that price parts of a model.
  - Session options come from `TimingPolicy.session_options()` and nowhere else;
    the report records them, the policy, and the target's fingerprint.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgebert.device import canary, stats, worker
from edgebert.device.fingerprint import usable_cores
from edgebert.device.runners import Runner, get_runner
from edgebert.device.spinning import DEFAULT as DEFAULT_SPINNING
from edgebert.device.spinning import config_entries
from edgebert.errors import EdgebertError

GRAPH_OPTIMIZATION = {
    "disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT", "all": "ORT_ENABLE_ALL",
}


@dataclass
class InputSpec:
    """One model input: a fixed shape, filled with `fill` or drawn uniformly from [low, high)."""

    name: str
    shape: list[int]
    dtype: str = "int64"  # int64 | int32 | float32
    low: float = 0
    high: float = 100
    fill: float | None = None

    def __post_init__(self):
        self.shape = [int(d) for d in self.shape]
        if self.dtype not in worker.DTYPES:
            raise EdgebertError(f"input {self.name!r}: dtype {self.dtype!r} unknown; use one of {', '.join(worker.DTYPES)}")
        if not self.shape or any(d < 1 for d in self.shape):
            raise EdgebertError(f"input {self.name!r}: shape {self.shape} must be non-empty positive integers")
        if self.fill is None and not self.low < self.high:
            raise EdgebertError(f"input {self.name!r}: low {self.low} must be below high {self.high}")


@dataclass
class Workload:
    """A named ONNX file and how to feed it."""

    name: str
    onnx_path: str | Path
    inputs: list[InputSpec]

    def to_job(self) -> dict:
        return {"name": self.name, "onnx_path": os.fspath(self.onnx_path),
                "inputs": [asdict(spec) for spec in self.inputs]}


def default_threads() -> int:
    """Physical cores this process may use: ORT's own default, minus hyper-threads."""
    import psutil

    return max(1, min(psutil.cpu_count(logical=False) or 1, usable_cores()))


@dataclass
class TimingPolicy:
    """How to time: threads, thread spinning, warm-up and repeats. Recorded with every figure.

    Spinning policy, default "off" (`session.intra_op.allow_spinning=0`, inter
    too), chosen by `tools/spinning_policy.py` (numbers and reasoning in
    `tools/spinning_policy.md`): BERT-base and tinybert-4 timed interleaved
    (as here, beside canary and empty model) and each alone in a process of
    its own, under each policy, 16 rounds, medians of per-round deviations.
    ORT's default "on" is the only policy that inflates interleaved figures
    (tinybert-4 +19% when sessions alternate every run): after Run() returns
    an idle session's pool keeps spinning, burning ~26 ms of CPU in the next
    100 ms, a core taken from whichever session runs next; "off" and "stop"
    burn none. Their worst deviations (14.9 +- 6.7% "off", 9.5 +- 3.6% "stop")
    tie within noise; the tie went to the smaller empty-run overhead (24.0 vs
    26.3 us). "off" also kept figures 2-3x steadier while other processes
    took half the CPU (round-to-round spread of canary-normalised medians
    0.16-0.22 vs 0.42-0.46) and kept the BERT-base/tinybert-4 ratio near
    its quiet-machine value (16.4 interleaved, 14.8 alone; ~15 quiet), where
    spinning squeezed it to ~11. Its price: every parallel op wakes the pool,
    so small models read slower than under ORT's defaults on an idle machine.

    `warmup` untimed runs per workload precede the `runs` timed ones, which
    are spread over `rounds` round-robin rounds; `windows` repeats the whole
    thing in fresh subprocesses. `seed` fixes every generated input.
    """

    threads: int = field(default_factory=default_threads)
    spinning: str = DEFAULT_SPINNING
    warmup: int = 5
    runs: int = 30
    rounds: int = 5
    windows: int = 1
    seed: int = 0
    graph_optimization: str = "all"  # ORT's session-level optimizer; see GRAPH_OPTIMIZATION

    def __post_init__(self):
        config_entries(self.spinning)  # validates the name
        if self.graph_optimization not in GRAPH_OPTIMIZATION:
            raise EdgebertError(f"graph_optimization {self.graph_optimization!r} unknown; "
                                f"use one of {', '.join(GRAPH_OPTIMIZATION)}")
        for name, least in (("threads", 1), ("warmup", 0), ("runs", 1), ("rounds", 1), ("windows", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise EdgebertError(f"TimingPolicy.{name} must be an integer >= {least}, got {value!r}")

    def session_options(self) -> dict:
        """Every ORT session option and config entry this policy sets: the only place they are decided."""
        return {
            "intra_op_num_threads": self.threads,
            # One graph branch at a time: BERT graphs are a chain, and a second
            # pool would only compete with the intra-op one for the cores.
            "inter_op_num_threads": 1,
            "execution_mode": "ORT_SEQUENTIAL",
            "graph_optimization_level": GRAPH_OPTIMIZATION[self.graph_optimization],
            "log_severity_level": 3,  # errors only: warnings would flood a profiler's stderr
            "providers": ["CPUExecutionProvider"],
            "config": config_entries(self.spinning),
        }

    def to_dict(self) -> dict:
        return asdict(self)


def make_session(path: str | Path, policy: TimingPolicy):
    """An onnxruntime InferenceSession with the policy's options (for code that must hold one)."""
    try:
        return worker.open_session(os.fspath(path), policy.session_options())
    except worker.JobError as exc:
        raise EdgebertError(str(exc)) from None


@dataclass
class WorkloadTiming:
    """One workload's figures; ms statistics pool the runs of every window."""

    name: str
    onnx_path: str
    runs: int
    median_ms: float
    p90_ms: float
    p99_ms: float | None  # only with >= 200 runs
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    spread: float  # (p90 - p10) / median
    normalised: float | None  # median over windows of (median / canary median); None without canary
    window_median_ms: list[float]
    window_normalised: list[float | None]
    nominal_ms: float | None  # normalised x nominal canary time, when that was given
    times_ms: list[list[float]]  # raw run times, one list per window


@dataclass
class Window:
    """One worker subprocess: its canary, its empty-run overhead, when and how long."""

    index: int
    timestamp: str
    wall_s: float
    canary_median_ms: float | None
    empty_median_ms: float | None  # fixed cost of one session.run
    speed_factor: float | None  # nominal canary ms / this window's canary ms (1 = nominal speed)
    foreign_load: float | None  # share of the machine's CPU other processes used meanwhile (Linux)
    steal: float | None  # share the hypervisor gave to other guests (VMs)
    canary_times_ms: list[float]
    empty_times_ms: list[float]


@dataclass
class TimingReport:
    """What `measure` answers: per-workload figures, per-window references, and how it was measured."""

    workloads: dict[str, WorkloadTiming]
    windows: list[Window]
    policy: dict
    session_options: dict
    fingerprint: dict
    runner: str
    canary: str | None  # which canary (name and version) the normalised values refer to
    nominal_canary_ms: float | None

    def __getitem__(self, name: str) -> WorkloadTiming:
        return self.workloads[name]

    @property
    def canary_median_ms(self) -> float | None:
        values = [w.canary_median_ms for w in self.windows if w.canary_median_ms is not None]
        return stats.median(values) if values else None

    @property
    def overhead_ms(self) -> float | None:
        values = [w.empty_median_ms for w in self.windows if w.empty_median_ms is not None]
        return stats.median(values) if values else None

    @property
    def foreign_load(self) -> float | None:
        """The worst window's share of CPU used by other processes: re-measure when it is high."""
        values = [w.foreign_load for w in self.windows if w.foreign_load is not None]
        return max(values) if values else None

    @property
    def speed_factor(self) -> float | None:
        """nominal canary ms / measured canary ms: 0.5 means the machine ran at half its nominal speed."""
        if self.nominal_canary_ms is None or not self.canary_median_ms:
            return None
        return self.nominal_canary_ms / self.canary_median_ms

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(canary_median_ms=self.canary_median_ms, overhead_ms=self.overhead_ms,
                   speed_factor=self.speed_factor, foreign_load=self.foreign_load)
        return out


def _time_job(workloads: list[Workload], policy: TimingPolicy, references: bool) -> dict:
    spec = {key: getattr(policy, key) for key in ("warmup", "runs", "rounds", "seed")}
    job = {"kind": "time", "session_options": policy.session_options(), **spec,
           "workloads": [w.to_job() for w in workloads]}
    if references:
        job["canary"] = {"name": canary.CANARY_NAME, "onnx_path": str(canary.canary_path()),
                         "inputs": canary.CANARY_INPUTS}
        job["empty"] = {"name": canary.EMPTY_NAME, "onnx_path": str(canary.empty_path()),
                        "inputs": canary.EMPTY_INPUTS}
    return job


def _check(workloads: list[Workload]) -> None:
    if not workloads:
        raise EdgebertError("nothing to time: give at least one Workload")
    names = [w.name for w in workloads]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EdgebertError(f"workload names must be unique; repeated: {', '.join(duplicates)}")


def _median_or_none(times: list[float]) -> float | None:
    return stats.median(times) if times else None


def _paired_ratio(answer: dict, name: str) -> float | None:
    """A window's canary-normalised value: the median over bursts of (burst median / the
    median of the canary runs just before that burst)."""
    bursts = answer.get("bursts_ms", {}).get(name)
    paired = answer.get("paired_canary_ms", {}).get(name)
    if not bursts or not paired:
        return None
    return stats.median([stats.median(b) / stats.median(c) for b, c in zip(bursts, paired) if b and c])


def measure(
    workloads: list[Workload],
    *,
    runner: Runner | None = None,
    policy: TimingPolicy | None = None,
    precision: str = "fp32",
    nominal_canary_ms: float | None = None,
    references: bool = True,
) -> TimingReport:
    """Time `workloads` interleaved in `policy.windows` windows on `runner` (default: local).

    `precision` only labels the fingerprint (the ONNX files decide what runs).
    `references=False` drops the canary and the empty model; it exists to take
    ground-truth "model alone" figures (tools/spinning_policy.py) and leaves
    every normalised value None.
    """
    _check(workloads)
    runner = runner or get_runner("local")
    policy = policy or TimingPolicy()
    job = _time_job(workloads, policy, references)
    device = runner.fingerprint(policy.threads, precision, spinning=policy.spinning)

    windows, per_workload = [], {w.name: [] for w in workloads}
    paired_norm: dict[str, list[float | None]] = {w.name: [] for w in workloads}
    for index in range(policy.windows):
        answer = runner.run(job)
        canary_ms, empty_ms = answer.get("canary_ms", []), answer.get("empty_ms", [])
        canary_median = _median_or_none(canary_ms)
        speed = nominal_canary_ms / canary_median if nominal_canary_ms and canary_median else None
        windows.append(Window(index, answer["timestamp"], answer["wall_s"], canary_median,
                              _median_or_none(empty_ms), speed, answer.get("foreign_load"),
                              answer.get("steal"), canary_ms, empty_ms))
        for name, times in answer["times_ms"].items():
            per_workload[name].append(times)
            paired_norm[name].append(_paired_ratio(answer, name))

    timings = {}
    for w in workloads:
        runs = per_workload[w.name]
        window_medians = [stats.median(t) for t in runs]
        window_norm = [p if p is not None else (m / win.canary_median_ms if win.canary_median_ms else None)
                       for m, win, p in zip(window_medians, windows, paired_norm[w.name])]
        known = [v for v in window_norm if v is not None]
        normalised = stats.median(known) if known else None
        summary = stats.summarize([t for window in runs for t in window])
        timings[w.name] = WorkloadTiming(
            name=w.name, onnx_path=os.fspath(w.onnx_path), **summary,
            normalised=normalised, window_median_ms=window_medians, window_normalised=window_norm,
            nominal_ms=normalised * nominal_canary_ms if normalised and nominal_canary_ms else None,
            times_ms=runs,
        )
    return TimingReport(
        workloads=timings, windows=windows, policy=policy.to_dict(),
        session_options=job["session_options"], fingerprint=device, runner=runner.name,
        canary=canary.CANARY_NAME if references else None, nominal_canary_ms=nominal_canary_ms,
    )


def measure_memory(workload: Workload, *, runner: Runner | None = None,
                   policy: TimingPolicy | None = None, runs: int = 10) -> dict:
    """Peak memory of one model, in a subprocess of its own (call once per model).

    Answers rss_before_mb (after importing ORT, before loading), rss_loaded_mb,
    peak_rss_mb (ru_maxrss after `runs` runs) and model_peak_mb (peak - before).
    """
    if runs < 1:
        raise EdgebertError(f"runs must be >= 1, got {runs}")
    runner = runner or get_runner("local")
    policy = policy or TimingPolicy()
    job = {"kind": "memory", "session_options": policy.session_options(), "seed": policy.seed,
           "runs": runs, "workload": workload.to_job()}
    answer = runner.run(job)
    answer["session_options"] = job["session_options"]
    return answer
