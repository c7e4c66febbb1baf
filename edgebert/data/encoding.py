"""Tokenization of a TaskData into unpadded id sequences, cached on disk.

An `Encoded` keeps every example's ids back to back (no padding stored): padding
happens per batch, to that batch's longest sequence (see batching.py). The cache
entry is keyed by the tokenizer's content (vocabulary, normalizer, templates),
the data's sha256 fingerprint, the split and max_length.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from edgebert.data.cache import cache_key, cached_arrays
from edgebert.data.readers import TaskData
from edgebert.errors import EdgebertError

CACHE_KIND = "tokens"
# Bump when the stored arrays or the tokenizer call change: old entries then miss.
ENCODING_VERSION = 1
# Tokenizer settings that describe a call, not the tokenizer: transformers leaves
# them on the Rust backend after a call, so they must not change its fingerprint.
_PER_CALL_STATE = ("truncation", "padding")
_PATH_LIKE = ("file", "path", "dir")
_PROGRESS_MIN_EXAMPLES = 10_000  # smaller splits tokenize in about a second: no bar


@dataclass
class Encoded:
    """Token ids of one split, unpadded, plus what batching needs."""

    input_ids: np.ndarray  # (total_tokens,) int32, every example's ids back to back
    token_type_ids: np.ndarray  # (total_tokens,) int8
    lengths: np.ndarray  # (N,) int32, tokens per example, special tokens included
    labels: np.ndarray | None  # (N,) int64 class ids or float32 scores; None when unlabeled
    pad_token_id: int
    from_cache: bool = False
    key: str = ""  # the cache digest: key outputs computed from these inputs (teacher logits) with it
    offsets: np.ndarray = field(init=False, repr=False)  # (N + 1,) example i is ids[offsets[i]:offsets[i + 1]]

    def __post_init__(self):
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)])

    def __len__(self) -> int:
        return len(self.lengths)

    def example(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, token_type_ids) of one example."""
        span = slice(self.offsets[index], self.offsets[index + 1])
        return self.input_ids[span], self.token_type_ids[span]


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of what decides a tokenizer's output (not where it was loaded from)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # a fast tokenizer serialises all of itself
        state = json.loads(backend.to_str())
        for name in _PER_CALL_STATE:
            state.pop(name, None)
    else:
        settings = {k: v for k, v in tokenizer.init_kwargs.items()
                    if isinstance(v, (str, int, float, bool, type(None))) and not any(p in k for p in _PATH_LIKE)}
        state = {"vocab": sorted(tokenizer.get_vocab().items()), "settings": settings}
    return cache_key({"class": type(tokenizer).__name__, "state": state})


def encode(data: TaskData, tokenizer, max_length: int = 128, *, use_cache: bool = True,
           chunk_size: int = 4096) -> Encoded:
    """Tokenize `data` (pairs truncated longest-first, as GLUE fine-tuning does), through the cache."""
    _check_max_length(tokenizer, max_length, pair=data.texts_b is not None)
    key_parts = {"version": ENCODING_VERSION, "tokenizer": tokenizer_fingerprint(tokenizer),
                 "data": data.fingerprint, "split": data.split, "max_length": max_length}
    compute = lambda: _tokenize(data, tokenizer, max_length, chunk_size)  # noqa: E731
    arrays, hit = cached_arrays(CACHE_KIND, key_parts, compute) if use_cache else (compute(), False)
    return Encoded(input_ids=arrays["input_ids"], token_type_ids=arrays["token_type_ids"],
                   lengths=arrays["lengths"], labels=data.labels,
                   pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
                   from_cache=hit, key=cache_key(key_parts))


def _check_max_length(tokenizer, max_length: int, pair: bool) -> None:
    specials = tokenizer.num_special_tokens_to_add(pair=pair)
    if not isinstance(max_length, int) or max_length <= specials:
        raise EdgebertError(f"max_length must be an integer above {specials} (the special tokens), got {max_length!r}")
    limit = tokenizer.model_max_length
    if limit < 1_000_000 and max_length > limit:  # transformers' "no limit" is a huge sentinel
        raise EdgebertError(f"max_length {max_length} exceeds the tokenizer's model_max_length {limit}")


def _tokenize(data: TaskData, tokenizer, max_length: int, chunk_size: int) -> dict[str, np.ndarray]:
    ids: list[list[int]] = []
    types: list[list[int]] = []
    with tqdm(total=len(data), desc=f"tokenizing {data.task.name} {data.split}", unit="ex",
              disable=len(data) < _PROGRESS_MIN_EXAMPLES or None) as bar:
        for start in range(0, len(data), chunk_size):
            chunk = slice(start, start + chunk_size)
            batch = tokenizer(data.texts_a[chunk], data.texts_b[chunk] if data.texts_b is not None else None,
                              truncation="longest_first", max_length=max_length, padding=False,
                              return_attention_mask=False, return_token_type_ids=True)
            ids.extend(batch["input_ids"])
            # Some tokenizers have no segment ids: one segment then.
            types.extend(batch.get("token_type_ids") or ([0] * len(row) for row in batch["input_ids"]))
            bar.update(len(batch["input_ids"]))
    lengths = np.fromiter(map(len, ids), dtype=np.int32, count=len(ids))
    total = int(lengths.sum())
    return {"input_ids": np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=total),
            "token_type_ids": np.fromiter(itertools.chain.from_iterable(types), dtype=np.int8, count=total),
            "lengths": lengths}
