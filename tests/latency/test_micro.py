"""Every registered unit's micro-model exports and runs in ONNX Runtime, with and without
ORT's transformer fusion (the profiler's decision may be either)."""

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
FIRST = {}
for unit, variant, key in GRID.entries():
    FIRST.setdefault(unit, (variant, key))


def test_the_grid_covers_every_registered_unit():
    assert set(FIRST) == set(UNITS)


@pytest.mark.parametrize("graph_optimization", ["none", "fusion"])
@pytest.mark.parametrize("unit", sorted(UNITS))
def test_micro_model_exports_and_runs(unit, graph_optimization, tmp_path):
    variant, key = FIRST[unit]
    path = tmp_path / "m.onnx"
    inputs = export_micro(unit, variant, key, UNITS[unit].chain[0], 16, 1, path, int8=False,
                          graph_optimization=graph_optimization)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = make_feeds(session, {"name": unit, "inputs": [asdict(i) for i in inputs]}, np.random.default_rng(0))
    outputs = session.run(None, feeds)
    assert all(np.isfinite(o).all() for o in outputs if o.dtype.kind == "f")
