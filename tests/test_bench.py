"""bench: models and a baseline in one interleaved window; the graph-optimization decision
comes from this machine's latency table when one records it."""

import pytest

from edgebert import zoo
from edgebert.bench import bench, markdown
from edgebert.errors import EdgebertError
from edgebert.latency import catalog
from tests.conftest import shrink
from tests.latency import synthetic


@pytest.fixture()
def tables_here(tmp_path, monkeypatch):
    """An empty shipped folder and local folder, so only this test's tables count."""
    shipped, local = tmp_path / "shipped", tmp_path / "local"
    shipped.mkdir()
    local.mkdir()
    monkeypatch.setattr(catalog, "table_dirs", lambda: [shipped, local])
    return shipped, local


def test_bench_times_models_against_the_baseline_in_one_window(tmp_path, tables_here):
    small, big = tmp_path / "small.json", tmp_path / "big.json"
    small.write_text(shrink(zoo.get("bert-tiny"), hidden=32, max_layers=1).to_json())
    big.write_text(shrink(zoo.get("bert-base"), hidden=128, max_layers=3).to_json())
    r = bench([str(small)], baseline=str(big), seq_len=16, runs=6, rounds=2, memory=False)
    row, base = r["results"][0], r["baseline"]
    assert row["speedup_vs_baseline"] == pytest.approx(base["p50_ms"] / row["p50_ms"])
    assert row["params"] < base["params"] and row["flops"] < base["flops"]
    assert r["settings"]["graph_optimization"] == "none" and r["settings"]["graph_optimization_from"] is None
    assert "graph optimization `none`" in markdown(r)


def test_the_recorded_decision_is_the_matching_tables(tables_here):
    shipped, _ = tables_here
    t = synthetic.table()
    t.data["settings"]["graph_optimization"] = "fusion"
    t.save(shipped / "here.json")
    threads = t.settings["threads"]
    assert catalog.recorded_graph_optimization(threads=threads, precision="fp32") == ("fusion", "here.json")
    assert catalog.recorded_graph_optimization(threads=threads, precision="int8")[1] is None  # no int8 table
    assert catalog.recorded_graph_optimization(threads=threads + 1, precision="fp32")[1] is None


def test_bench_needs_a_model():
    with pytest.raises(EdgebertError):
        bench([], baseline="bert-base")
