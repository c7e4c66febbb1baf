"""The task registry: what each GLUE task reads, predicts and is scored by.

A `Task` is plain data. GLUE's seven tasks are registered below, once; a user's
own task (for `load_table`) is registered the same way with `register_task`.
Class labels are kept exactly as the files spell them ("0", "entailment"), in
class-id order, so that ids agree with `transformers`' GLUE processors.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebert.errors import EdgebertError, nearest

# Original GLUE layout: one folder per task, one TSV per split.
GLUE_SPLITS = (("train", "train.tsv"), ("dev", "dev.tsv"), ("test", "test.tsv"))


@dataclass(frozen=True)
class Task:
    """How to read, label and score one task."""

    name: str  # registry key, e.g. "sst2"
    text_columns: tuple[str, ...]  # one column (single sentence) or two (a pair), as in the header
    label_column: str
    labels: tuple[str, ...] | None  # class names as written in the files, in id order; None = regression
    metrics: tuple[str, ...]  # names in edgebert.data.metrics.METRICS
    primary_metric: str  # the one number a search ranks by
    folder: str | None = None  # GLUE folder name ("SST-2"); None for user tasks
    splits: tuple[tuple[str, str], ...] = GLUE_SPLITS  # split name -> file name
    # CoLA's train/dev files have no header row: these name their columns.
    headerless_columns: tuple[str, ...] | None = None
    # Bounds of a regression target (STS-B scores 0-5); a value outside is bad input.
    label_range: tuple[float, float] | None = None
    # SST-2's training set is a phrase bank: most rows are pieces of other rows.
    # Held-out splits must then keep whole sentences apart (see heldout.py).
    rows_are_subphrases: bool = False

    def __post_init__(self):
        if len(self.text_columns) not in (1, 2):
            raise EdgebertError(f"task {self.name!r}: needs one or two text columns, got {len(self.text_columns)}")
        if self.primary_metric not in self.metrics:
            raise EdgebertError(f"task {self.name!r}: primary metric {self.primary_metric!r} is not among {self.metrics}")
        if self.labels is not None and len(self.labels) < 2:
            raise EdgebertError(f"task {self.name!r}: a classification task needs at least two labels")

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def num_labels(self) -> int:
        # A regression head has one output.
        return 1 if self.labels is None else len(self.labels)

    @property
    def split_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.splits)

    def split_file(self, split: str) -> str:
        """The file name of `split` in the task's GLUE folder."""
        for name, file_name in self.splits:
            if name == split:
                return file_name
        raise EdgebertError(
            f"task {self.name!r} has no split {split!r}{nearest(split, self.split_names)}; "
            f"known: {', '.join(self.split_names)}"
        )


_TASKS: dict[str, Task] = {}


def canonical_name(name: str) -> str:
    # "SST-2", "sst_2" and "sst2" name the same task.
    return name.lower().replace("-", "").replace("_", "")


def register_task(task: Task) -> Task:
    """Add `task` to the registry; each name is registered once."""
    key = canonical_name(task.name)
    if key in _TASKS:
        raise EdgebertError(f"task {task.name!r} is already registered")
    _TASKS[key] = task
    return task


def get_task(task: str | Task) -> Task:
    """The registered task named `task` (case, '-' and '_' ignored); a Task passes through."""
    if isinstance(task, Task):
        return task
    found = _TASKS.get(canonical_name(str(task)))
    if found is None:
        raise EdgebertError(f"unknown task {task!r}{nearest(str(task).lower(), _TASKS)}; known: {', '.join(task_names())}")
    return found


def task_names() -> tuple[str, ...]:
    return tuple(sorted(task.name for task in _TASKS.values()))


# --- GLUE ------------------------------------------------------------------------
# Metrics by the book (GLUE paper, table 1). MRPC's primary metric is F1 and
# STS-B's is Spearman, the figure most compact-BERT papers report; accuracy and
# Pearson are reported beside them.

register_task(Task("sst2", ("sentence",), "label", ("0", "1"), ("accuracy",), "accuracy", folder="SST-2",
                   rows_are_subphrases=True))
register_task(Task("cola", ("sentence",), "label", ("0", "1"), ("matthews",), "matthews", folder="CoLA",
                   headerless_columns=("source", "label", "original_mark", "sentence")))
register_task(Task("mrpc", ("#1 String", "#2 String"), "Quality", ("0", "1"), ("accuracy", "f1"), "f1",
                   folder="MRPC"))
register_task(Task("stsb", ("sentence1", "sentence2"), "score", None, ("pearson", "spearman"), "spearman",
                   folder="STS-B", label_range=(0.0, 5.0)))
register_task(Task("rte", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment"), ("accuracy",),
                   "accuracy", folder="RTE"))
register_task(Task("qnli", ("question", "sentence"), "label", ("entailment", "not_entailment"), ("accuracy",),
                   "accuracy", folder="QNLI"))
register_task(Task("mnli", ("sentence1", "sentence2"), "gold_label", ("contradiction", "entailment", "neutral"),
                   ("accuracy",), "accuracy", folder="MNLI",
                   # "dev" and "test" default to the matched halves, as GLUE's leaderboard does.
                   splits=(("train", "train.tsv"), ("dev", "dev_matched.tsv"), ("test", "test_matched.tsv"),
                           ("dev_matched", "dev_matched.tsv"), ("dev_mismatched", "dev_mismatched.tsv"),
                           ("test_matched", "test_matched.tsv"), ("test_mismatched", "test_mismatched.tsv"))))
