"""Task data for edgebert: readers, tokenization with an on-disk cache, dynamic padding, GLUE metrics.

    from edgebert import data
    sst2 = data.load_task("sst2", "../shared/data/glue", split="train")
    train, heldout = data.heldout_split(sst2, fraction=0.1, seed=0)
    encoded = data.encode(train, tokenizer, max_length=64)       # cached on disk
    for batch in data.iter_batches(encoded, 32, shuffle=True, seed=epoch, bucket=True):
        logits = model(**batch.model_inputs()).logits
    data.compute_metrics("sst2", predictions, labels)

Modules: tasks (registry), readers (GLUE TSV, CSV/TSV/JSONL, HF datasets),
cache (content-keyed .npz entries), encoding, batching, metrics, heldout.
This package sits on the ground floor: it imports no edgebert module but errors.
"""

import importlib

# Public name -> module. Loaded on first use (PEP 562): reading tasks or files must
# not pay for importing torch, scikit-learn and scipy (seconds on a small CPU).
_EXPORTS = {
    "batching": ("Batch", "Batches", "batch_order", "collate", "iter_batches"),
    "cache": ("atomic_save_npz", "cache_key", "cache_path", "cache_root", "cached_arrays", "load_npz"),
    "encoding": ("Encoded", "encode", "tokenizer_fingerprint"),
    "heldout": ("heldout_split", "normalise", "subphrases", "whole_sentences"),
    "metrics": ("METRICS", "compute_metrics"),
    "readers": ("TaskData", "load_hf_dataset", "load_table", "load_task", "task_file"),
    "tasks": ("Task", "get_task", "register_task", "task_names"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'edgebert.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"edgebert.data.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
