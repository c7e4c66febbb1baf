"""Tiny ONNX models built with onnx.helper, and a private cache dir for the canary."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgebert.device.timing import InputSpec, TimingPolicy, Workload


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    # One cache per test session: the canary is built once, never in ~/.cache.
    path = tmp_path_factory.getbasetemp() / "edgebert-cache"
    monkeypatch.setenv("EDGEBERT_CACHE", str(path))
    return path


def _save(model_graph, path) -> str:
    model = helper.make_model(model_graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture(scope="session")
def embed_onnx(tmp_path_factory) -> str:
    """ids (1, 8) int64 -> Gather from a 50 x 16 table -> ReduceSum: an int-input model."""
    table = numpy_helper.from_array(np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["e"]),
         helper.make_node("ReduceSum", ["e"], ["y"], keepdims=0)],
        "embed",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        initializer=[table],
    )
    return _save(graph, tmp_path_factory.mktemp("models") / "embed.onnx")


@pytest.fixture(scope="session")
def matmul_onnx(tmp_path_factory) -> str:
    """x (4, 32) float32 and mask (4, 32) int32 -> MatMul 32x32, masked: a two-input model."""
    w = numpy_helper.from_array(np.eye(32, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]),
         helper.make_node("Cast", ["mask"], ["m"], to=TensorProto.FLOAT),
         helper.make_node("Mul", ["h", "m"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32]),
         helper.make_tensor_value_info("mask", TensorProto.INT32, [4, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 32])],
        initializer=[w],
    )
    return _save(graph, tmp_path_factory.mktemp("models") / "matmul.onnx")


@pytest.fixture
def embed(embed_onnx) -> Workload:
    return Workload(name="embed", onnx_path=embed_onnx, inputs=[InputSpec(name="ids", shape=[1, 8], high=50)])


@pytest.fixture
def matmul(matmul_onnx) -> Workload:
    return Workload(name="matmul", onnx_path=matmul_onnx, inputs=[
        InputSpec(name="x", shape=[4, 32], dtype="float32", low=-1, high=1),
        InputSpec(name="mask", shape=[4, 32], dtype="int32", fill=1),
    ])


@pytest.fixture
def quick() -> TimingPolicy:
    """Few runs: these tests check bookkeeping, never speed."""
    return TimingPolicy(threads=1, warmup=1, runs=4, rounds=2)
