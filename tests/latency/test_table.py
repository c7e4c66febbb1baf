import json
import warnings

import pytest

from edgebert.latency.table import FingerprintWarning, LatencyTable, TableError
from tests.latency import synthetic


def test_interpolation_in_flops_is_exact_for_costs_linear_in_flops():
    t = synthetic.table()
    for unit, variant, key in [
        ("mha", None, {"hidden": 300, "heads": 3, "head_size": 45}),
        ("ffn", None, {"hidden": 384, "inner": 700}),
        ("ffn_act", "tanh", {"inner": 700}),
        ("op", "relu", {"width": 100}),
        ("shell", "trigram", {"hidden": 200, "embedding_size": 96}),
    ]:
        cost, outside = t.lookup(unit, variant, key, seq=128, batch=1)
        assert cost == pytest.approx(synthetic.true_cost(unit, variant, key), rel=1e-9)
        assert outside == []


def test_a_little_extrapolation_is_flagged_and_a_lot_refused():
    t = synthetic.table()
    _, outside = t.lookup("mha", None, {"hidden": 600, "heads": 4, "head_size": 64}, seq=128, batch=1)
    assert outside == ["hidden"]
    with pytest.raises(TableError, match="hidden=1024 is outside"):
        t.lookup("mha", None, {"hidden": 1024, "heads": 4, "head_size": 64}, seq=128, batch=1)
    with pytest.raises(TableError, match="seq=64 is outside"):
        t.lookup("op", "add", {"width": 64}, seq=64, batch=1)


def test_missing_entries_are_named():
    t = synthetic.table()
    t.data["entries"] = [e for e in t.data["entries"] if not (e["unit"] == "ffn" and e["key"] == {"hidden": 256, "inner": 256})]
    with pytest.raises(TableError, match="lacks the entry ffn"):
        t.lookup("ffn", None, {"hidden": 200, "inner": 256}, seq=128, batch=1)


def _write(tmp_path, data) -> str:
    p = tmp_path / "t.json"
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


def test_schema_and_corruption_are_refused_in_one_line(tmp_path):
    data = synthetic.table().data
    with pytest.raises(TableError, match="schema version 99 is not supported") as e:
        LatencyTable.load(_write(tmp_path, {**data, "schema_version": 99}))
    assert "\n" not in str(e.value)
    with pytest.raises(TableError, match="corrupted latency table"):
        LatencyTable.load(_write(tmp_path, '{"schema_version": 1, "device": {'))
    with pytest.raises(TableError, match="corrupted latency table"):
        LatencyTable.load(_write(tmp_path, {k: v for k, v in data.items() if k != "entries"}))


def test_a_foreign_fingerprint_warns_but_loads(tmp_path):
    data = synthetic.table().data
    data["device"] = {**data["device"], "cpu_model": "Some Other CPU"}
    with pytest.warns(FingerprintWarning, match="another device"):
        t = LatencyTable.load(_write(tmp_path, data))
    assert t.lookup("op", "add", {"width": 64}, seq=128, batch=1)[0] > 0


def test_the_same_machine_does_not_warn(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LatencyTable.load(_write(tmp_path, synthetic.table().data))


def test_save_is_atomic_and_round_trips(tmp_path):
    t = synthetic.table()
    p = t.save(tmp_path / "x.json")
    assert LatencyTable.load(p).data == json.loads(json.dumps(t.data))
    assert [f.name for f in tmp_path.iterdir()] == ["x.json"]
