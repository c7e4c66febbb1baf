"""Reference architectures by name.

Each entry is a function returning an ArchSpec, registered once with
`@register`; `get(name)` resolves it, and every name works wherever a model is
asked for (`edgebert export tinybert-4`, `edgebert bench efficientbert`). A
contract test builds, slices, saves and exports every registered model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgebert.arch import ArchSpec, Embedding, LayerSpec, validate
from edgebert.errors import EdgebertError, nearest


@dataclass(frozen=True)
class ZooEntry:
    name: str
    build: Callable[[], ArchSpec]
    source: str


_REGISTRY: dict[str, ZooEntry] = {}


def register(name: str, source: str):
    def wrap(fn: Callable[[], ArchSpec]) -> Callable[[], ArchSpec]:
        if name in _REGISTRY:
            raise ValueError(f"zoo model {name!r} registered twice")
        _REGISTRY[name] = ZooEntry(name, fn, source)
        return fn

    return wrap


def names() -> list[str]:
    return list(_REGISTRY)


def entry(name: str) -> ZooEntry:
    if name not in _REGISTRY:
        raise EdgebertError(f"unknown zoo model {name!r}{nearest(name, _REGISTRY)}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def get(name: str) -> ArchSpec:
    return entry(name).build()


def is_zoo_name(name: str) -> bool:
    return name in _REGISTRY


# --- BERT-style encoders (standard GELU FFN, inner = 4 x hidden unless stated) ---


@register("bert-base", "Devlin et al. 2019, BERT: Pre-training of Deep Bidirectional Transformers (bert-base-uncased)")
def bert_base() -> ArchSpec:
    return ArchSpec.uniform(layers=12, hidden=768, heads=12, inner=3072)


@register("bert-tiny", "Turc et al. 2019, Well-Read Students Learn Better: google/bert_uncased_L-2_H-128_A-2")
def bert_tiny() -> ArchSpec:
    return ArchSpec.uniform(layers=2, hidden=128, heads=2, inner=512)


@register("tinybert-4", "Jiao et al. 2020, TinyBERT (Findings of EMNLP), General_TinyBERT_4L_312D")
def tinybert_4() -> ArchSpec:
    return ArchSpec.uniform(layers=4, hidden=312, heads=12, inner=1200)


@register("tinybert-6", "Jiao et al. 2020, TinyBERT (Findings of EMNLP), General_TinyBERT_6L_768D")
def tinybert_6() -> ArchSpec:
    return ArchSpec.uniform(layers=6, hidden=768, heads=12, inner=3072)


@register("minilm-l6-h384", "Wang et al. 2020, MiniLM (NeurIPS); nreimers/MiniLM-L6-H384-uncased, the body of all-MiniLM-L6-v2")
def minilm_l6_h384() -> ArchSpec:
    return ArchSpec.uniform(layers=6, hidden=384, heads=12, inner=1536)


@register("minilm-l12-h384", "Wang et al. 2020, MiniLM (NeurIPS); microsoft/MiniLM-L12-H384-uncased")
def minilm_l12_h384() -> ArchSpec:
    return ArchSpec.uniform(layers=12, hidden=384, heads=12, inner=1536)


# --- EfficientBERT (Dong et al. 2021, Findings of EMNLP, Table of searched MLPs) ---------
#
# Six layers, hidden 540, 12 heads of 45, MobileBERT's trigram embedding (128-d token
# vectors of each token and its two neighbours, 3 x 128 -> 540). The searched FFN of
# each layer, its stack depth and inner size:
EFFICIENTBERT_FFNS = (
    ("tanh(W2(gelu(W1(x))))", 4, 270),
    ("elu(W2(gelu(W1(x))))", 2, 540),
    ("sigmoid(W2(relu(W1(x))))", 1, 270),
    ("W2(gelu(W1(max(x, tanh(x)))))", 2, 270),
    ("W2(relu(mul(W1(x), x)))", 1, 270),
    ("leaky_relu(W2(gelu(W1(x))))", 2, 180),
)
# Parameter count: the paper reports 15.7M, which includes a 0.4M training-only
# 540 -> 768 projection (used to distil hidden states into a 768-wide teacher) that
# ships nowhere. This spec counts embeddings + encoder = 15.32M; adding that
# projection (540 x 768 + 768 = 0.415M) gives 15.74M, the published 15.7M. An
# exported classifier also carries the pooler (540 x 540 + 540 = 0.29M). See
# tests/test_zoo.py::test_efficientbert_parameter_count.


def _efficientbert(hidden: int) -> ArchSpec:
    scale = hidden / 540
    heads = 12
    layers = tuple(
        LayerSpec(heads=heads, head_size=hidden // heads, inner=round(inner * scale), ffn=ffn, stack=stack)
        for ffn, stack, inner in EFFICIENTBERT_FFNS
    )
    return validate(ArchSpec(hidden=hidden, layers=layers, embedding=Embedding("trigram", 128)))


@register("efficientbert", "Dong et al. 2021, EfficientBERT (Findings of EMNLP), the searched 6-layer model")
def efficientbert() -> ArchSpec:
    return _efficientbert(540)


@register("efficientbert-tiny", "Dong et al. 2021, EfficientBERT-TINY: the same searched FFNs at hidden 360")
def efficientbert_tiny() -> ArchSpec:
    return _efficientbert(360)
