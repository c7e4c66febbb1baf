"""A tiny world for search tests: a 2-layer teacher with a head, 200 SST-2 rows, a synthetic table."""

from __future__ import annotations

import pytest

from edgebert.arch import ArchSpec
from edgebert.hub import save_model
from edgebert.modeling import build
from edgebert.search.context import SearchConfig
from tests.conftest import GLUE_DIR
from tests.latency import synthetic


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, teacher_dir):
    spec = ArchSpec.uniform(layers=2, hidden=128, heads=4, head_size=32, inner=256, max_positions=128)
    out = tmp_path_factory.mktemp("teacher") / "tiny"
    save_model(build(spec, num_labels=2, seed=0), out, tokenizer_dir=teacher_dir, trained_head=True)
    return out


@pytest.fixture(scope="session")
def tiny_glue(tmp_path_factory):
    if not (GLUE_DIR / "SST-2").is_dir():
        pytest.skip("../shared/data/glue is not beside the repository")
    root = tmp_path_factory.mktemp("glue")
    (root / "SST-2").mkdir()
    for split, rows in (("train", 240), ("dev", 40)):
        lines = (GLUE_DIR / "SST-2" / f"{split}.tsv").read_text().splitlines()
        (root / "SST-2" / f"{split}.tsv").write_text("\n".join(lines[: rows + 1]) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_table(tmp_path_factory):
    return synthetic.table().save(tmp_path_factory.mktemp("table") / "synthetic.json")


@pytest.fixture
def tiny_config(tiny_teacher, tiny_glue, tiny_table, tmp_path):
    def make(**overrides) -> SearchConfig:
        base = dict(teacher=str(tiny_teacher), task="sst2", data=str(tiny_glue), out=str(tmp_path / "search"),
                    budget_ms=2.0, table=str(tiny_table), trials=2, proxy_steps=2, supernet_steps=2, heldout_max=24,
                    final_minutes=0.05, verify_top=2, compare_with=None, max_length=32,
                    min_layers=1)  # the synthetic table's budgets were set for the whole space, one layer included
        base.update(overrides)
        return SearchConfig(**base)

    return make
