import os
import time

from edgebert import zoo
from edgebert.export import cached_export
from edgebert.files import prune_cache, touch
from tests.conftest import shrink


def _entry(root, name, mb, age_s, folder=True):
    path = root / name
    if folder:
        path.mkdir()
        (path / "model.onnx").write_bytes(b"x" * (mb << 20))
    else:
        path.write_bytes(b"x" * (mb << 20))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_prune_drops_least_recently_used_until_under_the_limit(tmp_path):
    old = _entry(tmp_path, "old", 2, 3 * 3600)
    older = _entry(tmp_path, "older", 2, 5 * 3600, folder=False)
    used = _entry(tmp_path, "used", 2, 4 * 3600)
    touch(used)  # served from the cache just now
    fresh = _entry(tmp_path, "fresh", 2, 2 * 3600)
    removed = prune_cache(tmp_path, max_bytes=5 << 20)
    assert removed == [older, old]
    assert used.exists() and fresh.exists()


def test_prune_never_deletes_work_in_progress(tmp_path):
    recent = [_entry(tmp_path, f"r{i}", 1, 60) for i in range(3)]
    stale = _entry(tmp_path, "stale", 1, 7200)
    assert prune_cache(tmp_path, max_bytes=0) == [stale]
    assert all(r.exists() for r in recent)


def test_prune_of_a_missing_cache_is_a_no_op(tmp_path):
    assert prune_cache(tmp_path / "none", max_bytes=0) == []


def test_cached_export_keeps_the_cache_within_its_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBERT_CACHE", str(tmp_path))
    monkeypatch.setenv("EDGEBERT_CACHE_MAX_GB", "0")
    (tmp_path / "exports").mkdir()
    stale = _entry(tmp_path / "exports", "stale", 1, 7200)
    _, onnx_path = cached_export("tiny", spec=shrink(zoo.get("bert-tiny")), int8=False, graph_optimization="none")
    assert onnx_path.is_file() and not stale.exists()
