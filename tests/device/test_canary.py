import onnx

from edgebert.device import canary


def test_canary_is_cached_with_its_version(cache):
    path = canary.canary_path()
    assert path.parent == cache and f"v{canary.CANARY_VERSION}" in path.name
    assert canary.canary_path() == path  # second call reuses the file
    onnx.checker.check_model(onnx.load(str(path)))


def test_canary_is_deterministic():
    # Same bytes from every build: a table's nominal canary time must mean one model.
    assert canary._canary_model().SerializeToString() == canary._canary_model().SerializeToString()


def test_empty_model():
    model = onnx.load(str(canary.empty_path()))
    assert [n.op_type for n in model.graph.node] == ["Identity"]
