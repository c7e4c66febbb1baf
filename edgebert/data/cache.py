"""A content-keyed on-disk cache of numpy arrays, for anything costly to recompute.

Tokenized splits use it now; distillation can keep teacher logits and hidden
states in it the same way. An entry lives at

    $EDGEBERT_CACHE/<kind>/<sha256 of the key parts>.npz     (default ~/.cache/edgebert)

The key parts are named, JSON-serialisable values that determine the content
(file hashes, tokenizer hash, max_length...). They are stored inside the entry
too (`__key__`) so an entry explains itself and a stale one is recognised.
Writes are atomic (temp file + os.replace): a crash never leaves half an entry.
Entries are plain .npz read with allow_pickle=False, never pickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from edgebert.errors import EdgebertError

KEY_FIELD = "__key__"
_KIND = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def cache_root() -> Path:
    """$EDGEBERT_CACHE, else ~/.cache/edgebert (read on every call, so tests can redirect it)."""
    return Path(os.environ.get("EDGEBERT_CACHE") or Path.home() / ".cache" / "edgebert").expanduser()


def key_json(key_parts: Mapping[str, Any]) -> str:
    return json.dumps(dict(key_parts), sort_keys=True, separators=(",", ":"))


def cache_key(key_parts: Mapping[str, Any]) -> str:
    """The sha256 hex digest naming the entry for these key parts."""
    return hashlib.sha256(key_json(key_parts).encode()).hexdigest()


def cache_path(kind: str, key_parts: Mapping[str, Any]) -> Path:
    """Where the entry of `kind` (e.g. "tokens", "teacher-logits") for these key parts lives."""
    if not _KIND.match(kind):
        raise EdgebertError(f"cache kind {kind!r} must be lower-case letters, digits, '_', '-' or '.'")
    return cache_root() / kind / f"{cache_key(key_parts)}.npz"


def atomic_save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write `arrays` to `path` as .npz so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp", delete=False)
    try:
        with handle:
            np.savez(handle, **arrays)  # a file object: savez appends no ".npz" to the temp name
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)  # temp files are created 0600; a cache entry is not secret
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays in `path`, or None when it is absent or unreadable (then it is a miss)."""
    try:
        with np.load(path, allow_pickle=False) as entry:
            return {name: entry[name] for name in entry.files}
    except (OSError, ValueError, EOFError, KeyError):
        # Absent, truncated by a disk-full or hand-edited: recompute rather than fail.
        return None


def cached_arrays(kind: str, key_parts: Mapping[str, Any],
                  compute: Callable[[], Mapping[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], bool]:
    """(arrays, hit): the stored entry for the key, else `compute()` saved and returned."""
    path = cache_path(kind, key_parts)
    expected_key = key_json(key_parts)
    stored = load_npz(path)
    if stored is not None and str(stored.pop(KEY_FIELD, "")) == expected_key:
        return stored, True
    arrays = dict(compute())
    if KEY_FIELD in arrays:
        raise EdgebertError(f"cache entry arrays may not be named {KEY_FIELD!r}")
    try:
        atomic_save_npz(path, {**arrays, KEY_FIELD: np.array(expected_key)})
    except OSError as error:
        raise EdgebertError(f"cannot write the cache entry {path} ({error.strerror or error}); "
                            "set EDGEBERT_CACHE to a writable folder") from None
    return arrays, False
