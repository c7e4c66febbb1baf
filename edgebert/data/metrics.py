"""GLUE metrics by the book, computed with scikit-learn and scipy.

`compute_metrics(task, predictions, labels)` takes predictions in whatever form
a model loop has at hand: logits (N, C), class ids (N,), or scores (N,) / (N, 1)
for regression.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from edgebert.data.tasks import Task, get_task
from edgebert.errors import EdgebertError


def _correlation(fn: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    def metric(predictions: np.ndarray, labels: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns on constant input, then returns nan
            value = float(fn(predictions, labels)[0])
        # A constant predictor (common early in a search) has no defined correlation;
        # 0.0 says "no information" where nan would silently break max() and sorting.
        return 0.0 if np.isnan(value) else value

    return metric


def _f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    # MRPC is binary with class 1 = paraphrase, the positive class GLUE scores.
    binary = max(predictions.max(initial=0), labels.max(initial=0)) <= 1
    # zero_division=0: a student that never predicts the positive class scores 0, silently.
    return float(skm.f1_score(labels, predictions, average="binary" if binary else "macro", zero_division=0.0))


# name -> fn(predictions, labels) -> float; predictions are class ids or scores.
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda p, y: float(skm.accuracy_score(y, p)),
    "f1": _f1,
    "matthews": lambda p, y: float(skm.matthews_corrcoef(y, p)),
    "pearson": _correlation(stats.pearsonr),
    "spearman": _correlation(stats.spearmanr),
}


def _as_array(values) -> np.ndarray:
    # Accept torch tensors without importing torch here.
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _class_ids(task: Task, predictions: np.ndarray) -> np.ndarray:
    if predictions.ndim == 2:
        if predictions.shape[1] != task.num_labels:
            raise EdgebertError(
                f"{task.name}: logits have {predictions.shape[1]} columns, the task has {task.num_labels} classes"
            )
        return predictions.argmax(axis=1)
    if predictions.ndim != 1:
        raise EdgebertError(f"{task.name}: predictions must be logits (N, C) or class ids (N,), got shape {predictions.shape}")
    if not np.all(np.equal(np.mod(predictions, 1), 0)):
        raise EdgebertError(f"{task.name}: 1-D predictions must be class ids, got non-integer values")
    ids = predictions.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= task.num_labels):
        raise EdgebertError(f"{task.name}: class ids must lie in 0..{task.num_labels - 1}, got {ids.min()}..{ids.max()}")
    return ids


def _scores(task: Task, predictions: np.ndarray) -> np.ndarray:
    if predictions.ndim == 2 and predictions.shape[1] == 1:
        predictions = predictions[:, 0]  # a regression head's (N, 1) output
    if predictions.ndim != 1:
        raise EdgebertError(f"{task.name}: regression predictions must be (N,) or (N, 1), got shape {predictions.shape}")
    return predictions.astype(np.float64)


def compute_metrics(task: str | Task, predictions, labels) -> dict[str, float]:
    """Every metric of `task`, e.g. {"accuracy": 0.85, "f1": 0.89} for MRPC."""
    task = get_task(task)
    predictions, labels = _as_array(predictions), _as_array(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise EdgebertError(f"{task.name}: labels must be a non-empty 1-D array, got shape {labels.shape}")
    if len(predictions) != len(labels):
        raise EdgebertError(f"{task.name}: {len(predictions)} predictions for {len(labels)} labels")
    if task.is_regression:
        predictions, labels = _scores(task, predictions), labels.astype(np.float64)
    else:
        predictions, labels = _class_ids(task, predictions), labels.astype(np.int64)
    return {name: METRICS[name](predictions, labels) for name in task.metrics}
