"""The task metric of a model: a saved model through PyTorch, or an exported ONNX file
(fp32 or INT8) through ONNX Runtime, the accuracy of what actually ships.

    evaluate("runs/sst2/student", "sst2", "../shared/data/glue")
    evaluate("export/student", "sst2", "../shared/data/glue", int8=True)      # model_int8.onnx
    evaluate("export/student/model.onnx", "sst2", "../shared/data/glue")

Examples are batched by length (dynamic padding) and predictions put back in
order through each batch's indices.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgebert import data
from edgebert.arch import ArchSpec
from edgebert.distill.inputs import check_max_length, load_split, load_tokenizer, tokenizer_dir_of
from edgebert.errors import EdgebertError
from edgebert.hub import load_model
from edgebert.modeling import EdgeBertForSequenceClassification

EVAL_BATCH = 64


@torch.no_grad()
def predict(model: torch.nn.Module, encoded: data.Encoded, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """(N, C) logits of a PyTorch classifier, in example order."""
    model.eval()
    out = np.zeros((len(encoded), model.config.num_labels), dtype=np.float32)
    for batch in data.iter_batches(encoded, batch_size, bucket=True):
        out[batch.indices.numpy()] = model(**batch.model_inputs()).logits.float().numpy()
    return out


def predict_onnx(session, encoded: data.Encoded, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """(N, C) logits of an exported classifier, in example order."""
    inputs = {i.name for i in session.get_inputs()}
    rows = []
    for batch in data.iter_batches(encoded, batch_size, bucket=True):
        feed = {k: v.numpy() for k, v in batch.model_inputs().items() if k in inputs}
        rows.append((batch.indices.numpy(), session.run(["logits"], feed)[0]))
    out = np.zeros((len(encoded), rows[0][1].shape[1]), dtype=np.float32)
    for idx, logits in rows:
        out[idx] = logits
    return out


def metrics_of(task: str, logits: np.ndarray, encoded: data.Encoded) -> dict[str, float]:
    return data.compute_metrics(task, logits, encoded.labels)


def evaluate(model_ref: str | Path, task: str, data_dir: str | Path, *, split: str = "dev", int8: bool = False,
             max_length: int = 128, batch_size: int = EVAL_BATCH) -> dict[str, Any]:
    """The metrics of `model_ref` (saved model folder, export folder or .onnx file) on a split of `task`."""
    t = data.get_task(task)
    t0 = time.perf_counter()
    onnx_file = _onnx_file(Path(model_ref), int8)
    if onnx_file is not None:
        spec, tok_dir = _export_facts(onnx_file)
        tokenizer = load_tokenizer(tok_dir, spec, what=str(onnx_file))
        check_max_length(max_length, spec, what=str(onnx_file))
        from edgebert.device.timing import TimingPolicy, make_session

        session = make_session(onnx_file, TimingPolicy())
        outputs = {o.name: o.shape for o in session.get_outputs()}
        if "logits" not in outputs:
            raise EdgebertError(f"{onnx_file} has no logits output: it was exported without a classification head")
        width = outputs["logits"][-1]
        _check_labels(width if isinstance(width, int) else None, t, str(onnx_file))
        encoded = load_split(t.name, data_dir, split, tokenizer, max_length)
        t1 = time.perf_counter()
        logits = predict_onnx(session, encoded, batch_size)
        backend, precision, what = "onnxruntime", "int8" if _is_int8(onnx_file) else "fp32", str(onnx_file)
    else:
        if int8:
            raise EdgebertError(f"--int8 evaluates an exported model; first: edgebert export {model_ref} --int8 --out DIR")
        loaded = load_model(model_ref, num_labels=t.num_labels)
        if not (isinstance(loaded.model, EdgeBertForSequenceClassification) and loaded.trained_head):
            raise EdgebertError(f"{model_ref} has no trained classification head; distil or fine-tune it for {t.name} first")
        _check_labels(loaded.model.config.num_labels, t, str(model_ref))
        tokenizer = load_tokenizer(tokenizer_dir_of(loaded), loaded.spec, what=str(model_ref))
        check_max_length(max_length, loaded.spec, what=str(model_ref))
        encoded = load_split(t.name, data_dir, split, tokenizer, max_length)
        t1 = time.perf_counter()
        logits = predict(loaded.model, encoded, batch_size)
        backend, precision, what = "torch", "fp32", str(model_ref)
    metrics = metrics_of(t.name, logits, encoded)
    infer_s = time.perf_counter() - t1
    return {"task": t.name, "metric": t.primary_metric, "dev": metrics, "split": split, "model": what,
            "backend": backend, "precision": precision, "examples": len(encoded),
            "seconds": round(time.perf_counter() - t0, 2), "examples_per_s": round(len(encoded) / infer_s, 1)}


def _onnx_file(ref: Path, int8: bool) -> Path | None:
    """The ONNX file `ref` names (a .onnx file, or an export folder with manifest.json), else None."""
    if ref.suffix == ".onnx":
        if not ref.is_file():
            raise EdgebertError(f"ONNX file {ref} does not exist")
        return ref
    manifest = ref / "manifest.json"
    if not manifest.is_file():
        return None
    files = json.loads(manifest.read_text()).get("files", {})
    key = "int8" if int8 else "fp32"
    if key not in files:
        raise EdgebertError(f"{ref} has no {key} model; re-export it{' with --int8' if int8 else ''}")
    return ref / files[key]["file"]


def _is_int8(path: Path) -> bool:
    return "int8" in path.name


def _export_facts(onnx_file: Path) -> tuple[ArchSpec, Path]:
    """(spec, tokenizer folder) of an exported model, from the files beside it."""
    folder = onnx_file.parent
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise EdgebertError(f"{onnx_file}: no manifest.json beside it; evaluate files written by `edgebert export`")
    m = json.loads(manifest.read_text())
    if not m.get("trained_head", False):
        raise EdgebertError(f"{onnx_file} was exported from a model without a trained classification head")
    if not ((folder / "vocab.txt").is_file() or (folder / "tokenizer.json").is_file()):
        raise EdgebertError(f"{onnx_file}: no tokenizer files beside it (vocab.txt or tokenizer.json)")
    return ArchSpec.from_dict(m["spec"]), folder


def _check_labels(num_labels: int | None, task: data.Task, what: str) -> None:
    if num_labels is not None and num_labels != task.num_labels:
        raise EdgebertError(f"{what} has a {num_labels}-output head; {task.name} needs {task.num_labels}")
