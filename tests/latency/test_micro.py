"""Every registered unit's micro-model, every activation and operation variant included,
exports and runs in ONNX Runtime with and without ORT's transformer fusion, in fp32 and
INT8 (the profiler's decision may be any of these)."""

from dataclasses import asdict

import numpy as np
import onnxruntime as ort
import pytest

from edgebert.device.worker import make_feeds
from edgebert.latency.micro import export_micro
from edgebert.latency.profiler import Grid
from edgebert.latency.units import UNITS

# Widths where hidden is not a multiple of the heads (3 x 32 attention at hidden 128), as in real grids.
GRID = Grid(name="micro-test", hidden=[128], heads=[3], head_size=[32], inner=[64], embedding_sizes=[64],
            act_widths=[32], op_widths=[32], calibration=[])
ENTRIES = {(unit, variant): key for unit, variant, key in GRID.entries()}  # one key per unit and variant


def test_the_grid_covers_every_registered_unit():
    assert {unit for unit, _ in ENTRIES} == set(UNITS)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("graph_optimization", ["none", "fusion"])
@pytest.mark.parametrize("unit,variant", sorted(ENTRIES, key=str))
def test_micro_model_exports_and_runs(unit, variant, graph_optimization, precision, tmp_path):
    path = tmp_path / "m.onnx"
    inputs = export_micro(unit, variant, ENTRIES[unit, variant], max(UNITS[unit].chain), 16, 1, path,
                          int8=precision == "int8", graph_optimization=graph_optimization)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = make_feeds(session, {"name": unit, "inputs": [asdict(i) for i in inputs]}, np.random.default_rng(0))
    outputs = session.run(None, feeds)
    assert all(np.isfinite(o).all() for o in outputs if o.dtype.kind == "f")
