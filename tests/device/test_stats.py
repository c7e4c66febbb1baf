import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgebert.device.stats import P99_MIN_RUNS, summarize


def test_median_and_p90_interpolate():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s["median_ms"] == 2.5
    assert s["p90_ms"] == pytest.approx(3.7)
    assert s["min_ms"] == 1.0 and s["max_ms"] == 4.0 and s["runs"] == 4


def test_p99_only_from_enough_runs():
    assert summarize([1.0] * (P99_MIN_RUNS - 1))["p99_ms"] is None
    s = summarize([float(i) for i in range(P99_MIN_RUNS)])
    assert s["p99_ms"] == pytest.approx(197.01)


def test_spread_is_central_width_over_median():
    s = summarize([float(i) for i in range(1, 12)])  # p10 = 2, median = 6, p90 = 10
    assert s["spread"] == pytest.approx((10 - 2) / 6)


def test_single_run_has_zero_std():
    assert summarize([5.0])["std_ms"] == 0.0


def test_empty_is_an_error():
    with pytest.raises(ValueError):
        summarize([])


@given(st.lists(st.floats(min_value=0.001, max_value=1e4), min_size=1, max_size=300))
def test_order_of_statistics(times):
    s = summarize(times)
    assert s["min_ms"] <= s["median_ms"] <= s["p90_ms"] <= s["max_ms"] * (1 + 1e-12)
    assert (s["p99_ms"] is None) == (len(times) < P99_MIN_RUNS)
    assert s["spread"] >= 0 and not math.isnan(s["spread"])
