"""Where latency tables live, which one fits this machine, and how two tables differ.

Shipped tables are in the repository's `latency_tables/`; tables a user
profiles go to `$EDGEBERT_CACHE/tables/` by default. A table *matches* when its
device fingerprint (CPU and its identity, cores, ISA, OS, ORT version, threads,
precision, spinning) equals this machine's under the same settings.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from edgebert.device import stats
from edgebert.errors import EdgebertError
from edgebert.latency.table import LatencyTable, TableError

SHIPPED = Path(__file__).resolve().parents[2] / "latency_tables"


def table_dirs() -> list[Path]:
    from edgebert.latency.profiler import local_tables_dir

    return [SHIPPED, local_tables_dir()]


def _load_quietly(path: Path) -> LatencyTable | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return LatencyTable.load(path, check_device=False)
        except TableError:
            return None


def list_tables() -> list[dict[str, Any]]:
    rows = []
    for where, d in zip(("shipped", "local"), table_dirs()):
        for p in sorted(d.glob("*.json")) if d.is_dir() else []:
            t = _load_quietly(p)
            if t is None:
                rows.append({"name": p.name, "path": str(p), "where": where, "error": "unreadable or other schema"})
                continue
            s = t.settings
            rows.append({
                "name": p.name, "path": str(p), "where": where, "matches_this_machine": not t.device_mismatch(),
                "cpu": t.device.get("cpu_model"), "threads": s["threads"], "precision": s["precision"],
                "seq_lens": s["seq_lens"], "batch": s["batch"], "entries": len(t.data["entries"]),
                "graph_optimization": s.get("graph_optimization"),
                "created": t.data.get("created"), "validation": t.data.get("validation"),
            })
    return rows


def resolve(name_or_path: str) -> Path:
    """A table by path, or by file name among shipped and local tables."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for d in table_dirs():
        for candidate in (d / name_or_path, d / f"{name_or_path}.json"):
            if candidate.is_file():
                return candidate
    raise TableError(f"latency table not found: {name_or_path} (see `edgebert tables list`)")


def _preferred(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Of several matching tables: a shipped one before a local one, then the one with most entries."""
    return sorted(rows, key=lambda r: (r["where"] != "shipped", -r["entries"]))[0]


def find_table(*, threads: int, precision: str, seq_len: int, batch: int) -> LatencyTable:
    """The table that matches this machine and these settings, or a one-line hint to make one."""
    candidates = []
    for row in list_tables():
        if row.get("matches_this_machine") and row["threads"] == threads and row["precision"] == precision \
                and row["batch"] == batch and min(row["seq_lens"]) <= seq_len <= max(row["seq_lens"]):
            candidates.append(row)
    if not candidates:
        raise EdgebertError(
            f"no latency table matches this machine at {threads} threads, {precision}, seq {seq_len}, batch {batch}; "
            f"make one with: edgebert profile --threads {threads} --precision {precision} --seq-len {seq_len} "
            f"--batch {batch}")
    return LatencyTable.load(_preferred(candidates)["path"])


def recorded_graph_optimization(*, threads: int, precision: str) -> tuple[str, str | None]:
    """The graph-optimization decision measured for this machine at these threads and precision
    (recorded in a matching table, shipped first), else the exporter's default; and the table's name."""
    from edgebert.export import DEFAULT_GRAPH_OPTIMIZATION

    rows = [r for r in list_tables() if r.get("matches_this_machine") and r["threads"] == threads
            and r["precision"] == precision and r.get("graph_optimization")]
    if not rows:
        return DEFAULT_GRAPH_OPTIMIZATION, None
    best = _preferred(rows)
    return best["graph_optimization"], best["name"]


def show(path: Path) -> dict[str, Any]:
    t = LatencyTable.load(path, check_device=False)
    units: dict[str, int] = {}
    for e in t.data["entries"]:
        units[e["unit"]] = units.get(e["unit"], 0) + 1
    cal = t.calibration
    return {
        "name": t.name, "path": str(path), "schema_version": t.data["schema_version"], "device": t.device,
        "settings": {k: v for k, v in t.settings.items() if k != "grid"}, "grid": t.settings.get("grid"),
        "canary": t.data.get("canary"), "empty_run_overhead_ms": t.data.get("empty_run_overhead_ms"),
        "graph_optimization": t.data.get("graph_optimization"), "command": t.data.get("command"),
        "created": t.data.get("created"), "entries_per_unit": units,
        "calibration": {"a": cal.get("a"), "b": cal.get("b"),
                        "models": [{k: m.get(k) for k in ("model", "median_ms", "error_pct")} for m in cal.get("models", [])]},
        "validation": t.data.get("validation"), "matches_this_machine": not t.device_mismatch(),
    }


def diff(a: Path, b: Path) -> dict[str, Any]:
    """Per-entry relative differences of two tables' costs (canary-normalised), over the entries both have."""
    ta, tb = (LatencyTable.load(p, check_device=False) for p in (a, b))
    costs_b = {e["id"] if "id" in e else json.dumps([e["unit"], e.get("variant"), e["key"], e["seq"], e["batch"]],
                                                     sort_keys=True): e["cost"] for e in tb.data["entries"]}
    rows = []
    for e in ta.data["entries"]:
        key = e.get("id") or json.dumps([e["unit"], e.get("variant"), e["key"], e["seq"], e["batch"]], sort_keys=True)
        if key in costs_b and e["cost"] > 0 and costs_b[key] > 0:
            rows.append({"entry": key, "unit": e["unit"], "a": e["cost"], "b": costs_b[key],
                         "delta_pct": 100.0 * (costs_b[key] - e["cost"]) / e["cost"]})
    if not rows:
        raise EdgebertError(f"{a.name} and {b.name} have no entries in common")
    abs_d = [abs(r["delta_pct"]) for r in rows]
    by_unit = {}
    for unit in sorted({r["unit"] for r in rows}):
        d = [abs(r["delta_pct"]) for r in rows if r["unit"] == unit]
        by_unit[unit] = {"entries": len(d), "median_abs_pct": stats.median(d)}
    import numpy as np

    return {
        "a": str(a), "b": str(b), "common_entries": len(rows),
        "median_abs_pct": stats.median(abs_d), "p90_abs_pct": float(np.percentile(abs_d, 90)),
        "max_abs_pct": max(abs_d), "by_unit": by_unit,
        "nominal_canary_ms": {"a": ta.nominal_canary_ms, "b": tb.nominal_canary_ms},
        "rows": sorted(rows, key=lambda r: -abs(r["delta_pct"]))[:20],
    }
