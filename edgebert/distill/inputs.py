"""What training and evaluation read: the tokenizer, a task's splits, warm-up text.

Every check a user can fail (no tokenizer, a tokenizer whose ids overflow the
model's vocabulary, a missing data folder, a split without rows) happens here,
before any training, so a bad input costs a second and writes nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edgebert import data
from edgebert.arch import ArchSpec
from edgebert.data.readers import TaskData
from edgebert.errors import EdgebertError
from edgebert.hub import LoadedModel, default_tokenizer_dir

BERT_VOCAB = 30522  # bert-base-uncased's vocabulary, which the embedded teacher's tokenizer has


def tokenizer_dir_of(loaded: LoadedModel) -> Path:
    """Where a model's tokenizer lives: its own folder, else the embedded BERT vocabulary
    for a model with BERT's vocabulary size (zoo names and spec files carry none)."""
    if loaded.tokenizer_dir is not None:
        return loaded.tokenizer_dir
    fallback = default_tokenizer_dir()
    if fallback is not None and loaded.spec.vocab_size == BERT_VOCAB:
        return fallback
    raise EdgebertError(f"{loaded.source} has no tokenizer files (vocab.txt or tokenizer.json) and its vocabulary "
                        f"({loaded.spec.vocab_size}) is not BERT's; put the tokenizer files in the model folder")


def load_tokenizer(folder: Path, spec: ArchSpec, *, what: str):
    """The tokenizer in `folder`, checked against the model's vocabulary: an id the
    embedding table does not have would crash training deep inside a batch."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as e:
        raise EdgebertError(f"cannot load the tokenizer of {what} from {folder}: {str(e).splitlines()[0]}") from None
    check_tokenizer(tokenizer, spec, what=what)
    return tokenizer


def check_tokenizer(tokenizer, spec: ArchSpec, *, what: str) -> None:
    if len(tokenizer) > spec.vocab_size:
        raise EdgebertError(f"mismatched tokenizer: {len(tokenizer)} tokens, but {what} has a vocabulary of "
                            f"{spec.vocab_size}; use the tokenizer the model was trained with")


def check_max_length(max_length: int, spec: ArchSpec, *, what: str) -> None:
    if max_length > spec.max_positions:
        raise EdgebertError(f"--max-length {max_length} exceeds the {spec.max_positions} positions of {what}")


def load_split(task: str, data_dir: str | Path, split: str, tokenizer, max_length: int, *,
               labeled: bool = True) -> data.Encoded:
    """One split of a GLUE task folder, tokenized (through the cache)."""
    td = data.load_task(task, data_dir, split)
    if labeled and not td.is_labeled:
        raise EdgebertError(f"{td.source}: split {split!r} has no labels; training and evaluation need a labeled split")
    return data.encode(td, tokenizer, max_length)


def subset(td: TaskData, max_examples: int | None, seed: int) -> TaskData:
    """A seeded random sample of at most `max_examples` rows (all rows when there are fewer)."""
    if max_examples is None or max_examples >= len(td):
        return td
    if max_examples < 1:
        raise EdgebertError(f"max examples must be >= 1, got {max_examples}")
    rows = np.sort(np.random.default_rng(seed).permutation(len(td))[:max_examples])
    return td.select(rows, f"sample:{max_examples}:{seed}")


def read_text_file(path: str | Path, task: str) -> TaskData:
    """Unlabeled text for the warm-up stage: one text per line (blank lines skipped)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EdgebertError(f"warm-up text file {path} does not exist; give a text file with one sentence per line")
    raw = path.read_bytes()
    try:
        lines = [line.strip() for line in raw.decode("utf-8-sig").splitlines()]
    except UnicodeDecodeError as e:
        raise EdgebertError(f"{path} is not UTF-8 text (byte {e.start})") from None
    texts = [line for line in lines if line]
    if not texts:
        raise EdgebertError(f"warm-up text file {path} has no non-blank lines")
    return TaskData(task=data.get_task(task), split="warmup-text", texts_a=texts, texts_b=None, labels=None,
                    fingerprint=hashlib.sha256(raw).hexdigest(), source=str(path),
                    row_ids=np.arange(len(texts), dtype=np.int64))


def unlabeled(td: TaskData) -> TaskData:
    """The same texts without labels: the warm-up stage is task-agnostic. Tokens and
    teacher outputs do not depend on labels, so their cache entries are shared."""
    from dataclasses import replace

    return replace(td, labels=None)
