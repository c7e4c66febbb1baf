"""Atomic writes: a reader (or a crash) never sees a half-written file or folder.

Files are written to a temporary sibling and renamed into place (os.replace is
atomic on one filesystem); folders are built in a temporary sibling and swapped
in only when complete, so a failed export leaves `--out` as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from edgebert.errors import EdgebertError


def read_json(path: str | Path, what: str = "JSON") -> Any:
    """A user's JSON file; malformed content is one line naming the file, line and what it should be."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise EdgebertError(f"{p}: malformed {what} ({getattr(e, 'msg', e)}{where})") from None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


@contextlib.contextmanager
def atomic_dir(out: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `out` (whose old
    content is removed only after the swap); on failure it is deleted and `out`
    is untouched."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# Caches of exported models grow with every profile, validation and search (one folder per
# random architecture): left alone they filled this machine's disk (62 GB in a week, until a
# validation failed with "No space left on device").
CACHE_MAX_GB_ENV = "EDGEBERT_CACHE_MAX_GB"
CACHE_MAX_GB = 16.0  # per cache kind (exports, micro-models)
RECENT_S = 3600.0  # entries used this recently belong to work in progress: never pruned


def touch(path: str | Path) -> None:
    """Mark a cache entry as just used (its mtime is what pruning orders by)."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)


def _size(entry: Path) -> int:
    if entry.is_file():
        return entry.stat().st_size
    return sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())


def prune_cache(root: str | Path, max_bytes: int | None = None, recent_s: float = RECENT_S) -> list[Path]:
    """Delete `root`'s least recently used entries (its direct children) until it holds at most
    `max_bytes` (default: $EDGEBERT_CACHE_MAX_GB, else CACHE_MAX_GB); entries used within
    `recent_s` seconds stay even above the limit. Returns what was deleted."""
    import time

    root = Path(root)
    if max_bytes is None:
        max_bytes = int(float(os.environ.get(CACHE_MAX_GB_ENV) or CACHE_MAX_GB) * 2**30)
    if not root.is_dir():
        return []
    entries = []
    for e in root.iterdir():
        if e.name.startswith("."):  # a file or folder being written (files.atomic_*)
            continue
        try:
            entries.append((e.stat().st_mtime, _size(e), e))
        except FileNotFoundError:  # another process pruned it meanwhile
            continue
    total = sum(size for _, size, _ in entries)
    now, removed = time.time(), []
    for mtime, size, entry in sorted(entries, key=lambda t: t[0]):
        if total <= max_bytes or now - mtime < recent_s:
            break
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        total -= size
        removed.append(entry)
    return removed
