"""The device-side half of edgebert's timing: run one job, print one JSON line.

    python worker.py < job.json          (or: python -m edgebert.device.worker)

This file imports only the standard library, numpy and onnxruntime, so that a
runner can copy it alone to a board or phone and run it there. It decides
nothing: session options, warm-up, run counts and seeds all arrive in the job
(made by `edgebert.device.timing`), and it answers with raw numbers.

Job kinds:
  "time"    open every workload (and the optional canary and empty model) in
            one process, then time them interleaved in round-robin rounds;
            answer raw per-run times in float ms, and how much CPU other
            processes (and the hypervisor) took meanwhile.
  "memory"  open one model, run it `runs` times; answer RSS before loading and
            the process's peak RSS (VmHWM, else ru_maxrss), in MB.

Answer: {"ok": true, ...} or {"ok": false, "error": "<one line>", "traceback": ...}.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback

import numpy as np
import onnxruntime as ort

DTYPES = {"int64": np.int64, "int32": np.int32, "float32": np.float32}
# SessionOptions fields given as enum member names, so a job stays plain JSON.
_ENUMS = {
    "execution_mode": ort.ExecutionMode,
    "graph_optimization_level": ort.GraphOptimizationLevel,
}


class JobError(Exception):
    """A bad job (missing file, wrong input names); its message is one line."""


def open_session(path: str, options: dict) -> ort.InferenceSession:
    """An InferenceSession whose options are exactly `options`.

    `options` maps SessionOptions attributes to values, except "config" (session
    config entries) and "providers". It is made by TimingPolicy.session_options().
    """
    if not os.path.isfile(path):
        raise JobError(f"ONNX file not found: {path}")
    so = ort.SessionOptions()
    for key, value in options.items():
        if key == "config":
            for entry, text in value.items():
                so.add_session_config_entry(entry, str(text))
        elif key in _ENUMS:
            setattr(so, key, getattr(_ENUMS[key], value))
        elif key != "providers":
            setattr(so, key, value)
    providers = options.get("providers", ["CPUExecutionProvider"])
    try:
        return ort.InferenceSession(path, so, providers=providers)
    except Exception as exc:  # ORT's messages are long and multi-line
        raise JobError(f"onnxruntime cannot load {path}: {_first_line(exc)}") from exc


def make_feeds(session: ort.InferenceSession, workload: dict, rng: np.random.Generator) -> dict:
    """Inputs for `session` from the workload's input specs, drawn from `rng`."""
    name = workload["name"]
    specs = {spec["name"]: spec for spec in workload["inputs"]}
    wanted = [i.name for i in session.get_inputs()]
    missing = [n for n in wanted if n not in specs]
    extra = [n for n in specs if n not in wanted]
    if missing or extra:
        raise JobError(
            f"workload {name!r}: model inputs are {wanted}, specs name {list(specs)}"
        )
    feeds = {}
    for input_name in wanted:  # the model's order, so the RNG stream is stable
        spec = specs[input_name]
        if spec.get("dtype") not in DTYPES:
            raise JobError(f"workload {name!r}: input {input_name!r} has dtype {spec.get('dtype')!r}; "
                           f"known: {', '.join(DTYPES)}")
        dtype, shape = DTYPES[spec["dtype"]], tuple(spec["shape"])
        if spec.get("fill") is not None:
            feeds[input_name] = np.full(shape, spec["fill"], dtype=dtype)
        elif dtype is np.float32:
            feeds[input_name] = rng.uniform(spec["low"], spec["high"], shape).astype(dtype)
        else:
            feeds[input_name] = rng.integers(spec["low"], spec["high"], shape, dtype=dtype)
    return feeds


def _cpu_snapshot() -> tuple[list[int], float] | None:
    """(/proc/stat's aggregate cpu jiffies, this process's CPU seconds); None without /proc."""
    try:
        with open("/proc/stat") as f:
            jiffies = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    own = os.times()
    return jiffies, own.user + own.system


def _machine_load(before, after) -> dict:
    """What else used the machine while we timed: other processes' share, and the hypervisor's.

    foreign_load: CPU used by other processes / capacity (0 = we had the machine
    to ourselves); steal: time the hypervisor gave our vCPUs to other guests.
    A slow window with a high foreign_load was contended, not slow by nature.
    """
    if before is None or after is None:
        return {"foreign_load": None, "steal": None}
    d = [a - b for a, b in zip(after[0], before[0])]
    # user nice system idle iowait irq softirq steal [guest guest_nice, already inside user/nice]
    total = sum(d[:8])
    if total <= 0:
        return {"foreign_load": None, "steal": None}
    tick = os.sysconf("SC_CLK_TCK")
    busy = (d[0] + d[1] + d[2] + d[5] + d[6]) / tick
    foreign = busy - (after[1] - before[1])
    return {"foreign_load": round(min(1.0, max(0.0, foreign * tick / total)), 4),
            "steal": round(d[7] / total, 4)}


PAIRED_CANARY = 3  # canary runs right before each burst of a workload


def _split(total: int, parts: int) -> list[int]:
    """`total` runs over `parts` rounds, as even as possible (earlier rounds get the extra)."""
    return [total // parts + (1 if r < total % parts else 0) for r in range(parts)]


def time_job(job: dict) -> dict:
    """Open every workload in this process, then time them interleaved.

    Interleaving (rather than one model after the other) is what makes two
    figures of one window comparable on a machine whose speed drifts.
    """
    entries = list(job["workloads"])
    roles = ["workload"] * len(entries)
    for role in ("canary", "empty"):
        if job.get(role):
            entries.append(job[role])
            roles.append(role)
    started = time.time()
    wall0 = time.perf_counter()
    runners = []
    for index, workload in enumerate(entries):
        session = open_session(workload["onnx_path"], job["session_options"])
        # One stream per workload, so adding a workload never changes another's inputs.
        rng = np.random.default_rng([job["seed"], index])
        runners.append((session, make_feeds(session, workload, rng)))

    # First runs allocate buffers and pre-pack weights: never timed.
    for session, feeds in runners:
        for _ in range(job["warmup"]):
            session.run(None, feeds)

    times: list[list[float]] = [[] for _ in entries]
    # With a canary, every burst of a workload's runs is preceded by PAIRED_CANARY canary
    # runs: the machine's speed right then, at the time scale of one burst (the host's
    # speed moves within a window, so one canary figure per window is too coarse).
    canary_index = roles.index("canary") if "canary" in roles else None
    bursts: list[list[list[float]]] = [[] for _ in entries]
    paired: list[list[list[float]]] = [[] for _ in entries]
    rounds = max(1, min(job["rounds"], job["runs"]))
    clock = time.perf_counter_ns
    workloads = roles.count("workload")  # the workloads come first in `entries`

    def timed(session, feeds, count: int) -> list[float]:
        out = []
        for _ in range(count):
            t0 = clock()
            session.run(None, feeds)
            out.append((clock() - t0) / 1e6)
        return out

    cpu_before = _cpu_snapshot()
    gc.disable()  # a collection inside a timed run is the harness's noise, not the model's
    try:
        last_role = None  # of the entry timed just before
        for r, count in enumerate(_split(job["runs"], rounds)):
            # Rotate the order each round so no workload always follows the same one.
            for k in range(len(entries)):
                i = (r + k) % len(entries)
                if canary_index is not None and roles[i] == "workload":
                    if last_role != "workload":
                        # Right after the canary's own burst (the empty model's, which follows it, leaves
                        # the caches alone) the canary is as warm as it gets; after a workload it is not,
                        # and one untimed run does not make up for that on every CPU (measured on an
                        # EPYC: the workload after them read 11.7 % high in canary units beside five
                        # copies of itself, raw ms 1.4 %). A run of the workload before it leaves the
                        # canary as every other workload finds it.
                        stand_in = runners[(i - 1) % workloads]
                        stand_in[0].run(None, stand_in[1])
                    # Untimed first: right after another model the canary's caches are cold, and its
                    # timed runs would then read the previous model's footprint, not the machine's
                    # speed (measured on a Xeon: the first workload, which follows only the empty model,
                    # read 5 % slow in canary units beside five copies of itself; raw ms equal).
                    runners[canary_index][0].run(None, runners[canary_index][1])
                    paired[i].append(timed(*runners[canary_index], PAIRED_CANARY))
                session, feeds = runners[i]
                session.run(None, feeds)  # untimed: refill caches after the previous model
                burst = timed(session, feeds, count)
                bursts[i].append(burst)
                times[i].extend(burst)
                last_role = roles[i]
    finally:
        gc.enable()
    load = _machine_load(cpu_before, _cpu_snapshot())

    result = {
        "times_ms": {},
        "wall_s": time.perf_counter() - wall0,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "onnxruntime": ort.__version__,
        **load,
    }
    for i, (workload, role, runs) in enumerate(zip(entries, roles, times)):
        if role == "workload":
            result["times_ms"][workload["name"]] = runs
            if canary_index is not None:
                result.setdefault("bursts_ms", {})[workload["name"]] = bursts[i]
                result.setdefault("paired_canary_ms", {})[workload["name"]] = paired[i]
        else:
            result[f"{role}_ms"] = runs
    return result


def _status_mb(field: str) -> float | None:
    """A /proc/self/status memory field (VmRSS, VmHWM) in MB; None where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**10  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _peak_rss_mb() -> tuple[float, str]:
    """This process's peak RSS in MB, and where it was read.

    VmHWM first: ru_maxrss of a freshly exec'd child also counts the *parent's*
    RSS at fork time (Linux folds the pre-exec mm's high-water mark into it), so
    a parent holding torch would inflate every model's figure. VmHWM belongs
    to the new process image only.
    """
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm, "VmHWM"
    import resource  # POSIX only; a Linux/Android device never gets here

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    return (peak / 2**20 if sys.platform == "darwin" else peak / 2**10), "ru_maxrss"


def memory_job(job: dict) -> dict:
    """Peak memory of one model: load it, run it, read the process's high-water mark."""
    workload = job["workload"]
    before = _status_mb("VmRSS")
    peak_before, source = _peak_rss_mb()
    session = open_session(workload["onnx_path"], job["session_options"])
    feeds = make_feeds(session, workload, np.random.default_rng([job["seed"], 0]))
    loaded = _status_mb("VmRSS")
    for _ in range(job["runs"]):
        session.run(None, feeds)
    peak, _ = _peak_rss_mb()
    return {
        "rss_before_mb": before,  # after importing numpy and onnxruntime
        "rss_loaded_mb": loaded,
        "peak_rss_before_mb": peak_before,
        "peak_rss_mb": peak,
        # What loading and running the model added to the bare worker.
        "model_peak_mb": peak - (before if before is not None else peak_before),
        "peak_source": source,
        "runs": job["runs"],
    }


KINDS = {"time": time_job, "memory": memory_job}


def run_job(job: dict) -> dict:
    if not isinstance(job, dict) or job.get("kind") not in KINDS:
        kind = job.get("kind") if isinstance(job, dict) else type(job).__name__
        raise JobError(f"unknown job kind {kind!r}; known: {', '.join(KINDS)}")
    try:
        return KINDS[job["kind"]](job)
    except KeyError as exc:
        raise JobError(f"{job['kind']} job lacks field {exc.args[0]!r}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def main() -> int:
    # Keep stdout for the one answer line: anything else that writes to fd 1
    # (a library's print, a native log) goes to stderr instead.
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        result = {"ok": True, **run_job(json.load(sys.stdin))}
    except JobError as exc:
        result = {"ok": False, "error": _first_line(exc), "traceback": traceback.format_exc()}
    except Exception as exc:  # a bug or a crash of ORT: still answer in one line
        result = {
            "ok": False,
            "error": f"worker failed: {type(exc).__name__}: {_first_line(exc)}",
            "traceback": traceback.format_exc(),
        }
    answer.write(json.dumps(result) + "\n")
    answer.flush()
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
