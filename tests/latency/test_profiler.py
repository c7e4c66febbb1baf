"""The profiler on a tiny grid: a real table, resumable after kill -9, and one-line errors."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edgebert.latency.table import LatencyTable
from edgebert.latency.units import UNITS

# Two timing windows of micro-models (24 entries each), no calibration models.
TINY_GRID = {"hidden": [128, 192], "heads": [1, 2], "head_size": [32], "inner": [32, 128],
             "embedding_sizes": [64], "act_widths": [32, 64], "op_widths": [32], "calibration": [], "passes": 2}


def cli(*args):
    return [sys.executable, "-m", "edgebert.cli.main", *args]


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("grid") / "grid.json"
    p.write_text(json.dumps(TINY_GRID))
    return p


@pytest.fixture(scope="module")
def resumed_table(tmp_path_factory, grid_file):
    """Start a profile, kill -9 it after its first window is saved, resume it."""
    out = tmp_path_factory.mktemp("table") / "t.json"
    partial = out.with_name(out.name + ".partial")
    proc = subprocess.Popen(cli("profile", "--grid", str(grid_file), "--out", str(out), "--graph-optimization", "none"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    first = None
    while time.time() < deadline and proc.poll() is None:
        if partial.is_file():
            data = json.loads(partial.read_text())
            if data["windows"]:
                first = data
                break
        time.sleep(0.2)
    assert first is not None, "the profile saved no window before the deadline"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # nothing under the final name before the end
    r = subprocess.run(cli("profile", "--grid", str(grid_file), "--out", str(out), "--graph-optimization", "none",
                           "--resume", "--json"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out, first, json.loads(r.stdout)


def test_resume_after_kill_finishes_without_remeasuring(resumed_table):
    out, first, result = resumed_table
    assert {"table", "entries", "seconds"} <= set(result)
    assert not out.with_name(out.name + ".partial").exists()
    table = LatencyTable.load(out)
    ids = [e["id"] for e in table.data["entries"]]
    assert len(ids) == len(set(ids)) == result["entries"] == 46
    kept = {e["id"]: e["measurements"] for e in first["entries"] if e["measurements"]}
    again = {e["id"]: e["measurements"][: len(kept[e["id"]])] for e in table.data["entries"] if e["id"] in kept}
    assert kept and again == kept  # what the killed run measured was kept, not measured again
    assert all(len(e["measurements"]) - TINY_GRID["passes"] * UNITS[e["unit"]].passes in (0, 1) for e in table.data["entries"])
    assert [w["index"] for w in table.data["windows"]] == list(range(len(table.data["windows"])))


def test_the_table_has_the_documented_top_level(resumed_table):
    data = json.loads(resumed_table[0].read_text())
    for key in ("schema_version", "device", "settings", "entries", "canary", "command", "graph_optimization"):
        assert key in data
    assert data["settings"]["graph_optimization"] == "none"
    assert data["canary"]["nominal_ms"] > 0
    e = data["entries"][0]
    assert {"unit", "key", "seq", "batch", "cost", "spread", "runs"} <= set(e)


def test_tables_commands_read_it(resumed_table, tmp_path):
    out = resumed_table[0]
    r = subprocess.run(cli("tables", "show", str(out), "--json"), capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["entries_per_unit"]["op"] == 12
    r = subprocess.run(cli("tables", "diff", str(out), str(out), "--json"), capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["median_abs_pct"] == 0.0


def test_merge_pools_every_profiles_windows_and_refuses_other_settings(resumed_table, tmp_path):
    """Two profiles pooled: each entry holds both profiles' measurements, each naming its own window
    in the pooled list, and its cost is their median; tables of other settings, or holding one
    profile twice, do not pool."""
    import statistics

    out = resumed_table[0]
    data = json.loads(out.read_text())
    slower = json.loads(out.read_text())
    slower["created"] = "2000-01-01T00:00:00Z"  # another profile of the same grid
    for e in slower["entries"]:
        for m in e["measurements"]:
            m["cost"] *= 1.2
    b = tmp_path / "b.json"
    b.write_text(json.dumps(slower))
    pooled = tmp_path / "pooled.json"
    r = subprocess.run(cli("tables", "merge", str(out), str(b), "--out", str(pooled), "--json"),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["profiles"] == 2
    merged = LatencyTable.load(pooled).data
    n = len(data["windows"])
    assert [w["index"] for w in merged["windows"]] == list(range(2 * n))
    assert len(merged["merged_from"]) == 2 and "validation" not in merged
    for e, a in zip(merged["entries"], data["entries"]):
        assert e["id"] == a["id"] and len(e["measurements"]) == 2 * len(a["measurements"])
        assert [m["window"] for m in e["measurements"]] == [m["window"] for m in a["measurements"]] + [
            m["window"] + n for m in a["measurements"]]
        assert e["cost"] == pytest.approx(statistics.median(m["cost"] for m in e["measurements"]))
    other = json.loads(out.read_text())
    other["settings"]["threads"] = 1
    c = tmp_path / "c.json"
    c.write_text(json.dumps(other))
    bad = tmp_path / "bad.json"
    _one_line(subprocess.run(cli("tables", "merge", str(out), str(c), "--out", str(bad)), capture_output=True,
                             text=True), "other settings")
    _one_line(subprocess.run(cli("tables", "merge", str(out), "--out", str(bad)), capture_output=True,
                             text=True), "usage: edgebert tables merge")
    _one_line(subprocess.run(cli("tables", "merge", str(pooled), str(b), "--out", str(bad)), capture_output=True,
                             text=True), "is in these tables twice")
    assert not bad.exists()


def _one_line(r, fragment):
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_bad_inputs_get_one_line(tmp_path, grid_file, resumed_table):
    table = resumed_table[0]
    bad_grid = tmp_path / "g.json"
    bad_grid.write_text('{"hidden": [128,')
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({**json.loads(table.read_text()), "schema_version": 0}))
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text(table.read_text()[:100])
    cases = [
        (("profile", "--target", "phone", "--out", str(tmp_path / "a.json")), "unknown target"),
        (("profile", "--grid", str(bad_grid), "--out", str(tmp_path / "b.json")), "malformed grid JSON"),
        (("predict", "tinybert-4", "--table", str(foreign)), "schema version 0 is not supported"),
        (("predict", "tinybert-4", "--table", str(corrupt)), "corrupted latency table"),
        (("predict", "bert-base", "--table", str(table)), "is outside"),
        (("predict", "tinybert-4", "--table", str(table), "--precision", "int8"), "has no int8 costs"),
    ]
    for args, fragment in cases:
        _one_line(subprocess.run(cli(*args), capture_output=True, text=True), fragment)
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("field, value, fragment", [
    ("passes", 0, "'passes' must be an integer from 1 to 20"),
    ("passes", True, "'passes' must be an integer from 1 to 20"),
    ("decision_windows", 0, "'decision_windows' must be an integer from 1 to 20"),
    ("decision_model", 7, "'decision_model' must be a zoo name"),
    ("decision_model", "no-such-model", "no-such-model"),
    ("hidden", [], "must be a non-empty list"),
    ("calibration", ["tinybert-4"] * 6, "at most 5 calibration models"),
    ("spinning", [1], "keys among"),
])
def test_a_grid_file_is_checked_field_by_field(tmp_path, field, value, fragment):
    from edgebert.errors import EdgebertError
    from edgebert.latency.profiler import load_grid

    p = tmp_path / "grid.json"
    p.write_text(json.dumps({**TINY_GRID, field: value}))
    with pytest.raises(EdgebertError, match=fragment):
        load_grid(str(p))


def test_a_grid_file_keeps_its_fields():
    from edgebert.latency.profiler import load_grid, quick_grid

    assert quick_grid().decision_model == "minilm-l6-h384" and load_grid("default").decision_model == "bert-base"
    assert quick_grid().decision_windows == 3 and load_grid("default").decision_windows == 5


def test_the_spread_bar_follows_a_noisy_machines_usual_and_never_drops_below_the_floor():
    from edgebert.latency.profiler import MAX_SPREAD, SPREAD_FACTOR, SPREAD_HISTORY, spread_limit

    assert spread_limit([0.9] * (SPREAD_HISTORY - 1)) == MAX_SPREAD  # too few windows to know the usual
    assert spread_limit([0.2] * SPREAD_HISTORY) == MAX_SPREAD  # a calm machine: the fixed bar
    noisy = [0.5, 0.55, 0.6, 0.6, 0.62, 0.65, 0.7, 0.9]
    assert spread_limit(noisy) == pytest.approx(SPREAD_FACTOR * 0.61)


def test_each_window_records_its_spread(resumed_table):
    out, _, _ = resumed_table
    windows = json.loads(out.read_text())["windows"]
    assert windows and all(w["spread"] >= 0 for w in windows)
