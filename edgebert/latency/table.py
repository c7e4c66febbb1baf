"""LatencyTable: one device x settings, as versioned JSON with provenance, and its lookup.

    table = LatencyTable.load("latency_tables/xeon-2t-fp32-s128-b1.json")
    cost, extrapolated = table.lookup("mha", None, {"hidden": 540, "heads": 12, "head_size": 45}, seq=128, batch=1)

File layout (top level): schema_version, device (the fingerprint), settings
(threads, precision, spinning, seq_lens, batch, opset, export mode, graph
optimization decision, grid), canary (name, nominal_ms), command, created,
windows, calibration, entries. Each entry: unit, variant, key (grid
coordinates), seq, batch, cost (canary-normalised marginal cost), cost_ms (at
nominal speed), spread, runs, window.

Costs are stored canary-normalised: divided by the canary's median in the same
window. `nominal_ms` converts them back to milliseconds at the speed the
machine had while profiling.

Lookup interpolates multilinearly between grid points, each axis weighted by
the unit's FLOPs rather than by raw dimension (an FFN's cost grows with
hidden^2 along the ratio grid), and reports which axes it had to extrapolate.
"""

from __future__ import annotations

import bisect
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebert.errors import EdgebertError
from edgebert.files import atomic_write_json
from edgebert.latency.units import UNITS, unit_flops

SCHEMA_VERSION = 1
REQUIRED = ("schema_version", "device", "settings", "entries")
# How far past the grid's edge a dimension may be priced (with a warning): beyond
# this a prediction would be a guess, and the query is refused.
MAX_EXTRAPOLATION = 0.25


class TableError(EdgebertError):
    pass


class FingerprintWarning(UserWarning):
    pass


@dataclass
class LatencyTable:
    data: dict[str, Any]
    path: Path | None = None
    _index: dict = field(default_factory=dict, repr=False)

    # -- files -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, *, check_device: bool = True) -> "LatencyTable":
        """Load and validate; another schema or a corrupted file is refused in one line; a
        table from another device or settings is usable, with a FingerprintWarning."""
        p = Path(path)
        if not p.is_file():
            raise TableError(f"latency table not found: {p}")
        try:
            data = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TableError(f"{p}: corrupted latency table ({getattr(e, 'msg', e)})") from None
        table = cls.from_dict(data, p)
        if check_device:
            mismatch = table.device_mismatch()
            if mismatch:
                warnings.warn(f"{p.name} was made on another device or settings ({mismatch}); "
                              "its predictions may not hold here", FingerprintWarning, stacklevel=2)
        return table

    @classmethod
    def from_dict(cls, data: Any, path: Path | None = None) -> "LatencyTable":
        where = path or "latency table"
        if not isinstance(data, dict) or any(k not in data for k in REQUIRED):
            raise TableError(f"{where}: corrupted latency table (needs {', '.join(REQUIRED)})")
        if data["schema_version"] != SCHEMA_VERSION:
            raise TableError(f"{where}: schema version {data['schema_version']} is not supported "
                             f"(this edgebert reads version {SCHEMA_VERSION}); re-run `edgebert profile`")
        if not isinstance(data["entries"], list):
            raise TableError(f"{where}: corrupted latency table (entries is not a list)")
        for i, e in enumerate(data["entries"]):
            if (not isinstance(e, dict) or not {"unit", "key", "seq", "batch", "cost"} <= set(e)
                    or e["unit"] not in UNITS or not isinstance(e["key"], dict)
                    or not set(UNITS[e["unit"]].axes) <= set(e["key"]) | set(UNITS[e["unit"]].defaults or {})):
                raise TableError(f"{where}: corrupted latency table (entry {i} is malformed)")
        return cls(data, path)

    def save(self, path: str | Path | None = None) -> Path:
        p = Path(path or self.path)
        atomic_write_json(p, self.data, indent=1)
        self.path = p
        return p

    # -- provenance ------------------------------------------------------------------------

    @property
    def settings(self) -> dict:
        return self.data["settings"]

    @property
    def device(self) -> dict:
        return self.data["device"]

    @property
    def nominal_canary_ms(self) -> float:
        return self.data["canary"]["nominal_ms"]

    @property
    def calibration(self) -> dict:
        return self.data.get("calibration") or {"a": 1.0, "b": 0.0, "models": []}

    @property
    def name(self) -> str:
        return self.path.name if self.path else "(unsaved table)"

    def device_mismatch(self) -> str:
        """'' when this machine matches the table's device and settings, else what differs."""
        from edgebert.device.fingerprint import differences, fingerprint

        here = fingerprint(self.settings["threads"], self.settings["precision"], spinning=self.settings["spinning"])
        there = self.device
        diffs = differences(there, here)
        return ", ".join(f"{k}: {there.get(k)!r} here {here.get(k)!r}"
                         + (" (the table predates the CPU's identity; its clock stands in)" if k == "cpu_freq_mhz" else "")
                         for k in diffs[:3])

    # -- lookup ----------------------------------------------------------------------------------

    def measured_cells(self, unit: str, variant: str | None, batch: int) -> tuple[dict, dict]:
        """({(seq, *axis values): measured cost}, {same: its standard error or None}) for one
        unit/variant/batch, before any fit."""
        axes, defaults = UNITS[unit].axes, UNITS[unit].defaults or {}
        cells, errors = {}, {}
        for e in self.data["entries"]:
            if e["unit"] == unit and e.get("variant") == variant and e["batch"] == batch:
                point = (e["seq"], *(e["key"].get(a, defaults.get(a)) for a in axes))
                cells[point] = e["cost"]
                errors[point] = standard_error([m["cost"] for m in e.get("measurements") or []])
        return cells, errors

    def _grid(self, unit: str, variant: str | None, batch: int):
        """{(seq, *axis values): cost} for one unit/variant/batch, as the predictor reads it."""
        k = (unit, variant, batch)
        if k not in self._index:
            cells, errors = self.measured_cells(unit, variant, batch)
            self._index[k] = fitted(cells, UNITS[unit], errors) if UNITS[unit].features else cells
        return self._index[k]

    def cached(self, key: str, make):
        """A value derived from this table's data, computed once per table object."""
        if key not in self._index:
            self._index[key] = make()
        return self._index[key]

    def points(self, unit: str, variant: str | None, *, seq: int, batch: int) -> list[dict]:
        """The grid keys profiled for one unit/variant at (seq, batch)."""
        axes = UNITS[unit].axes
        return [dict(zip(axes, point[1:])) for point in self._grid(unit, variant, batch) if point[0] == seq]

    def lookup(self, unit: str, variant: str | None, key: dict, *, seq: int, batch: int) -> tuple[float, list[str]]:
        """Interpolated canary-normalised cost, and the axes on which the query lies outside the grid."""
        cells = self._grid(unit, variant, batch)
        label = f"{unit}{'/' + variant if variant else ''}"
        if not cells:
            raise TableError(f"{self.name} has no '{label}' entries at batch {batch}; "
                             f"profile with the grid that covers it")
        axes = ("seq", *UNITS[unit].axes)
        query = {"seq": seq, **key}
        values = [sorted({c[i] for c in cells}) for i in range(len(axes))]
        brackets, outside = [], []
        for i, axis in enumerate(axes):
            lo, hi, is_out = _bracket(values[i], query[axis])
            if is_out:
                grid = values[i]
                edge = grid[0] if query[axis] < grid[0] else grid[-1]
                if axis == "seq" or len(grid) == 1 or abs(query[axis] - edge) > MAX_EXTRAPOLATION * edge:
                    what = "profiled at" if axis == "seq" else "covers"
                    raise TableError(f"{label} {axis}={query[axis]:g} is outside {self.name}, which {what} "
                                     f"{axis} {grid[0]:g}..{grid[-1]:g}; profile a grid that covers it")
                outside.append(axis)
            if lo == hi:
                brackets.append([(lo, 1.0)])
                continue
            f = lambda v: unit_flops(unit, variant, {**query, axis: v}, v if axis == "seq" else seq, batch)  # noqa: E731
            f_lo, f_hi, f_q = f(lo), f(hi), f(query[axis])
            t = (f_q - f_lo) / (f_hi - f_lo) if f_hi != f_lo else (query[axis] - lo) / (hi - lo)
            brackets.append([(lo, 1.0 - t), (hi, t)])
        total = 0.0
        for corner in _product(brackets):
            point = tuple(v for v, _ in corner)
            if point not in cells:
                missing = dict(zip(axes, point))
                raise TableError(f"{self.name} lacks the entry {label} {missing}; re-profile with a complete grid")
            w = 1.0
            for _, wi in corner:
                w *= wi
            total += w * cells[point]
        return total, outside


def standard_error(windows: list[float]) -> float | None:
    """The standard error of the median of an entry's window costs (1.253 x 1.483 x MAD / sqrt(n));
    None with fewer than three windows."""
    if len(windows) < 3:
        return None
    import numpy as np

    w = np.asarray(windows, float)
    return float(1.253 * 1.483 * np.median(np.abs(w - np.median(w))) / len(w) ** 0.5)


def fitted(cells: dict[tuple, float], unit, errors: dict[tuple, float | None] | None = None) -> dict[tuple, float]:
    """`cells` ({(seq, *axis values): cost}) with each group (same seq and `unit.fit_within` values)
    replaced by its least-squares fit on `unit.features`, by relative error (the noise is a share of
    each cost, and an ffn group's costs span 6x), each cell then moved back toward its measured cost
    by how much of its distance from the fit is more than noise; a group with no more cells than
    features keeps its measured costs.

    Where the fit's form holds, a cell's distance from it is its noise, and the fit averages that away
    (two profiles of one machine then predict whole models 5 % apart instead of 16 %). Where it does
    not (the 2.6 GHz AMX Xeon, hidden 128: the reference layer 11 % above the attention fit and 8 %
    above the FFN fit, one head and inner 32 10 % and 5 % below, each cell's windows within 3 %), the
    fit's error is the same in every profile, and the smallest layers, differences of those cells,
    came out 70 % too dear. So each cell keeps the share tau² / (tau² + se²) of its residual r
    (empirical Bayes): se its relative standard error over windows, tau² the group's residual variance
    beyond that noise, sum(r²) / (n - p) - mean(se²), never below 0."""
    import numpy as np

    axes = ("seq", *unit.axes)
    groups: dict[tuple, list[tuple]] = {}
    for point in cells:
        key = dict(zip(axes, point))
        groups.setdefault(tuple(key[a] for a in ("seq", *unit.fit_within)), []).append(point)
    out = dict(cells)
    for points in groups.values():
        x = np.array([unit.features(dict(zip(axes, p))) for p in points])
        if len(points) <= x.shape[1]:
            continue
        se = [None if errors is None else errors.get(p) for p in points]
        fit, _ = shrunk_fit(x, np.array([cells[p] for p in points]), None if None in se else np.asarray(se, float))
        out.update({p: float(v) for p, v in zip(points, fit)})
    return out


def shrunk_fit(x, y, se=None):
    """Least-squares fit of y (n) on the features x (n x p) by relative error, each value then moved back
    toward y by the share tau² / (tau² + se²) of its residual that is more than noise (`fitted`); with
    se None (standard errors unknown), the fit alone. Returns the n values and the fit's p coefficients."""
    import numpy as np

    w = 1.0 / np.maximum(np.abs(y), 1e-12)
    coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
    fit = x @ coef
    if se is None:
        return fit, coef
    rel_se2 = (se * w) ** 2
    resid = (y - fit) * w
    tau2 = max(0.0, float(resid @ resid) / (len(y) - x.shape[1]) - float(rel_se2.mean()))
    return fit + (y - fit) * tau2 / np.maximum(tau2 + rel_se2, 1e-300), coef


def _bracket(grid: list, q) -> tuple[Any, Any, bool]:
    """Neighbouring grid values around q (the two nearest at an edge, for extrapolation)."""
    if len(grid) == 1:
        return grid[0], grid[0], q != grid[0]
    if q in grid:
        return q, q, False
    i = bisect.bisect_left(grid, q)
    if i == 0:
        return grid[0], grid[1], True
    if i == len(grid):
        return grid[-2], grid[-1], True
    return grid[i - 1], grid[i], False


def _product(brackets: list[list[tuple[Any, float]]]):
    if not brackets:
        yield ()
        return
    for head in brackets[0]:
        for rest in _product(brackets[1:]):
            yield (head, *rest)
