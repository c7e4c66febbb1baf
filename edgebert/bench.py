"""Models against a baseline on a target, timed in one interleaved window.

    result = bench(["tinybert-4", "efficientbert"], baseline="bert-base", seq_len=128)

Each model goes through the one exporter (cached by what it is, so a second
bench costs no export), then every model and the baseline are timed
interleaved through the one harness (`device.timing.measure`) — only figures
from one window compare on a machine whose speed drifts. Peak memory is
measured per model in a subprocess of its own. Speedups are ratios of medians
from that same window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebert.arch import ArchSpec
from edgebert.device.fingerprint import describe
from edgebert.device.timing import TimingPolicy, Workload, measure, measure_memory
from edgebert.errors import EdgebertError
from edgebert.export import DEFAULT_GRAPH_OPTIMIZATION, cached_export, model_inputs, versions
from edgebert.files import atomic_write_text


@dataclass
class Exported:
    """A model ready to time: its ONNX file and what it is."""

    name: str
    onnx_path: Path
    spec: ArchSpec
    params: int
    manifest: dict


def prepare(ref: str, *, int8: bool, graph_optimization: str = DEFAULT_GRAPH_OPTIMIZATION) -> Exported:
    """The ONNX file to time for `ref`: an export folder (manifest.json) as is, else a cached export."""
    manifest, path = cached_export(ref, int8=int8, graph_optimization=graph_optimization)
    return Exported(manifest.get("name", Path(ref).name), path, ArchSpec.from_dict(manifest["spec"]),
                    manifest["params"], manifest)


def bench(
    models: list[str],
    *,
    baseline: str | None = "bert-base",
    seq_len: int = 128,
    batch: int = 1,
    threads: int | None = None,
    int8: bool = False,
    runs: int = 40,
    rounds: int = 10,
    windows: int = 1,
    memory: bool = True,
    graph_optimization: str | None = None,
    progress=None,
) -> dict[str, Any]:
    """Time `models` and `baseline` interleaved; the JSON-ready result (see `edgebert bench --json`).

    `graph_optimization` None: the decision measured for this machine (a matching latency
    table records it), else the exporter's default."""
    if not models:
        raise EdgebertError("give at least one model to bench")
    if seq_len < 1 or batch < 1:
        raise EdgebertError("--seq-len and --batch must be positive")
    refs = list(dict.fromkeys(models + ([baseline] if baseline else [])))
    t0 = time.perf_counter()
    policy = TimingPolicy(runs=runs, rounds=rounds, windows=windows, **({"threads": threads} if threads else {}))
    decided_by = None
    if graph_optimization is None:
        from edgebert.latency.catalog import recorded_graph_optimization

        graph_optimization, decided_by = recorded_graph_optimization(threads=policy.threads,
                                                                     precision="int8" if int8 else "fp32")
    exported = {}
    for ref in refs:
        if progress:
            progress(f"exporting {ref} (graph optimization: {graph_optimization})")
        exported[ref] = prepare(ref, int8=int8, graph_optimization=graph_optimization)
    names = _unique_names(refs, exported)
    workloads = [Workload(names[r], e.onnx_path, model_inputs(e.spec, batch, seq_len)) for r, e in exported.items()]
    if progress:
        progress(f"timing {len(workloads)} models interleaved ({runs} runs each, {windows} window(s))")
    report = measure(workloads, policy=policy, precision="int8" if int8 else "fp32")
    rows = {}
    for ref, e in exported.items():
        t = report[names[ref]]
        row = {
            "model": names[ref],
            "source": ref,
            "spec_summary": e.spec.summary(),
            "p50_ms": t.median_ms,
            "p90_ms": t.p90_ms,
            "p99_ms": t.p99_ms,
            "mean_ms": t.mean_ms,
            "min_ms": t.min_ms,
            "spread": t.spread,
            "runs": t.runs,
            "normalised": t.normalised,
            "throughput_per_s": 1000.0 * batch / t.median_ms,
            "params": e.params,
            "flops": e.spec.flops(seq_len, batch),
            "size_mb": e.onnx_path.stat().st_size / 2**20,
            "onnx_path": str(e.onnx_path),
        }
        if memory:
            if progress:
                progress(f"peak memory of {names[ref]}")
            w = next(w for w in workloads if w.name == names[ref])
            row["peak_rss_mb"] = measure_memory(w, policy=policy)["peak_rss_mb"]
        rows[ref] = row
    base = rows.get(baseline) if baseline else None
    for ref, row in rows.items():
        if base:
            row["speedup_vs_baseline"] = base["p50_ms"] / row["p50_ms"]
            row["size_ratio_vs_baseline"] = row["size_mb"] / base["size_mb"]
            row["params_ratio_vs_baseline"] = row["params"] / base["params"]
    results = [rows[r] for r in dict.fromkeys(models)]
    return {
        "results": results,
        "baseline": base,
        "settings": {"seq_len": seq_len, "batch": batch, "precision": "int8" if int8 else "fp32",
                     "threads": policy.threads, "runs": runs, "rounds": rounds, "windows": windows,
                     "graph_optimization": graph_optimization, "graph_optimization_from": decided_by},
        "device": report.fingerprint,
        "device_summary": describe(report.fingerprint),
        "versions": versions(),
        "policy": report.policy,
        "session_options": report.session_options,
        "canary": {"name": report.canary, "median_ms": report.canary_median_ms,
                   "window_ms": [w.canary_median_ms for w in report.windows]},
        "empty_run_overhead_ms": report.overhead_ms,
        "timestamp": report.windows[0].timestamp,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _unique_names(refs: list[str], exported: dict[str, Exported]) -> dict[str, str]:
    names: dict[str, str] = {}
    for ref in refs:
        name = exported[ref].name
        while name in names.values():
            name += "'"
        names[ref] = name
    return names


# --- report ---------------------------------------------------------------------------------


def markdown(result: dict[str, Any]) -> str:
    """A Markdown table of a bench result, with the conditions it was measured under."""
    s = result["settings"]
    lines = [
        f"Device: {result['device_summary']}  ",
        f"ONNX Runtime {result['versions']['onnxruntime']}, torch {result['versions']['torch']}; "
        f"{s['precision']}, seq {s['seq_len']}, batch {s['batch']}, {s['threads']} threads, "
        f"spinning policy `{result['policy']['spinning']}`, graph optimization `{s.get('graph_optimization', 'none')}`"
        f"{' (measured, ' + s['graph_optimization_from'] + ')' if s.get('graph_optimization_from') else ''}; "
        f"{s['runs']} runs per model in {s['rounds']} "
        f"interleaved rounds, {s['windows']} window(s); canary {result['canary']['median_ms']:.3f} ms; "
        f"empty-run overhead {result['empty_run_overhead_ms'] * 1000:.0f} µs; {result['timestamp']}.",
        "",
        "| model | arch | p50 ms | p90 ms | spread | params (M) | GFLOPs | file MB | peak RSS MB | speedup | size ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = list(result["results"])
    if result.get("baseline") and result["baseline"] not in rows:
        rows.append(result["baseline"])
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['spec_summary']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['spread']:.2f} | "
            f"{r['params'] / 1e6:.2f} | {r['flops'] / 1e9:.2f} | {r['size_mb']:.1f} | "
            f"{r.get('peak_rss_mb', float('nan')):.0f} | {r.get('speedup_vs_baseline', float('nan')):.2f}x | "
            f"{r.get('size_ratio_vs_baseline', float('nan')):.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_report(result: dict[str, Any], path: Path) -> None:
    atomic_write_text(path, "# edgebert bench\n\n" + markdown(result))
