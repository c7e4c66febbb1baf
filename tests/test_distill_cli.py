"""The training commands end to end on tiny models and a few dozen examples:
finetune-teacher, distill, eval (PyTorch and ONNX), resume, the teacher-output cache, bad input."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from edgebert import zoo
from edgebert.cli.main import main
from edgebert.errors import EdgebertError
from edgebert.distill import DistillConfig, distill
from edgebert.distill.run import checkpoint_dir, default_task_stage, default_warmup_stage
from edgebert.hub import load_model, save_model
from edgebert.modeling import build
from tests.conftest import shrink
from tests.test_distill import tiny_glue  # noqa: F401 - fixture

BERT_VOCAB = 30522  # the embedded tokenizer's vocabulary
STEPS = ["--max-steps", "2", "--batch-size", "8", "--max-length", "64"]  # tiny specs have 64 positions
KEYS = {"out", "task", "metric", "dev", "seconds", "examples_per_s"}


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def tiny_spec(hidden: int, layers: int, vocab: int = BERT_VOCAB):
    return replace(shrink(zoo.get("minilm-l6-h384"), hidden=hidden, max_layers=layers), vocab_size=vocab)


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    d = tmp_path_factory.mktemp("specs")
    for name, spec in (("teacher", tiny_spec(64, 4)), ("student", tiny_spec(48, 2)), ("wide", tiny_spec(80, 2))):
        (d / f"{name}.json").write_text(spec.to_json())
    return d


@pytest.fixture(scope="module")
def teacher(tiny_glue, specs, tmp_path_factory):  # noqa: F811
    """A tiny teacher fine-tuned for two steps by the CLI (a spec file takes the embedded tokenizer)."""
    out = tmp_path_factory.mktemp("runs") / "teacher"
    rc = main(["finetune-teacher", "--teacher", str(specs / "teacher.json"), "--task", "sst2",
               "--data", str(tiny_glue), "--out", str(out), *STEPS])
    assert rc == 0
    return out


def small_run(tiny_glue, teacher, specs, out, **kw):  # noqa: F811
    cfg = DistillConfig(student=str(specs / "student.json"), teacher=str(teacher), task="sst2", data=tiny_glue, out=out,
                        warmup=replace(default_warmup_stage(), max_steps=3, batch_size=8),
                        task_stage=replace(default_task_stage(), max_steps=4, batch_size=8), max_length=64, **kw)
    return cfg


def test_finetune_distill_and_eval_report_the_checked_keys(tiny_glue, teacher, specs, tmp_path, capsys):  # noqa: F811
    report = json.loads((teacher / "finetune.json").read_text())
    assert KEYS <= set(report) and report["metric"] == "accuracy" and "accuracy" in report["dev"]

    out = tmp_path / "student"
    rc, stdout, _ = cli(capsys, "distill", specs / "student.json", "--teacher", teacher, "--task", "sst2",
                        "--data", tiny_glue, "--out", out, *STEPS, "--warmup-examples", "16", "--json")
    assert rc == 0
    r = json.loads(stdout)
    assert KEYS <= set(r) and r["out"] == str(out) and r["init"] == "extract" and r["mapping"] == [2, 4]
    assert [s["name"] for s in r["stages"]] == ["warmup", "task"]
    assert (out / "distill.json").is_file() and not checkpoint_dir(out).exists()
    loaded = load_model(out)
    assert loaded.trained_head and loaded.tokenizer_dir == out

    rc, stdout, _ = cli(capsys, "eval", out, "--task", "sst2", "--data", tiny_glue, "--json", "--max-length", "64")
    e = json.loads(stdout)
    assert rc == 0 and KEYS - {"out"} <= set(e) and e["backend"] == "torch"
    assert e["dev"] == pytest.approx(r["dev"])

    # the exported file scores the same through ONNX Runtime; INT8 is scored too
    exp = tmp_path / "export"
    assert cli(capsys, "export", out, "--out", exp, "--int8")[0] == 0
    for extra, precision in (([], "fp32"), (["--int8"], "int8")):
        rc, stdout, _ = cli(capsys, "eval", exp, "--task", "sst2", "--data", tiny_glue, "--json", "--max-length", "64", *extra)
        o = json.loads(stdout)
        assert rc == 0 and o["backend"] == "onnxruntime" and o["precision"] == precision
        if precision == "fp32":
            assert o["dev"] == pytest.approx(e["dev"])


def test_a_regression_task_distils_with_mse(tiny_glue, specs, tmp_path, capsys):  # noqa: F811
    t = tmp_path / "teacher-stsb"
    assert cli(capsys, "finetune-teacher", "--teacher", specs / "teacher.json", "--task", "stsb",
               "--data", tiny_glue, "--out", t, *STEPS)[0] == 0
    rc, stdout, _ = cli(capsys, "distill", specs / "student.json", "--teacher", t, "--task", "stsb", "--data", tiny_glue,
                        "--out", tmp_path / "s", *STEPS, "--warmup-examples", "0", "--init", "random", "--json")
    r = json.loads(stdout)
    assert rc == 0 and r["metric"] == "spearman" and {"pearson", "spearman"} == set(r["dev"])


class Crash(Exception):
    pass


def crash_at(stage: str, step: int):
    """An on_step hook: the run dies after this step (checkpoints every 2 steps)."""

    def hook(at_stage: str, at_step: int) -> None:
        if (at_stage, at_step) == (stage, step):
            raise Crash

    return hook


def test_resume_continues_from_the_last_checkpoint_and_the_cache_is_hit(tiny_glue, teacher, specs, tmp_path):  # noqa: F811
    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        distill(replace(small_run(tiny_glue, teacher, specs, out), checkpoint_every=2), progress=False,
                on_step=crash_at("task", 3))
    assert not out.exists() and (checkpoint_dir(out) / "checkpoint.pt").is_file()

    seen = []
    distill(replace(small_run(tiny_glue, teacher, specs, out), checkpoint_every=2, resume=True), progress=False,
            on_step=lambda stage, step: seen.append((stage, step)))
    assert seen == [("task", 3), ("task", 4)]  # the warm-up and two task steps were not redone
    assert not checkpoint_dir(out).exists()

    # A second run: every teacher output comes from the cache (warm-up: hidden 0, 2, 4 and
    # attention 2, 4 of the 4-layer teacher; task: train logits; dev logits), no forward pass.
    straight = distill(replace(small_run(tiny_glue, teacher, specs, tmp_path / "straight"), checkpoint_every=2),
                       progress=False)
    assert (straight["teacher_cache"]["hits"], straight["teacher_cache"]["misses"]) == (7, 0)
    resumed, straight = load_model(out).model.state_dict(), load_model(tmp_path / "straight").model.state_dict()
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, atol=0, rtol=0, msg=name)


def test_resume_refuses_other_settings(tiny_glue, teacher, specs, tmp_path):  # noqa: F811
    out = tmp_path / "r"
    with pytest.raises(Crash):
        distill(replace(small_run(tiny_glue, teacher, specs, out), checkpoint_every=2), progress=False,
                on_step=crash_at("warmup", 2))
    with pytest.raises(EdgebertError, match="other settings"):
        distill(replace(small_run(tiny_glue, teacher, specs, out), seed=5, resume=True), progress=False)


def test_resume_refuses_a_student_path_that_now_holds_another_architecture(tiny_glue, teacher, specs, tmp_path):  # noqa: F811
    # A search re-run rewrites its student's spec file in place: same path, same settings, but the
    # checkpoint's weights would not load into the new shape (a traceback, before this check).
    student = tmp_path / "student.json"
    student.write_text((specs / "student.json").read_text())
    out = tmp_path / "r"
    cfg = replace(small_run(tiny_glue, teacher, specs, out), student=str(student), checkpoint_every=2)
    with pytest.raises(Crash):
        distill(cfg, progress=False, on_step=crash_at("warmup", 2))
    student.write_text(tiny_spec(32, 2).to_json())
    with pytest.raises(EdgebertError, match=r"other settings \(student architecture\)"):
        distill(replace(cfg, resume=True), progress=False)


def _glue_with(tmp_path: Path, train_tsv: str) -> Path:
    root = tmp_path / "bad-glue"
    (root / "SST-2").mkdir(parents=True)
    (root / "SST-2" / "train.tsv").write_text(train_tsv)
    (root / "SST-2" / "dev.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\n")
    return root


def test_bad_input_is_one_line_exit_1_and_nothing_written(tiny_glue, teacher, specs, tmp_path, capsys, teacher_dir):  # noqa: F811
    headless = tmp_path / "headless"  # an encoder without a classification head
    save_model(build(tiny_spec(64, 2)), headless, tokenizer_dir=teacher_dir, trained_head=False)
    small_vocab = tmp_path / "small-vocab"  # the BERT tokenizer on a 1000-token embedding table
    save_model(build(tiny_spec(64, 2, vocab=1000), num_labels=2), small_vocab, tokenizer_dir=teacher_dir)
    clutter = tmp_path / "clutter"
    clutter.mkdir()
    (clutter / "notes.txt").write_text("mine")
    cases = [  # (argument overrides, fragment of the one-line error); None = a switch
        ({"--data": tmp_path / "nowhere"}, "does not exist"),
        ({"--task": "sst3"}, "unknown task 'sst3'"),
        ({"--data": _glue_with(tmp_path / "c", "text\tlabel\nfine\t1\n")}, "no column(s) 'sentence'"),
        ({"--data": _glue_with(tmp_path / "e", "sentence\tlabel\n")}, "has no data rows"),
        ({"--data": _glue_with(tmp_path / "l", "sentence\tlabel\nfine\t1\nodd\t7\n")}, "label '7' is not one of"),
        ({"--teacher": teacher_dir}, "no trained classification head"),
        ({"--teacher": headless}, "no trained classification head"),
        ({"--teacher": small_vocab}, "mismatched tokenizer"),
        ({"model": specs / "wide.json"}, "wider than the teacher"),
        ({"--mapping": "1,9"}, "teacher layers must be distinct, in 1..4"),
        ({"--resume": None}, "no checkpoint"),
        ({"--out": clutter}, "holds no model"),
        ({"--max-length": 128}, "exceeds the 64 positions"),
    ]
    for i, (change, fragment) in enumerate(cases):
        args = {"model": specs / "student.json", "--teacher": teacher, "--task": "sst2", "--data": tiny_glue,
                "--out": tmp_path / f"o{i}", **dict(zip(STEPS[::2], STEPS[1::2], strict=True)), **change}
        argv = ["distill", args.pop("model")] + [x for k, v in args.items() for x in ((k,) if v is None else (k, v))]
        rc, _, err = cli(capsys, *argv)
        lines = err.strip().splitlines()
        assert rc == 1 and len(lines) == 1 and lines[0].startswith("edgebert: error:"), (change, err)
        assert fragment in lines[0], (fragment, lines[0])
        assert not (tmp_path / f"o{i}").exists() and not checkpoint_dir(tmp_path / f"o{i}").exists()
    assert (clutter / "notes.txt").read_text() == "mine"

    # the same checks guard finetune-teacher and eval
    rc, _, err = cli(capsys, "finetune-teacher", "--task", "sst2", "--data", tmp_path / "nowhere", "--out", tmp_path / "f")
    assert rc == 1 and "does not exist" in err and not (tmp_path / "f").exists()
    rc, _, err = cli(capsys, "eval", headless, "--task", "sst2", "--data", tiny_glue, "--max-length", "64")
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "no trained classification head" in err
