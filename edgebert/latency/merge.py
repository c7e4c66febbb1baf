"""Pool several profiles of one device and settings into one table.

    result = merge(["first.json", "second.json"], out="pooled.json")

Why: on a noisy machine one profile's entries carry the few minutes of the
machine's state they were measured in. On the EPYC two profiles started 10 min
apart predicted whole models a median 4.1 % apart (`tools/latency_tables.py
repeat`), which alone keeps most predictions from ±5 %. Profiles taken apart
in time sample more of the machine's states than more windows in one profile can.

Every entry keeps every profile's window measurements (window indices shifted
so that each still names its own window in the pooled `windows` list) and is
settled again over all of them (median cost); the calibration windows are
pooled and the calibration refitted. Only profiles of the same device (no
`fingerprint.differences`) and the same settings (grid, policy, chains, graph optimization, ...)
pool: anything else is refused in one line.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from edgebert.device.fingerprint import differences
from edgebert.errors import EdgebertError
from edgebert.latency.profiler import settle_entry, settle_table
from edgebert.latency.table import LatencyTable


def merge(paths: list[str | Path], out: str | Path, *, command: str | None = None) -> dict[str, Any]:
    if len(paths) < 2:
        raise EdgebertError("merge needs at least two tables")
    tables = [LatencyTable.load(p, check_device=False) for p in paths]
    first = tables[0]
    for t in tables[1:]:
        _check_alike(first, t)
    sources = [source for t in tables for source in _sources(t)]
    seen: set[tuple] = set()
    for source in sources:  # one profile counted twice would weigh its windows double
        key = (source["created"], source["seconds"])
        if key in seen:
            raise EdgebertError(f"the profile made {source['created']} ({source['name']}) is in these tables twice; "
                                "pool each profile once")
        seen.add(key)
    windows: list[dict] = []
    calibration_windows: list[dict] = []
    entries: dict[str, dict] = {}
    for profile, t in enumerate(tables):
        offset = len(windows)
        windows += [{**w, "index": w["index"] + offset, "profile": profile} for w in t.data["windows"]]
        calibration_windows += t.data.get("calibration_windows", [])
        for e in t.data["entries"]:
            pooled = entries.setdefault(e["id"], {**copy.deepcopy({k: v for k, v in e.items() if k != "measurements"}),
                                                  "measurements": []})
            pooled["measurements"] += [{**m, "window": m["window"] + offset} for m in e["measurements"]]
    for e in entries.values():
        settle_entry(e)
    # The first table's provenance and settings; what is pooled is rebuilt below, and its validation
    # judged one profile (the pooled table is validated afresh).
    data = {k: copy.deepcopy(v) for k, v in first.data.items()
            if k not in ("windows", "calibration_windows", "entries", "validation")}
    data.update({
        "windows": windows, "calibration_windows": calibration_windows, "entries": list(entries.values()),
        "merged_from": sources,
        "command": command or "edgebert tables merge " + " ".join(map(str, paths)) + f" --out {out}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": sum(t.data.get("seconds", 0.0) for t in tables),  # profiling time, all profiles
    })
    settle_table(data)
    table = LatencyTable.from_dict(data, Path(out))
    table.save(out)
    return {"table": str(out), "profiles": len(data["merged_from"]), "windows": len(windows), "entries": len(entries)}


def _sources(t: LatencyTable) -> list[dict]:
    """The profiles a table is made of: itself, or those it pooled (a pool of pools lists every profile)."""
    return t.data.get("merged_from") or [{"name": t.name, "created": t.data.get("created"),
                                          "seconds": t.data.get("seconds"), "command": t.data.get("command")}]


def _check_alike(a: LatencyTable, b: LatencyTable) -> None:
    """Refuse, in one line, to pool tables of other devices or settings."""
    da, db = a.device, b.device
    differs = differences(da, db)
    if differs:
        raise EdgebertError(f"{b.name} was profiled on another device or precision than {a.name} ({differs[0]}: "
                            f"{db.get(differs[0])!r} against {da.get(differs[0])!r}); only one device's profiles pool")
    differs = _differing(a.settings, b.settings)
    if differs:
        raise EdgebertError(f"{b.name} was profiled with other settings than {a.name} ({', '.join(differs)}); "
                            "only profiles of the same settings pool")


def _differing(a: dict, b: dict) -> list[str]:
    return [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
