import pytest

from edgebert import zoo
from edgebert.errors import EdgebertError
from edgebert.zoo import EFFICIENTBERT_FFNS


def test_registry_has_the_reference_models():
    for name in ("bert-base", "tinybert-4", "tinybert-6", "minilm-l6-h384", "minilm-l12-h384",
                 "efficientbert", "efficientbert-tiny"):
        assert name in zoo.names()
        assert zoo.entry(name).source


def test_unknown_name_suggests_the_nearest():
    with pytest.raises(EdgebertError, match="did you mean 'tinybert-4'"):
        zoo.get("tinybert4")


def test_efficientbert_parameter_count():
    """Published: 15.7M, including a 0.4M training-only 540 -> 768 projection."""
    spec = zoo.get("efficientbert")
    encoder = spec.param_count()  # embeddings + encoder, what ships without pooler/head
    projection = 540 * 768 + 768
    assert abs(encoder / 1e6 - 15.32) < 0.01
    assert abs((encoder + projection) / 1e6 - 15.7) < 0.05


def test_efficientbert_layers_are_the_published_ones():
    spec = zoo.get("efficientbert")
    assert spec.hidden == 540 and spec.embedding.kind == "trigram" and spec.embedding.size == 128
    assert [(l.ffn, l.stack, l.inner) for l in spec.layers] == list(EFFICIENTBERT_FFNS)
    assert all(l.heads == 12 for l in spec.layers)


def test_efficientbert_tiny_scales_the_inner_sizes():
    assert [l.inner for l in zoo.get("efficientbert-tiny").layers] == [180, 360, 180, 180, 180, 120]
