"""Task readers: GLUE TSV folders, user CSV/TSV/JSONL tables, Hugging Face datasets.

Every reader turns its source into (line number, record) pairs and hands them to
one builder, `_build`, which checks columns and labels the same way for all of
them. TSVs are read as GLUE reads them: tab-separated, csv.QUOTE_NONE (MRPC and
STS-B sentences carry stray quote characters), BOM stripped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from edgebert.data.tasks import Task, canonical_name, get_task
from edgebert.errors import EdgebertError

Records = Iterable[tuple[int, Mapping[str, Any]]]  # (1-based line number, column -> value)

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")


@dataclass
class TaskData:
    """One split of one task, unpadded and untokenized."""

    task: Task
    split: str
    texts_a: list[str]
    texts_b: list[str] | None  # None for single-sentence tasks
    labels: np.ndarray | None  # int64 class ids or float32 scores; None when unlabeled (test)
    fingerprint: str  # sha256 hex of the source contents (and of any selection): a cache key
    source: str  # where the rows came from, for messages
    row_ids: np.ndarray  # each example's data-row position in the source, across selections

    def __len__(self) -> int:
        return len(self.texts_a)

    @property
    def is_labeled(self) -> bool:
        return self.labels is not None

    def select(self, indices: Sequence[int] | np.ndarray, tag: str = "subset") -> TaskData:
        """The examples at `indices`, in that order, with a fingerprint of their own."""
        indices = np.asarray(indices, dtype=np.int64)
        digest = hashlib.sha256(f"{self.fingerprint}:{tag}:".encode() + indices.tobytes()).hexdigest()
        pick = lambda texts: None if texts is None else [texts[i] for i in indices]  # noqa: E731
        return replace(
            self,
            texts_a=pick(self.texts_a),
            texts_b=pick(self.texts_b),
            labels=None if self.labels is None else self.labels[indices],
            fingerprint=digest,
            row_ids=self.row_ids[indices],
        )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- GLUE folders ------------------------------------------------------------------


def load_task(task: str | Task, data_dir: str | Path, split: str = "train") -> TaskData:
    """Read one split of a GLUE task from the GLUE root or from the task's own folder."""
    task = get_task(task)
    path = task_file(task, data_dir, split)
    raw = path.read_bytes()
    header, records = _tsv_records(task, path, _decode(raw, path))
    label_column = task.label_column if task.label_column in header else None
    if label_column is None and not split.startswith("test"):
        raise EdgebertError(f"{path}: no label column {task.label_column!r} (has: {', '.join(header)})")
    return _build(task, split, records, text_columns=task.text_columns, label_column=label_column,
                  source=str(path), fingerprint=sha256_hex(raw))


def task_file(task: Task, data_dir: str | Path, split: str) -> Path:
    """The TSV of `split`, from `data_dir` = the GLUE root or the task's folder."""
    root = Path(data_dir).expanduser()
    folder_name = task.folder or task.name
    if not root.is_dir():
        raise EdgebertError(
            f"data directory {root} {'is not a directory' if root.exists() else 'does not exist'}; "
            f"expected the GLUE root (holding {folder_name}/) or the {folder_name} folder"
        )
    file_name = task.split_file(split)
    folder = _child_folder(root, task)
    if folder is None:
        if not (root / file_name).is_file():
            raise EdgebertError(
                f"no {folder_name} data under {root}: expected {root / folder_name / file_name} or {root / file_name}"
            )
        folder = root  # data_dir is the task's own folder
    path = folder / file_name
    if not path.is_file():
        present = ", ".join(sorted(p.name for p in folder.glob("*.tsv"))) or "no .tsv files"
        raise EdgebertError(f"{folder} has no {file_name} for split {split!r} (it has: {present})")
    return path


def _child_folder(root: Path, task: Task) -> Path | None:
    # GLUE spells folders "SST-2", "STS-B", "CoLA"; accept any case and "sst2" too.
    wanted = {canonical_name(task.name), canonical_name(task.folder or task.name)}
    for child in sorted(root.iterdir()):
        if child.is_dir() and canonical_name(child.name) in wanted:
            return child
    return None


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")  # MRPC's header starts with a BOM
    except UnicodeDecodeError as error:
        raise EdgebertError(f"{path} is not UTF-8 text (byte {error.start})") from None


def _tsv_records(task: Task, path: Path, text: str) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    first = next(_csv_rows(reader, path), None)
    if first is None:
        raise EdgebertError(f"{path} is empty: no header and no data rows")
    header, first_is_data = _glue_header(task, path, first)

    def records():
        if first_is_data:
            yield 1, dict(zip(header, first))
        for row in _csv_rows(reader, path):
            if row:  # a blank line carries nothing (trailing newlines)
                yield reader.line_num, dict(zip(header, row))

    return header, records()


def _csv_rows(reader, path: Path) -> Iterator:
    """The reader's rows, a malformed line (say, a field over csv's size limit) as a one-line error."""
    try:
        yield from reader
    except csv.Error as error:
        raise EdgebertError(f"{path} line {reader.line_num}: {error}") from None


def _glue_header(task: Task, path: Path, first_row: list[str]) -> tuple[list[str], bool]:
    """(column names, whether the first row is data): CoLA train/dev have no header."""
    looks_like_header = all(column in first_row for column in task.text_columns)
    if not looks_like_header and task.headerless_columns and len(first_row) == len(task.headerless_columns):
        return list(task.headerless_columns), True
    _require_columns(first_row, task.text_columns, str(path))
    return first_row, False


def _require_columns(header: Sequence[str], required: Sequence[str], where: str) -> None:
    missing = [column for column in required if column not in header]
    if missing:
        shown = ", ".join(repr(c) for c in missing)
        raise EdgebertError(f"{where}: no column(s) {shown} in header (has: {', '.join(map(repr, header))})")


# --- user tables -------------------------------------------------------------------


def load_table(path: str | Path, text_columns: Sequence[str], label_column: str | None = None,
               task: str | Task | None = None, *, split: str = "train") -> TaskData:
    """Read a .csv, .tsv or .jsonl file with named text and label columns.

    Without `task`, the labels define an ad-hoc classification task whose classes
    are the distinct label values, scored by accuracy.
    """
    path = Path(path).expanduser()
    text_columns = tuple(text_columns)
    if not path.is_file():
        raise EdgebertError(f"data file {path} does not exist; expected a {', '.join(TABLE_SUFFIXES)} file")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise EdgebertError(f"{path}: unsupported file type {path.suffix!r}; expected {', '.join(TABLE_SUFFIXES)}")
    if len(text_columns) not in (1, 2):
        raise EdgebertError(f"{path}: give one or two text columns, got {len(text_columns)}")
    raw = path.read_bytes()
    records = list(_table_records(path, _decode(raw, path), required=text_columns + ((label_column,) if label_column else ())))
    task = _table_task(path, records, text_columns, label_column, task)
    fingerprint = sha256_hex(json.dumps([sha256_hex(raw), text_columns, label_column, task.name]).encode())
    return _build(task, split, records, text_columns=text_columns, label_column=label_column,
                  source=str(path), fingerprint=fingerprint)


def _table_records(path: Path, text: str, required: Sequence[str]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    if path.suffix.lower() == ".jsonl":
        yield from _jsonl_records(path, text)
        return
    tsv = path.suffix.lower() == ".tsv"
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if tsv else ",",
                            quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
    try:
        header = reader.fieldnames or []
    except csv.Error as error:
        raise EdgebertError(f"{path} line 1: {error}") from None
    _require_columns(header, required, str(path))
    for row in _csv_rows(reader, path):
        yield reader.line_num, row


def _jsonl_records(path: Path, text: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise EdgebertError(f"{path} line {line_no}: not JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise EdgebertError(f"{path} line {line_no}: expected a JSON object, got {type(record).__name__}")
        yield line_no, record


def _table_task(path: Path, records: list, text_columns: tuple, label_column: str | None, task) -> Task:
    if task is not None:
        task = get_task(task)
        if len(text_columns) != len(task.text_columns):
            raise EdgebertError(f"task {task.name!r} takes {len(task.text_columns)} text column(s), got {len(text_columns)}")
        return task
    if label_column is None:
        raise EdgebertError(f"{path}: give task= or label_column= so the labels are known")
    values = {_label_text(record.get(label_column)) for _, record in records} - {None}
    ordered = sorted(values, key=lambda v: (0, int(v)) if v.lstrip("-").isdigit() else (1, v))
    if len(ordered) < 2:
        raise EdgebertError(f"{path}: column {label_column!r} has {len(ordered)} distinct label(s); a task needs two or more")
    return Task(path.stem, text_columns, label_column, tuple(ordered), ("accuracy",), "accuracy")


# --- Hugging Face datasets ---------------------------------------------------------

# GLUE's columns on the Hub, and its split names.
HF_GLUE_TEXT_COLUMNS = {"sst2": ("sentence",), "cola": ("sentence",), "mrpc": ("sentence1", "sentence2"),
                        "stsb": ("sentence1", "sentence2"), "rte": ("sentence1", "sentence2"),
                        "qnli": ("question", "sentence"), "mnli": ("premise", "hypothesis")}


def load_hf_dataset(task: str | Task, split: str = "train", *, path: str = "nyu-mll/glue") -> TaskData:
    """Read a GLUE split with the `datasets` package (a Hub id or a local dataset script/folder)."""
    try:
        import datasets
    except ImportError:
        raise EdgebertError("reading Hugging Face datasets needs the 'datasets' package, which is not installed "
                            "(pip install datasets), or use load_task on GLUE TSV files") from None
    task = get_task(task)
    task.split_file(split)  # reject unknown split names early, with a suggestion
    hf_split = _hf_split(task, split)
    dataset = datasets.load_dataset(path, task.name, split=hf_split)
    label_feature = dataset.features.get("label")
    records = ((i + 1, _hf_record(row, label_feature, task)) for i, row in enumerate(dataset))
    return _build(task, split, records, text_columns=HF_GLUE_TEXT_COLUMNS.get(task.name, task.text_columns),
                  label_column=None if split.startswith("test") else task.label_column,
                  source=f"{path}/{task.name}[{hf_split}]", fingerprint=str(getattr(dataset, "_fingerprint", "")))


def _hf_split(task: Task, split: str) -> str:
    # The Hub names dev "validation"; MNLI's plain dev/test mean the matched halves, as in Task.splits.
    if task.name == "mnli":
        split = {"dev": "dev_matched", "test": "test_matched"}.get(split, split)
    return split.replace("dev", "validation")


def _hf_record(row: Mapping[str, Any], label_feature, task: Task) -> dict:
    record = dict(row)
    value = row.get("label")
    names = getattr(label_feature, "names", None)
    if task.is_regression or value is None or value < 0 or not names:
        record[task.label_column] = value  # -1 marks unlabeled test rows
        return record
    # Hub class names ("positive", "equivalent") map to our ids through the name when we
    # share it (RTE, QNLI, MNLI, whose Hub order differs), else through the Hub's id.
    name = names[value]
    record[task.label_column] = name if name in (task.labels or ()) else str(value)
    return record


# --- the one builder ---------------------------------------------------------------


def _build(task: Task, split: str, records: Records, *, text_columns: Sequence[str], label_column: str | None,
           source: str, fingerprint: str) -> TaskData:
    """Columns and labels checked the same way for every reader."""
    texts: list[list[str]] = [[] for _ in text_columns]
    raw_labels: list[tuple[int, Any]] = []
    for line_no, record in records:
        for column, out in zip(text_columns, texts):
            value = record.get(column)
            if value is None:
                raise EdgebertError(f"{source} line {line_no}: no value for column {column!r}")
            out.append(str(value))
        if label_column is not None:
            raw_labels.append((line_no, record.get(label_column)))
    if not texts[0]:
        raise EdgebertError(f"{source} has no data rows: split {split!r} of {task.name} is empty")
    return TaskData(task=task, split=split, texts_a=texts[0], texts_b=texts[1] if len(texts) == 2 else None,
                    labels=None if label_column is None else _parse_labels(task, raw_labels, source),
                    fingerprint=fingerprint, source=source, row_ids=np.arange(len(texts[0]), dtype=np.int64))


def _label_text(value: Any) -> str | None:
    # JSON gives 1 or 1.0 where a TSV gives "1".
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return None if value is None else str(value).strip()


def _parse_labels(task: Task, raw_labels: list[tuple[int, Any]], source: str) -> np.ndarray:
    if task.is_regression:
        return np.array([_parse_score(task, value, line_no, source) for line_no, value in raw_labels], dtype=np.float32)
    ids = {name: index for index, name in enumerate(task.labels)}
    out = np.empty(len(raw_labels), dtype=np.int64)
    for position, (line_no, value) in enumerate(raw_labels):
        label = ids.get(_label_text(value))
        if label is None:
            raise EdgebertError(f"{source} line {line_no}: label {value!r} is not one of "
                                f"{', '.join(task.labels)} (task {task.name})")
        out[position] = label
    return out


def _parse_score(task: Task, value: Any, line_no: int, source: str) -> float:
    low, high = task.label_range or (-np.inf, np.inf)
    try:
        score = float(value)
    except (TypeError, ValueError):
        score = float("nan")
    if not low <= score <= high:  # also rejects nan
        raise EdgebertError(f"{source} line {line_no}: label {value!r} is not a score in [{low:g}, {high:g}] (task {task.name})")
    return score
