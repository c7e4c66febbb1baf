"""Profile a device into a latency table: time every micro-model of a grid through the one harness.

    result = profile(threads=2, seq_lens=(128,), precision="fp32", grid="default", out=path)

What happens, in order (each step recorded in the table, which is written
atomically after every timing window to `<out>.partial`, so `--resume` after a
crash, even `kill -9`, continues where it stopped and measures nothing twice):

1. the graph-optimization decision: bert-base exported with and without ORT's
   offline transformer fusion, timed interleaved in five windows (the quick grid: a
   6-layer model of the same operations, three windows); fusion must
   win by 3 % in the median window, and every micro-model is exported the same way;
2. the grid's micro-models (latency/micro.py), a few dozen per window, each
   window a fresh worker subprocess with its own canary; an entry's cost is its
   canary-normalised marginal cost; a window whose canary shows the machine
   running far below the first window's speed, or whose entries spread wider
   than the machine's usual, is measured again (never because of a prediction);
3. calibration: up to five whole zoo models, measured in five windows spread
   between the entry passes, and a one-parameter fit (predicted = a * sum of units);
4. the table moves from `<out>.partial` to `<out>`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from edgebert import mlp, zoo
from edgebert.arch import SPACE
from edgebert.device import stats
from edgebert.device.canary import CANARY_NAME, cache_dir
from edgebert.device.fingerprint import machine_identity
from edgebert.device.runners import get_runner
from edgebert.device.timing import TimingPolicy, Workload, measure
from edgebert.errors import EdgebertError
from edgebert.export import EXPORT_MODE, GRAPH_OPTIMIZATIONS, OPSET, cached_export, model_inputs
from edgebert.files import atomic_write_json, prune_cache, read_json, touch
from edgebert.latency.micro import export_micro, export_passthrough
from edgebert.latency.units import NO_ACTIVATION, STACK_PROBE, UNITS, op_variants
from edgebert.latency.predictor import calibrate
from edgebert.latency.table import SCHEMA_VERSION, LatencyTable

PRECISIONS = ("fp32", "int8")
MICRO_VERSION = 2  # bump when a micro-model's graph changes: exported files are cached by it
# Re-measure a window when its canary ran this much slower than the first window's,
# or when its entries' median (p90 - p10) / median exceeds MAX_SPREAD. The median, not the
# widest: with ~48 micro-models of 12 runs each, some tiny op's spread passes 0.6 in nearly
# every window (56 of 59 windows of a default profile were measured twice: 1096 s, now 437 s),
# and measuring all 24 entries again does not steady that one; a disturbed window widens most.
# On a noisy machine calm windows spread about as wide as that: on the Zen 3 EPYC their median
# sat at 0.6, 75 of 108 windows were measured twice, and 53 of those were still above 0.6 at
# their better attempt (a second try does not steady what is the machine's usual). So the bar
# is also relative: a window is wide when it spreads more than SPREAD_FACTOR x the median of the
# profile's windows so far (once SPREAD_HISTORY of them are measured), and never below MAX_SPREAD.
MIN_SPEED = 0.7
MAX_SPREAD = 0.6
SPREAD_FACTOR = 1.5
SPREAD_HISTORY = 8
MAX_ATTEMPTS = 2
# Windows each entry is measured in. Precision of the entries is what a prediction's accuracy
# rests on: validated on the same 40 random architectures here, a table whose entries were measured
# in 6 windows predicted 72 % within 5 % (mean |error| 3.8 %), one measured in 2 windows 40 % (7.0 %).
PASSES = 4
AGREEMENT = 0.15  # entries whose measurements spread wider than this (of their median) get one more
# Whole models measured at profile time to fit the calibration, from 2 to 110 M parameters.
CALIBRATION_MODELS = ("bert-base", "minilm-l6-h384", "tinybert-4", "efficientbert", "bert-tiny")
CALIBRATION_WINDOWS = 5  # one after each of the first four entry passes, the last at the end (fewer for fewer passes)


# --- the grid ---------------------------------------------------------------------------------


@dataclass
class Grid:
    """Which micro-models to time. The default covers arch.SPACE's search ranges and bert-base."""

    name: str
    hidden: list[int]
    heads: list[int]
    head_size: list[int]
    inner: list[int]
    embedding_sizes: list[int]
    act_widths: list[int]
    op_widths: list[int]
    calibration: list[str] = field(default_factory=lambda: list(CALIBRATION_MODELS))
    passes: int = PASSES  # windows per entry (units with `passes` > 1 get that multiple)
    # The graph-optimization decision times this zoo model both ways, in this many windows. bert-base is
    # what searches are budgeted against; the quick grid takes a 6-layer model of the same ops (~5x
    # cheaper: 80 s -> 50 s) in three windows (the Zen 4 EPYC's quick grid took 67 s deciding in five).
    decision_model: str = "bert-base"
    decision_windows: int = 5

    def entries(self) -> Iterator[tuple[str, str | None, dict]]:
        for kind in ("standard", "factorized", "trigram"):
            for h in self.hidden:
                for e in ([0] if kind == "standard" else self.embedding_sizes):
                    yield "shell", kind, {"hidden": h, "embedding_size": e}
        for h in self.hidden:
            for nh in self.heads:
                for hs in self.head_size:
                    yield "mha", None, {"hidden": h, "heads": nh, "head_size": hs}
        for h in self.hidden:  # the full rectangle: interpolation needs every corner
            for i in self.inner:
                yield "ffn", None, {"hidden": h, "inner": i}
            yield "ffn_stack", None, {"hidden": h, "stack": STACK_PROBE}
        for act in ("gelu", NO_ACTIVATION, *[a for a in mlp.unary_ops() if a != "gelu"]):
            for w in self.act_widths:
                yield "ffn_act", act, {"inner": w}
        for op in op_variants():
            for w in self.op_widths:
                yield "op", op, {"width": w}


def default_grid() -> Grid:
    s = SPACE
    return Grid(
        name="default",
        hidden=list(s.hidden_grid),
        heads=[1, 2, 4, 8, 12],  # attention cost is linear in the head count between these
        head_size=list(s.head_size_grid),
        inner=list(s.inner_grid),
        embedding_sizes=list(s.embedding_size_grid),
        act_widths=[32, 64, 128, 256, 512, 1024, 2048, 3072],
        op_widths=[32, 64, 128, 256, 512, 768, 1536, 3072],
    )


def quick_grid() -> Grid:
    """Corners and a midpoint of every axis: a coarse table in under a minute."""
    return Grid(
        name="quick", hidden=[128, 384, 768], heads=[1, 12], head_size=[32, 64], inner=[32, 384, 3072],
        embedding_sizes=[64, 128], act_widths=[32, 3072], op_widths=[32, 3072],
        calibration=["tinybert-4", "efficientbert-tiny"], passes=2, decision_model="minilm-l6-h384",
        decision_windows=3,
    )


def load_grid(name_or_file: str) -> Grid:
    if name_or_file == "default":
        return default_grid()
    if name_or_file == "quick":
        return quick_grid()
    p = Path(name_or_file)
    if not p.is_file():
        raise EdgebertError(f"--grid {name_or_file!r}: not 'default', 'quick' or an existing JSON file")
    d = read_json(p, "grid JSON")
    fields = {f for f in Grid.__dataclass_fields__ if f != "name"}
    if not isinstance(d, dict) or set(d) - fields:
        raise EdgebertError(f"{p}: a grid file is an object with keys among {sorted(fields)}")
    base = asdict(default_grid())
    for k, v in d.items():
        if k in ("passes", "decision_windows"):
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 20:
                raise EdgebertError(f"{p}: grid field {k!r} must be an integer from 1 to 20")
            base[k] = v
            continue
        if k == "decision_model":
            if not isinstance(v, str):
                raise EdgebertError(f"{p}: grid field 'decision_model' must be a zoo name")
            zoo.entry(v)
            base[k] = v
            continue
        ok = isinstance(v, list) and (v or k == "calibration") and all(
            isinstance(x, str) if k == "calibration" else (isinstance(x, (int, float)) and x > 0) for x in v)
        if not ok:
            raise EdgebertError(f"{p}: grid field {k!r} must be a non-empty list of "
                                f"{'zoo names' if k == 'calibration' else 'positive numbers'}")
        base[k] = sorted(v) if k != "calibration" else v
    for name in base["calibration"]:
        zoo.entry(name)
    if len(base["calibration"]) > 5:
        raise EdgebertError(f"{p}: at most 5 calibration models")
    base["name"] = str(p)
    return Grid(**base)


# --- profiling ----------------------------------------------------------------------------------


def entry_id(unit: str, variant: str | None, key: dict, seq: int, batch: int) -> str:
    return json.dumps([unit, variant, key, seq, batch], sort_keys=True)


def default_table_name(fp: dict, precision: str, seq_lens, batch: int) -> str:
    """e.g. 'intel-r-xeon-r-processor-6-167-1-2t-fp32-s128-b1.json': the CPU's name, then its
    family/model/stepping (two CPUs a hypervisor names alike), threads and settings."""
    short = fp.get("cpu_id") and machine_identity(fp).split(",")[0]
    cpu = "".join(c if c.isalnum() else "-" for c in f"{fp['cpu_model']} {short or ''}".lower()).strip("-")
    while "--" in cpu:
        cpu = cpu.replace("--", "-")
    seqs = "-".join(str(s) for s in seq_lens)
    return f"{cpu}-{fp['threads']}t-{precision}-s{seqs}-b{batch}.json"


def local_tables_dir() -> Path:
    return cache_dir() / "tables"


def _micro_dir(precision: str, graph_opt: str) -> Path:
    return cache_dir() / "micro" / f"{precision}-{graph_opt}"


def _micro_path(precision: str, graph_opt: str, unit: str, variant, key: dict, k: int) -> Path:
    import torch

    ident = json.dumps([MICRO_VERSION, OPSET, torch.__version__, unit, variant, key, k], sort_keys=True)
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return _micro_dir(precision, graph_opt) / f"{unit}-{variant}-{digest}-k{k}.onnx"


def _cached_micro(path: Path, export) -> list:
    """The input specs of the micro-model at `path`, exporting it first (`export(tmp_path)`) if absent."""
    from edgebert.device.timing import InputSpec

    inputs_path = path.with_suffix(".inputs.json")
    if not (path.is_file() and inputs_path.is_file()):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.onnx")
        inputs = export(tmp)
        os.replace(tmp, path)
        atomic_write_json(inputs_path, [asdict(i) for i in inputs])
    else:
        touch(path)
        touch(inputs_path)
    return [InputSpec(**d) for d in json.loads(inputs_path.read_text())]


def _chain_workloads(entry: dict, precision: str, graph_opt: str) -> dict[int, Workload]:
    """{k: the workload of k chained copies} for one entry. The k = 0 chain (input fed in and
    fetched back) depends only on the running input's width: entries of one width share it."""
    int8 = precision == "int8"
    out: dict[int, Workload] = {}
    for k in (k for k in UNITS[entry["unit"]].chain if k > 0):
        path = _micro_path(precision, graph_opt, entry["unit"], entry["variant"], entry["key"], k)
        inputs = _cached_micro(path, lambda tmp: export_micro(
            entry["unit"], entry["variant"], entry["key"], k, entry["seq"], entry["batch"], tmp, int8=int8,
            graph_optimization=graph_opt))
        for spec in inputs:  # the cached file is shape-generic; feed this entry's batch and length
            spec.shape[0] = entry["batch"]
            spec.shape[-1 if spec.name == "mask_bias" else 1] = entry["seq"]
        out[k] = Workload(f"{entry['id']}|k{k}", path, inputs)
    if 0 in UNITS[entry["unit"]].chain:
        width = next(iter(out.values())).inputs[0].shape[-1]  # (B, T, width): the running input
        path = _micro_path(precision, graph_opt, "passthrough", None, {"width": width}, 0)
        inputs = _cached_micro(path, lambda tmp: export_passthrough(width, entry["seq"], entry["batch"], tmp,
                                                                    int8=int8, graph_optimization=graph_opt))
        for spec in inputs:
            spec.shape[:2] = [entry["batch"], entry["seq"]]
        out[0] = Workload(f"passthrough|w{width}|b{entry['batch']}|s{entry['seq']}", path, inputs)
    return out


def _window_workloads(chains: list[dict[int, Workload]]) -> list[Workload]:
    """Every chain's workloads once (entries of one width share their k = 0 chain)."""
    return list({w.name: w for chain in chains for w in chain.values()}.values())


def _cost(entry: dict, chain: dict[int, Workload], report) -> dict:
    """Canary-normalised marginal cost of one entry from its chain's workloads in one window."""
    ks = UNITS[entry["unit"]].chain
    t = {k: report[chain[k].name] for k in ks}
    if len(ks) == 1:
        cost = t[ks[0]].normalised
    else:
        k1, k2 = ks
        cost = (t[k2].normalised - t[k1].normalised) / (k2 - k1)
    return {"cost": cost, "spread": max(x.spread for x in t.values()), "runs": min(x.runs for x in t.values())}


def _passes(entry: dict, passes: int) -> int:
    """Windows an entry is measured in before the extra pass (`passes`: the grid's)."""
    return passes * UNITS[entry["unit"]].passes


def _disagree(entry: dict) -> bool:
    """The entry's measurements spread (max - min) wider than AGREEMENT x their median."""
    costs = [m["cost"] for m in entry["measurements"]]
    return max(costs) - min(costs) > AGREEMENT * max(abs(stats.median(costs)), 1e-9)


def settle_entry(entry: dict) -> None:
    """An entry's figures from its measurements: the median cost, the median spread, all runs."""
    ms = entry["measurements"]
    entry["cost"] = stats.median([m["cost"] for m in ms])
    entry["spread"] = stats.median([m["spread"] for m in ms])
    entry["runs"] = sum(m["runs"] for m in ms)


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def profile(
    *,
    target: str = "local",
    threads: int | None = None,
    seq_lens: tuple[int, ...] | list[int] = (128,),
    batch: int = 1,
    precision: str = "fp32",
    grid: str = "default",
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
    graph_optimization: str = "auto",
    window_entries: int = 24,
) -> dict[str, Any]:
    """Profile the target into a latency table; returns {"table", "entries", "seconds"}.

    graph_optimization "auto" takes the decision a table matching this machine, threads and
    precision recorded, else measures; "measure" decides it by timing bert-base both ways;
    "none" or "fusion" impose it (tests, or a known device).
    """
    t0 = time.perf_counter()
    runner = get_runner(target)
    if precision not in PRECISIONS:
        raise EdgebertError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if batch < 1 or not seq_lens or any(s < 1 or s > 512 for s in seq_lens):
        raise EdgebertError("--seq-len values must be in 1..512 and --batch positive")
    g = load_grid(grid)
    policy = TimingPolicy(**({"threads": threads} if threads else {}))
    fp = runner.fingerprint(policy.threads, precision, spinning=policy.spinning)
    out = Path(out) if out else local_tables_dir() / default_table_name(fp, precision, seq_lens, batch)
    partial = out.with_name(out.name + ".partial")
    settings = {
        "threads": policy.threads, "precision": precision, "spinning": policy.spinning,
        "seq_lens": sorted(seq_lens), "batch": batch, "opset": OPSET, "export_mode": EXPORT_MODE,
        "target": target, "grid": asdict(g), "policy": policy.to_dict(),
        "chains": {name: list(unit.chain) for name, unit in UNITS.items()},
        "session_options": policy.session_options(),
    }
    data = _start(partial, settings, fp, resume, command)

    def save() -> None:
        atomic_write_json(partial, data, indent=1)

    say = _progress(progress)
    if "graph_optimization" not in data and graph_optimization == "auto":
        # Decided once per device x threads x precision: a matching table's measured decision stands.
        from edgebert.latency.catalog import recorded_graph_optimization

        decision, source = recorded_graph_optimization(threads=policy.threads, precision=precision)
        if source is None:
            graph_optimization = "measure"
        else:
            say(f"graph optimization '{decision}', as measured for {source}")
            data["graph_optimization"] = {"decision": decision, "from_table": source}
            save()
    if "graph_optimization" not in data:
        if graph_optimization == "measure":
            say(f"deciding the graph optimization ({g.decision_model} with and without ORT's transformer fusion)")
            data["graph_optimization"] = _decide_graph_optimization(
                runner, policy, precision, seq_lens[0], batch, g.decision_model, g.decision_windows)
        elif graph_optimization in GRAPH_OPTIMIZATIONS:
            data["graph_optimization"] = {"decision": graph_optimization, "imposed": True}
        else:
            raise EdgebertError(f"--graph-optimization {graph_optimization!r}: choose auto, measure, "
                                f"{', '.join(GRAPH_OPTIMIZATIONS)}")
        save()
    graph_opt = data["graph_optimization"]["decision"]
    data["settings"]["graph_optimization"] = graph_opt

    by_id = {e["id"]: e for e in data["entries"]}
    for seq in sorted(seq_lens):
        for unit, variant, key in g.entries():
            eid = entry_id(unit, variant, key, seq, batch)
            if eid not in by_id:
                by_id[eid] = {"id": eid, "unit": unit, "variant": variant, "key": key, "seq": seq, "batch": batch,
                              "measurements": []}
                data["entries"].append(by_id[eid])
    entries = data["entries"]
    need = {e["id"]: _passes(e, g.passes) for e in entries}
    bar = _bar(progress, sum(need.values()), "profiling",
               initial=sum(min(len(e["measurements"]), need[e["id"]]) for e in entries))
    # Every entry is measured in the grid's passes (PASSES) windows of different company (a window's speed can
    # sit off the canary's by a few per cent), some units' in a multiple of them; entries
    # whose figures spread too wide are measured once more, and the median kept.
    last = max(need.values())
    cal_windows = min(CALIBRATION_WINDOWS, g.passes + 1)
    seq0 = sorted(seq_lens)[0]
    calibration = _calibration_workloads(precision, graph_opt, g.calibration, seq0, batch)
    data.setdefault("calibration_windows", [])

    def calibrate_once() -> None:
        """One window of the calibration models, between entry passes: their scale then averages the
        machine's states over the whole profile, as the entries' does. Measured here: five windows taken
        together at the end moved as a block between two profiles (every model 3-7 % lower in the
        second), shifting every prediction of one table 3.8 % from the other's while their sums of
        entries agreed within 2.1 % (median)."""
        data["calibration_windows"].append(_calibration_window(runner, policy, calibration))
        save()

    for p in range(last + 1):
        if p < last:
            todo = [e for e in entries if len(e["measurements"]) <= p < need[e["id"]]]
        else:
            todo = [e for e in entries if len(e["measurements"]) == need[e["id"]] and _disagree(e)]
            bar.total += len(todo)
        random.Random(p).shuffle(todo)
        for chunk in _chunks(todo, window_entries):
            chains = [_chain_workloads(entry, precision, graph_opt) for entry in chunk]
            w0 = time.perf_counter()
            report, attempts, spread = _measure_window(runner, chains, policy, data, chunk)
            window = len(data["windows"])
            data["windows"].append({**_window_record(report, window), "attempts": attempts, "spread": spread,
                                    "elapsed_s": time.perf_counter() - w0})
            for entry, chain in zip(chunk, chains):
                entry["measurements"].append({**_cost(entry, chain, report), "window": window})
                settle_entry(entry)
            save()
            bar.update(len(chunk))
        if calibration and p < min(g.passes, cal_windows - 1) and len(data["calibration_windows"]) <= p:
            calibrate_once()
    bar.close()

    if calibration and len(data["calibration_windows"]) < cal_windows:
        say(f"calibrating on {', '.join(g.calibration)}")
        while len(data["calibration_windows"]) < cal_windows:
            calibrate_once()
    settle_table(data)
    data["seconds"] = data.get("seconds", 0.0) + time.perf_counter() - t0
    table = LatencyTable.from_dict(data, out)
    table.save(out)
    partial.unlink(missing_ok=True)
    prune_cache(_micro_dir(precision, graph_opt))  # this profile's micro-models were used just now: kept
    return {"table": str(out), "entries": len(data["entries"]), "seconds": round(time.perf_counter() - t0, 1)}


def _start(partial: Path, settings: dict, fp: dict, resume: bool, command: str | None) -> dict:
    if resume and partial.is_file():
        try:
            data = json.loads(partial.read_text())
        except json.JSONDecodeError:
            raise EdgebertError(f"{partial}: the partial table is corrupted; run without --resume") from None
        if data.get("settings", {}).get("grid") != settings["grid"] or any(
                data["settings"].get(k) != settings[k] for k in ("threads", "precision", "seq_lens", "batch", "chains")):
            raise EdgebertError(f"{partial} was started with other settings; run without --resume to start over")
        return data
    partial.unlink(missing_ok=True)
    return {
        "schema_version": SCHEMA_VERSION,
        "device": fp,
        "settings": settings,
        "command": command or "edgebert profile " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "windows": [],
        "entries": [],
    }


def _window_record(report, index: int) -> dict:
    w = report.windows[0]
    return {"index": index, "timestamp": w.timestamp, "wall_s": w.wall_s, "canary_ms": w.canary_median_ms,
            "empty_ms": w.empty_median_ms}


def _measure_window(runner, chains, policy, data, chunk) -> tuple[Any, int, float]:
    """One window, how many attempts it took and its entries' median spread: measured again while
    the canary says the machine is far below the profile's first-window speed or its entries'
    spreads are too wide (`spread_limit`; never because of a prediction). The table records all
    three, with the elapsed time (worker start, sessions, every attempt): where a profile's minutes go."""
    p = TimingPolicy(threads=policy.threads, spinning=policy.spinning, warmup=3, runs=12, rounds=6)
    first = next((w["canary_ms"] for w in data["windows"] if w["canary_ms"]), None)
    limit = spread_limit([w["spread"] for w in data["windows"] if w.get("spread") is not None])
    best, best_spread = None, float("inf")
    workloads = _window_workloads(chains)
    for attempt in range(MAX_ATTEMPTS):
        report = measure(workloads, runner=runner, policy=p)
        canary = report.windows[0].canary_median_ms
        spread = stats.median([_cost(e, chain, report)["spread"] for e, chain in zip(chunk, chains)])
        slow = first is not None and canary is not None and first / canary < MIN_SPEED
        if spread < best_spread and not slow:
            best, best_spread = report, spread
        if not slow and spread <= limit:
            break
    return (best, attempt + 1, best_spread) if best else (report, attempt + 1, spread)


def spread_limit(earlier: list[float]) -> float:
    """The median spread above which a window is measured again: MAX_SPREAD, or SPREAD_FACTOR x the
    median of the profile's `earlier` windows' spreads when that is wider (a noisy machine's usual)."""
    if len(earlier) < SPREAD_HISTORY:
        return MAX_SPREAD
    return max(MAX_SPREAD, SPREAD_FACTOR * stats.median(earlier))


FUSION_MARGIN = 0.03


def _decide_graph_optimization(runner, policy, precision, seq, batch, model: str, windows: int) -> dict:
    """Time `model` (the grid's decision model) exported both ways, interleaved, in `windows` windows. Fusion must win by
    FUSION_MARGIN in the median window: within the machine's noise a tie keeps the plain graph (the
    default). The two graphs run in the same windows, so each window's ratio of their medians is free
    of the machine's speed; their canary-normalised figures once read fusion 7 % faster while the raw
    medians tied (133.8 ms both): the first workload's paired canary then followed the empty model, warm,
    and every other's a real model, cold (the worker now refills the canary's caches first)."""
    spec = zoo.get(model)
    workloads = []
    for decision in GRAPH_OPTIMIZATIONS:
        _, path = cached_export(model, int8=precision == "int8", graph_optimization=decision)
        workloads.append(Workload(decision, path, model_inputs(spec, batch, seq)))
    report = measure(workloads, runner=runner, policy=TimingPolicy(threads=policy.threads, spinning=policy.spinning,
                                                                    warmup=2, runs=10, rounds=5, windows=windows))
    medians = {d: report[d].median_ms for d in GRAPH_OPTIMIZATIONS}
    normalised = {d: report[d].normalised for d in GRAPH_OPTIMIZATIONS}
    ratios = [f / n for f, n in zip(report["fusion"].window_median_ms, report["none"].window_median_ms)]
    ratio = stats.median(ratios)
    decision = "fusion" if ratio < 1 - FUSION_MARGIN else "none"
    return {"decision": decision, "margin": FUSION_MARGIN, "model": model, "median_ms": medians,
            "normalised": normalised, "fusion_over_none": ratio, "window_ratios": ratios,
            "seq": seq, "batch": batch}


def _calibration_workloads(precision, graph_opt, names, seq, batch) -> list[Workload]:
    """The calibration models, exported before any timing (a window right after PyTorch work reads slow)."""
    workloads = []
    for name in names:
        _, path = cached_export(name, int8=precision == "int8", graph_optimization=graph_opt)
        workloads.append(Workload(name, path, model_inputs(zoo.get(name), batch, seq)))
    return workloads


def _calibration_window(runner, policy, workloads: list[Workload]) -> dict:
    report = measure(workloads, runner=runner, policy=TimingPolicy(threads=policy.threads, spinning=policy.spinning,
                                                                    warmup=2, runs=15, rounds=5, windows=1))
    return {"timestamp": report.windows[0].timestamp, "canary_ms": report.windows[0].canary_median_ms,
            "normalised": {w.name: report[w.name].normalised for w in workloads},
            "median_ms": {w.name: report[w.name].median_ms for w in workloads}}


def settle_table(data: dict) -> None:
    """A table's figures from its windows: each calibration model's median over its windows, the
    canary's nominal time and the empty run's overhead (medians over the entry windows), and the
    calibration fitted on those models."""
    settings = data["settings"]
    data["calibration_measured"] = _calibration_measured(
        data["calibration_windows"], settings["grid"]["calibration"], min(settings["seq_lens"]), settings["batch"])
    canary_ms = [w["canary_ms"] for w in data["windows"] if w["canary_ms"]]
    data["canary"] = {"name": CANARY_NAME, "nominal_ms": stats.median(canary_ms)}
    data["empty_run_overhead_ms"] = stats.median([w["empty_ms"] for w in data["windows"] if w["empty_ms"]])
    data["calibration"] = calibrate(data)


def _calibration_measured(windows: list[dict], names, seq, batch) -> list[dict]:
    """Per calibration model, the median over its windows (what the calibration is fitted on)."""
    return [{"model": n, "spec": zoo.get(n).to_dict(), "seq": seq, "batch": batch,
             "measured": stats.median([w["normalised"][n] for w in windows]),
             "median_ms": stats.median([w["median_ms"][n] for w in windows])} for n in names]


# --- progress ----------------------------------------------------------------------------------


def _progress(enabled: bool):
    def say(message: str) -> None:
        if enabled:
            print(f"edgebert: {message}", file=sys.stderr, flush=True)

    return say


def _bar(enabled: bool, total: int, desc: str, initial: int = 0):
    from tqdm import tqdm

    return tqdm(total=total + initial, initial=initial, desc=desc, unit="entry", disable=not enabled, file=sys.stderr)
