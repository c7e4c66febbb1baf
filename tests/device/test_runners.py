import json
import shutil
import subprocess
import sys

import pytest

from edgebert.device import runners
from edgebert.device.runners import RUNNERS, Runner, get_runner
from edgebert.device.timing import TimingPolicy
from edgebert.errors import EdgebertError


def _job(workload, policy=None, **extra):
    policy = policy or TimingPolicy(threads=1, warmup=0, runs=2, rounds=1)
    return {"kind": "time", "session_options": policy.session_options(), "warmup": policy.warmup,
            "runs": policy.runs, "rounds": policy.rounds, "seed": 0, "workloads": [workload.to_job()], **extra}


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_runner_contract(name, embed):
    """Every registered runner: a fingerprint under given settings, and a job round trip."""
    runner = get_runner(name)
    assert isinstance(runner, Runner) and runner.name == name
    fp = runner.fingerprint(1, "fp32", spinning="off")
    assert (fp["threads"], fp["precision"], fp["spinning"]) == (1, "fp32", "off")
    answer = runner.run(_job(embed))
    assert len(answer["times_ms"]["embed"]) == 2
    assert all(isinstance(t, float) and t > 0 for t in answer["times_ms"]["embed"])


def test_unknown_runner_lists_known_ones():
    with pytest.raises(EdgebertError) as err:
        get_runner("lokal")
    message = str(err.value)
    assert "\n" not in message and "'local'" in message and "local" in message.split("known targets:")[1]


@pytest.mark.parametrize("name", ["ssh", "adb"])
def test_planned_runners_say_so(name):
    with pytest.raises(EdgebertError, match="not implemented yet"):
        get_runner(name)


def test_worker_error_is_one_line(embed, monkeypatch):
    monkeypatch.delenv("EDGEBERT_DEBUG", raising=False)
    embed.onnx_path = "/no/such/model.onnx"
    with pytest.raises(EdgebertError) as err:
        get_runner("local").run(_job(embed))
    assert str(err.value) == "ONNX file not found: /no/such/model.onnx"


def test_debug_adds_the_worker_traceback(embed, monkeypatch):
    monkeypatch.setenv("EDGEBERT_DEBUG", "1")
    embed.onnx_path = "/no/such/model.onnx"
    with pytest.raises(EdgebertError, match="Traceback"):
        get_runner("local").run(_job(embed))


def test_unknown_job_kind():
    with pytest.raises(EdgebertError, match="unknown job kind 'dance'"):
        get_runner("local").run({"kind": "dance"})


def test_worker_names_a_wrong_input(embed):
    embed.inputs[0].name = "tokens"
    with pytest.raises(EdgebertError, match="model inputs are \\['ids'\\]"):
        get_runner("local").run(_job(embed))


def test_a_dead_worker_is_reported():
    with pytest.raises(EdgebertError, match="worker died"):
        runners.parse_answer("", "Segmentation fault\n", -11)


def test_worker_stands_alone(tmp_path, embed):
    """The script runs copied alone to another directory, as on a board: no edgebert import."""
    shutil.copy(runners.WORKER, tmp_path / "worker.py")
    proc = subprocess.run([sys.executable, "-I", str(tmp_path / "worker.py")], input=json.dumps(_job(embed)),
                          capture_output=True, text=True, cwd=tmp_path)
    answer = json.loads(proc.stdout)
    assert proc.returncode == 0 and answer["ok"] and len(answer["times_ms"]["embed"]) == 2
    source = runners.WORKER.read_text()
    assert "edgebert" not in "".join(l for l in source.splitlines() if l.startswith(("import", "from")))


def test_worker_runs_as_a_module(embed):
    proc = subprocess.run([sys.executable, "-m", "edgebert.device.worker"], input=json.dumps(_job(embed)),
                          capture_output=True, text=True)
    assert json.loads(proc.stdout)["ok"]
