"""The benchmark scripts' own arithmetic (tools/), on synthetic records: what they print must follow from what was recorded."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
search_bench = pytest.importorskip("search_bench")


def _record(machine: str, strategy: str, speedup: float, seed: int, accuracy: float) -> dict:
    from edgebert.search.space import DEFAULT_MIN_LAYERS, SPACE_VERSION
    from edgebert.search.verify import VERIFY_VERSION

    fp = {"cpu_model": machine, "physical_cores": 2, "isa": {"avx2": True}, "onnxruntime": "1.31.1"}
    return {"environment": {"fingerprint": fp}, "strategy": strategy, "speedup": speedup, "quick": speedup != 20,
            "seed": seed, "space_version": SPACE_VERSION, "verify_version": VERIFY_VERSION,
            "min_layers": DEFAULT_MIN_LAYERS, "best": {"dev": {"accuracy": accuracy}}}


def _rows(table: str) -> dict[tuple[str, str, str], list[str]]:
    """(search, against, budget) -> [pairs, mean, interval, tally]."""
    out = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[tuple(cells[:3])] = cells[3:]
    return out


def test_paired_table_pairs_by_machine_budget_and_seed():
    records = [
        _record("cpu A", "progressive", 40, 0, 0.86), _record("cpu A", "hand", 40, 0, 0.85),
        _record("cpu A", "progressive", 40, 1, 0.84), _record("cpu A", "hand", 40, 1, 0.86),
        _record("cpu B", "progressive", 40, 0, 0.88), _record("cpu B", "hand", 40, 0, 0.88),
        _record("cpu B", "progressive", 20, 0, 0.89), _record("cpu B", "hand", 20, 0, 0.87),
        _record("cpu B", "hand", 20, 1, 0.10),  # no searched run of seed 1 on cpu B at 1/20: unpaired
        _record("cpu A", "random", 40, 0, 0.80),
        {**_record("cpu A", "progressive", 40, 2, 0.99), "space_version": 1},  # an earlier space: left out
        _record("cpu A", "hand", 40, 2, 0.50),
        # A search with another depth floor (here a run made before the setting existed: one layer)
        # meets the hand design and its own space's random search only.
        {k: v for k, v in _record("cpu A", "progressive", 40, 0, 0.87).items() if k != "min_layers"},
        {**_record("cpu A", "random", 40, 0, 0.84), "min_layers": 1},
    ]
    rows = _rows(search_bench.paired_table(records))
    # 1/40: +1, -2, 0 points; 1/20: +2; all four: mean +0.25.
    assert rows[("progressive", "hand", "1/40 (quick)")][:2] == ["3", "-0.33"]
    assert rows[("progressive", "hand", "1/40 (quick)")][3] == "1 / 1 / 1"
    assert rows[("progressive", "hand", "1/20")] == ["1", "+2.00", "—", "1 / 0 / 0"]
    assert rows[("progressive", "hand", "all")][:2] == ["4", "+0.25"]
    low, high = (float(x) for x in rows[("progressive", "hand", "all")][2].split(" to "))
    assert low < 0.25 < high
    assert rows[("progressive", "random", "1/40 (quick)")] == ["1", "+6.00", "—", "1 / 0 / 0"]
    assert ("progressive", "random", "all") not in rows  # one budget: no pooled row
    shallow = "progressive (≥ 1 layer)"
    assert rows[(shallow, "hand", "1/40 (quick)")] == ["1", "+2.00", "—", "1 / 0 / 0"]
    assert rows[(shallow, "random (≥ 1 layer)", "1/40 (quick)")] == ["1", "+3.00", "—", "1 / 0 / 0"]
    assert not any(k[0] == shallow and k[1] == "random" for k in rows)


def test_price_winners_summary_reads_priced_over_measured_shares():
    price_winners = pytest.importorskip("price_winners")
    # Two tables over four runs: the first prices every share 10 % dear, the second within 1-4 %.
    rows = [{"priced_over_measured": [1.10, r]} for r in (0.99, 1.02, 1.04, 0.97)]
    old, new = price_winners.summary({"labels": ["old", "new"], "rows": rows})
    assert old["median_abs_pct"] == pytest.approx(10.0)
    assert old["signed_median_pct"] == pytest.approx(10.0)
    assert old["within_5pct"] == 0
    assert new["median_abs_pct"] == pytest.approx(2.5)  # |errors| 1, 2, 3, 4
    assert new["max_abs_pct"] == pytest.approx(4.0)
    assert new["signed_median_pct"] == pytest.approx(0.5)  # errors -3, -1, 2, 4
    assert new["within_5pct"] == 1


def test_canary_precision_follow_reads_slope_and_spread():
    canary_precision = pytest.importorskip("canary_precision")
    canary = [1.0, 1.2, 1.5, 0.9, 1.1]
    # A model that slows exactly as the canary does: ratio constant, spread 0, slope 0.
    same = canary_precision.follow([10 * c for c in canary], canary)
    assert same["sd_pct"] == pytest.approx(0.0, abs=1e-9)
    assert same["slope"] == pytest.approx(0.0, abs=1e-9)
    # A model whose time does not move at all: its ratio rises one for one with the canary's speed.
    still = canary_precision.follow([10.0] * len(canary), canary)
    assert still["slope"] == pytest.approx(1.0)
    assert still["sd_pct"] > 10


def test_proxy_rank_names_the_depths_each_record_drew_from():
    proxy_rank = pytest.importorskip("proxy_rank")
    assert proxy_rank.depth_of("kd", {"min_layers": 2}) == "≥ 2"
    assert proxy_rank.depth_of("kd", {}) == "≥ 1"  # recorded before the floor was: drawn from one layer
    assert proxy_rank.depth_of("supernet", {"min_layers": 2}) == "the structure's"
