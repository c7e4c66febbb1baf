"""Dynamic padding: each batch is padded to its own longest sequence.

GLUE sentences are short (SST-2's median is ~10 tokens), so padding every batch
to max_length would spend most of the compute on pad tokens. Length bucketing
goes further: a shuffled pool of batches is sorted by length before it is cut,
so each batch holds sequences of similar length; the batch order is shuffled
again so training does not see lengths in sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from edgebert.data.encoding import Encoded
from edgebert.errors import EdgebertError

# Batches per bucketing pool: large enough to find similar lengths, small enough
# that a pool is still a random sample of the data.
BUCKET_POOL_BATCHES = 50


@dataclass
class Batch:
    """One padded batch: model inputs, labels, and which examples it holds."""

    input_ids: torch.Tensor  # (B, T) long, T = longest sequence in the batch
    attention_mask: torch.Tensor  # (B, T) long, 1 = token, 0 = padding
    token_type_ids: torch.Tensor  # (B, T) long
    labels: torch.Tensor | None  # (B,) long class ids or float scores; None when unlabeled
    indices: torch.Tensor  # (B,) long positions in the Encoded (and its TaskData): look up cached teacher outputs

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """The keyword arguments a BERT-style model takes."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "token_type_ids": self.token_type_ids}

    def to(self, device: str | torch.device) -> Batch:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.token_type_ids),
                     move(self.labels), move(self.indices))


def collate(encoded: Encoded, indices) -> Batch:
    """Pad the examples at `indices` to their longest; usable as a DataLoader collate_fn with functools.partial."""
    indices = np.asarray(indices, dtype=np.int64)
    lengths = encoded.lengths[indices].astype(np.int64)
    width = int(lengths.max(initial=1))
    # Gather every (example, position) at once; positions past an example's end are padding.
    positions = np.arange(width)
    mask = positions[None, :] < lengths[:, None]  # (B, T)
    flat = np.minimum(encoded.offsets[indices][:, None] + positions[None, :], max(len(encoded.input_ids) - 1, 0))
    input_ids = np.where(mask, encoded.input_ids[flat], encoded.pad_token_id)
    token_type_ids = np.where(mask, encoded.token_type_ids[flat], 0)
    labels = None if encoded.labels is None else torch.from_numpy(np.asarray(encoded.labels[indices]))
    return Batch(input_ids=torch.from_numpy(input_ids.astype(np.int64)),
                 attention_mask=torch.from_numpy(mask.astype(np.int64)),
                 token_type_ids=torch.from_numpy(token_type_ids.astype(np.int64)),
                 labels=labels, indices=torch.from_numpy(indices))


def batch_order(lengths: np.ndarray, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                bucket: bool = False, drop_last: bool = False) -> list[np.ndarray]:
    """The example indices of each batch.

    shuffle: a seeded random order (pass seed + epoch for a new order each epoch).
    bucket: similar lengths together; without shuffle, all examples sorted by length
    (fastest for evaluation: put predictions back in place with the batch indices).
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise EdgebertError(f"batch_size must be a positive integer, got {batch_size!r}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    if bucket:
        pool = batch_size * BUCKET_POOL_BATCHES if shuffle else max(len(order), 1)
        order = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                                for chunk in _chunks(order, pool)] or [order])
    batches = _chunks(order, batch_size)
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    if shuffle and bucket:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _chunks(order: np.ndarray, size: int) -> list[np.ndarray]:
    return [order[start:start + size] for start in range(0, len(order), size)]


@dataclass
class Batches:
    """An iterable of padded batches with a length (for progress bars and schedulers)."""

    encoded: Encoded
    order: list[np.ndarray] = field(repr=False)  # example indices of each batch

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[Batch]:
        return (collate(self.encoded, indices) for indices in self.order)


def iter_batches(encoded: Encoded, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 bucket: bool = False, drop_last: bool = False) -> Batches:
    """Dynamically padded batches of `encoded`; see batch_order for the options."""
    return Batches(encoded, batch_order(encoded.lengths, batch_size, shuffle=shuffle, seed=seed,
                                        bucket=bucket, drop_last=drop_last))
