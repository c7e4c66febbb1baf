import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgebert import zoo
from edgebert.arch import SPACE, ArchSpec, SpecError, from_dict
from tests.conftest import random_spec


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_json_round_trip(seed):
    spec = random_spec(random.Random(seed))
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec
    assert again.key() == spec.key()


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_specs_round_trip_and_fit_the_space(name):
    spec = zoo.get(name)
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert SPACE.layers[0] <= spec.num_layers <= SPACE.layers[1]


def _base() -> dict:
    return json.loads(zoo.get("tinybert-4").to_json())


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d.update(hidden=4096), "hidden: 4096 is out of range; allowed 32..1024"),
        (lambda d: d["layers"][1].update(inner=5000), "layers[1].inner: 5000 is out of range; allowed 78..1248"),
        (lambda d: d["layers"][0].update(stack=5), "layers[0].stack: 5 is out of range; allowed 1..4"),
        (lambda d: d["layers"][2].update(heads=0), "layers[2].heads: 0 is out of range"),
        (lambda d: d["layers"][0].update(ffn="W2(gelu(W1(z)))"), "layers[0].ffn: invalid MLP expression"),
        (lambda d: d.update(embedding={"kind": "fancy"}), "embedding.kind: 'fancy' is not allowed; allowed: standard, factorized, trigram"),
        (lambda d: d.update(embedding={"kind": "trigram"}), "embedding.size: required"),
        (lambda d: d.update(layers=[]), "layers: expected a non-empty list"),
        (lambda d: d.update(colour="red"), "spec: unknown field(s) ['colour']"),
        (lambda d: d["layers"][0].pop("inner"), "layers[0]: missing field 'inner'"),
        (lambda d: d["layers"][0].update(heads="12"), "layers[0].heads: expected an integer"),
        (lambda d: d.update(layers=d["layers"] * 4), "layers (count): 16 is out of range; allowed 1..12"),
    ],
)
def test_errors_name_the_field_and_the_allowed_values(mutate, fragment):
    d = _base()
    mutate(d)
    with pytest.raises(SpecError) as e:
        from_dict(d)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_malformed_json_is_one_line():
    with pytest.raises(SpecError, match="malformed spec JSON: Expecting"):
        ArchSpec.from_json('{"hidden": 64,')


def test_param_count_of_bert_base_matches_the_paper():
    # 110M in Devlin et al. counts the pooler: 108.9M + 0.59M.
    assert abs(zoo.get("bert-base").param_count(pooler=True) / 1e6 - 109.48) < 0.01


def test_flops_grow_with_every_dimension():
    small = ArchSpec.uniform(layers=2, hidden=128, heads=2, inner=256)
    assert ArchSpec.uniform(layers=3, hidden=128, heads=2, inner=256).flops(128) > small.flops(128)
    assert ArchSpec.uniform(layers=2, hidden=192, heads=2, inner=256).flops(128) > small.flops(128)
    assert ArchSpec.uniform(layers=2, hidden=128, heads=2, inner=512).flops(128) > small.flops(128)
    assert small.flops(256) > 2 * small.flops(128)  # attention is quadratic in length
