"""The reference models every timing window runs beside what it measures.

The canary is a fixed, deterministic little transformer-ish MLP (MatMul + Add,
GELU or Tanh, residual + LayerNorm; 4 layers of width 256 over 128 rows, about
1 ms on a 2-core Xeon). Its time in a window is the machine's speed in that
window: figures are compared as `median / canary median`, and a table's
nominal canary time converts them back to milliseconds.

The empty model (one Identity on a single float) measures what every
`session.run` costs before any op runs: ORT's dispatch plus Python's binding.

Both are built in code and written once to the cache dir. Change what either
computes and you must bump its version: the name is how tables know which
canary their nominal time belongs to.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CANARY_VERSION = 1
EMPTY_VERSION = 1
OPSET = 17  # the project's export opset (LayerNormalization is an ONNX op from 17)

ROWS, WIDTH, LAYERS = 128, 256, 4
CANARY_NAME = f"canary-v{CANARY_VERSION}"
EMPTY_NAME = f"empty-v{EMPTY_VERSION}"


def cache_dir() -> Path:
    """$EDGEBERT_CACHE, else ~/.cache/edgebert (created)."""
    path = Path(os.environ.get("EDGEBERT_CACHE") or Path.home() / ".cache" / "edgebert")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _canary_model() -> onnx.ModelProto:
    rng = np.random.default_rng(20240501)  # fixed: the canary is the same bytes everywhere
    inits, nodes = [], []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    h = "x"  # (ROWS, WIDTH)
    scale = 1.0 / np.sqrt(WIDTH)  # keeps activations O(1) through the layers
    for i in range(LAYERS):
        w = const(f"w{i}", rng.standard_normal((WIDTH, WIDTH)) * scale)
        b = const(f"b{i}", rng.standard_normal(WIDTH) * 0.1)
        nodes += [helper.make_node("MatMul", [h, w], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", b], [f"lin{i}"])]
        if i % 2 == 0:
            nodes.append(helper.make_node("Tanh", [f"lin{i}"], [f"act{i}"]))
        else:  # erf-GELU, the pattern ORT fuses into one Gelu kernel, as in BERT
            half, sqrt2, one = (const(f"{n}{i}", np.array(v)) for n, v in
                                (("half", 0.5), ("sqrt2", np.sqrt(2.0)), ("one", 1.0)))
            nodes += [helper.make_node("Div", [f"lin{i}", sqrt2], [f"d{i}"]),
                      helper.make_node("Erf", [f"d{i}"], [f"e{i}"]),
                      helper.make_node("Add", [f"e{i}", one], [f"e1{i}"]),
                      helper.make_node("Mul", [f"lin{i}", f"e1{i}"], [f"m{i}"]),
                      helper.make_node("Mul", [f"m{i}", half], [f"act{i}"])]
        gamma = const(f"g{i}", np.ones(WIDTH))
        beta = const(f"be{i}", np.zeros(WIDTH))
        nodes += [helper.make_node("Add", [h, f"act{i}"], [f"res{i}"]),
                  helper.make_node("LayerNormalization", [f"res{i}", gamma, beta], [f"h{i}"], axis=-1)]
        h = f"h{i}"
    nodes.append(helper.make_node("Identity", [h], ["y"]))
    graph = helper.make_graph(
        nodes, CANARY_NAME,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [ROWS, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [ROWS, WIDTH])],
        initializer=inits,
    )
    return _finish(graph)


def _empty_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], EMPTY_NAME,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return _finish(graph)


def _finish(graph) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgebert")
    model.ir_version = 8  # readable by every ORT from 1.10 on, old boards included
    onnx.checker.check_model(model)
    return model


def _cached(name: str, build) -> Path:
    path = cache_dir() / f"{name}.onnx"
    if not path.exists():
        # temp file + rename: concurrent profilers never see half a model
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(build().SerializeToString())
        os.replace(tmp, path)
    return path


def canary_path() -> Path:
    """The canary ONNX file, built on first use."""
    return _cached(CANARY_NAME, _canary_model)


def empty_path() -> Path:
    """The empty (Identity) ONNX file, built on first use."""
    return _cached(EMPTY_NAME, _empty_model)


# Input specs as plain dicts (the worker's job form); timing.py wraps them.
CANARY_INPUTS = [{"name": "x", "shape": [ROWS, WIDTH], "dtype": "float32", "low": -1.0, "high": 1.0, "fill": None}]
EMPTY_INPUTS = [{"name": "x", "shape": [1], "dtype": "float32", "low": 0.0, "high": 1.0, "fill": None}]
