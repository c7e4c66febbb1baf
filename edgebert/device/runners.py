"""Targets that run timing jobs: this machine now, a board over SSH or a phone over ADB later.

A runner is *where* a job runs; what is measured (the job) is made by
`edgebert.device.timing`. Every runner executes the same device-side script,
`worker.py`, with the job as JSON on stdin and the answer as one JSON line on
stdout, so a new target only has to move bytes (and the model files).
"""

from __future__ import annotations

import abc
import json
import os
import subprocess
import sys
from pathlib import Path

from edgebert.device import fingerprint as fingerprint_mod
from edgebert.device.spinning import DEFAULT as DEFAULT_SPINNING
from edgebert.errors import EdgebertError, nearest

WORKER = Path(__file__).with_name("worker.py")

# Thread pools the worker never uses for real work (numpy's BLAS) are pinned to
# one thread, so that idle pools cannot compete with ORT's for the cores.
_QUIET_POOLS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class Runner(abc.ABC):
    """A target device. Subclasses set `name` and implement the two methods."""

    name: str = "abstract"

    @abc.abstractmethod
    def fingerprint(self, threads: int, precision: str = "fp32", *, spinning: str = DEFAULT_SPINNING) -> dict:
        """The target's fingerprint (see `edgebert.device.fingerprint`) under these settings."""

    @abc.abstractmethod
    def run(self, job: dict) -> dict:
        """Run one worker job on the target; its answer, or EdgebertError with the worker's message."""


class LocalRunner(Runner):
    """This machine, one fresh Python subprocess per job.

    A fresh process per job means the caller's torch threads, its own ORT
    sessions and its allocator history cannot disturb a measurement, and a
    memory job's peak RSS is the model's alone.

    The worker is started by file path (`python .../worker.py`), not as
    `python -m edgebert.device.worker`: that way the subprocess imports nothing
    of edgebert (whatever `edgebert/__init__.py` grows to import), works from
    any cwd without installing the package, and every run proves that the
    script stands alone, as SSH/ADB targets will run it.
    """

    name = "local"

    def __init__(self, *, python: str | None = None, timeout_s: float | None = 3600.0):
        self.python = python or sys.executable
        self.timeout_s = timeout_s

    def fingerprint(self, threads: int, precision: str = "fp32", *, spinning: str = DEFAULT_SPINNING) -> dict:
        return fingerprint_mod.fingerprint(threads, precision, spinning)

    def run(self, job: dict) -> dict:
        env = {**os.environ, **_QUIET_POOLS}
        try:
            proc = subprocess.run(
                [self.python, str(WORKER)],
                input=json.dumps(job),
                capture_output=True,
                text=True,
                env=env,
                timeout=self.timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise EdgebertError(f"local worker gave no answer within {self.timeout_s:g} s") from None
        return parse_answer(proc.stdout, proc.stderr, proc.returncode)


def parse_answer(stdout: str, stderr: str, returncode: int) -> dict:
    """The worker's answer, or EdgebertError with its one-line message.

    Shared by every runner: whatever carried the bytes, the answer is the last
    stdout line. With EDGEBERT_DEBUG=1 the worker's traceback and stderr follow.
    """
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        message = f"worker died (exit code {returncode}): {last}"
        if os.environ.get("EDGEBERT_DEBUG") == "1":
            message += "\n" + stderr
        raise EdgebertError(message) from None
    if not answer.get("ok"):
        message = answer.get("error", "worker failed without a message")
        if os.environ.get("EDGEBERT_DEBUG") == "1":
            message += "\n" + answer.get("traceback", "") + stderr
        raise EdgebertError(message)
    answer.pop("ok")
    return answer


RUNNERS: dict[str, type[Runner]] = {"local": LocalRunner}
PLANNED = ("ssh", "adb")


def get_runner(name: str = "local", **options) -> Runner:
    """The runner called `name`, made with keyword `options` (e.g. timeout_s)."""
    if name in RUNNERS:
        return RUNNERS[name](**options)
    if name in PLANNED:
        raise EdgebertError(f"target {name!r} is not implemented yet; known targets: {', '.join(RUNNERS)}")
    raise EdgebertError(
        f"unknown target {name!r}{nearest(name, [*RUNNERS, *PLANNED])}; known targets: "
        f"{', '.join(RUNNERS)} ({', '.join(PLANNED)}: not implemented yet)"
    )
