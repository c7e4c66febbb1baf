"""The CLI as a user meets it: help with examples, --json, one-line errors with exit 1."""

import json
import subprocess
import sys


from edgebert.cli.main import build_parser, main
from tests.conftest import shrink
from edgebert import zoo


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edgebert.cli.main", *args], capture_output=True, text=True, env=env)


def test_every_command_has_help_with_examples():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) >= {"zoo", "export", "bench"}
    for name, p in sub.choices.items():
        assert "examples:" in p.format_help(), name
        assert f"edgebert {name}" in p.format_help(), name


def test_zoo_json(capsys):
    assert main(["zoo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name", "params", "layers", "hidden"} <= set(rows[0])
    assert [r["name"] for r in rows] == zoo.names()


def _one_line_error(result, fragment):
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgebert: error:"), result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in lines[0]


def test_bad_inputs_get_one_line(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"hidden": 64, ')
    bad_expr = tmp_path / "expr.json"
    d = json.loads(shrink(zoo.get("tinybert-4")).to_json())
    d["layers"][0]["ffn"] = "W2(gelu(W1(x))"
    bad_expr.write_text(json.dumps(d))
    out_of_range = tmp_path / "range.json"
    d["layers"][0]["ffn"] = "W2(gelu(W1(x)))"
    d["hidden"] = 5000
    out_of_range.write_text(json.dumps(d))
    cases = [
        (["export", "tinybert4", "--out", str(tmp_path / "o1")], "did you mean 'tinybert-4'"),
        (["export", str(bad_json), "--out", str(tmp_path / "o2")], "malformed spec JSON"),
        (["export", str(bad_expr), "--out", str(tmp_path / "o3")], "layers[0].ffn: invalid MLP expression"),
        (["export", str(out_of_range), "--out", str(tmp_path / "o4")], "hidden: 5000 is out of range"),
        (["export", str(tmp_path / "missing"), "--out", str(tmp_path / "o5")], "model not found"),
    ]
    for args, fragment in cases:
        _one_line_error(run(*args), fragment)
    assert not any(p.name.startswith("o") for p in tmp_path.iterdir())  # nothing half-written


def test_usage_errors_exit_2():
    assert run("export").returncode == 2


def test_export_json_keys(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(shrink(zoo.get("efficientbert")).to_json())
    r = run("export", str(spec), "--out", str(tmp_path / "out"), "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert {"onnx_path", "max_abs_diff"} <= set(m)


def test_debug_switch_shows_the_traceback():
    import os

    r = run("export", "nope", env={**os.environ, "EDGEBERT_DEBUG": "1"})
    assert "Traceback" in r.stderr
