import torch

from edgebert import zoo
from edgebert.importance import UnitOrder, is_exactly_permutable, permute_units, rank_units
from edgebert.modeling import build
from tests.conftest import shrink
from tests.test_modeling import batch


def _ce(model, b):
    ids, mask, types = b
    return model(ids, mask, types, labels=torch.tensor([0, 1, 0])).loss


def test_permuting_a_standard_model_keeps_its_function():
    model = build(shrink(zoo.get("minilm-l6-h384")), num_labels=2, seed=0)
    ids, mask, types = batch()
    before = model(ids, mask, types, output_hidden_states=True)
    assert is_exactly_permutable(model)
    order = rank_units(model)
    permute_units(model, order)
    after = model(ids, mask, types, output_hidden_states=True)
    torch.testing.assert_close(after.logits, before.logits, atol=1e-5, rtol=1e-5)
    # hidden states are the same units, reordered
    torch.testing.assert_close(after.hidden_states[-1], before.hidden_states[-1][..., order.hidden], atol=1e-5, rtol=1e-5)


def test_after_permutation_the_first_units_are_the_most_important():
    model = build(shrink(zoo.get("tinybert-4")), num_labels=2, seed=0)
    permute_units(model, rank_units(model))
    again = rank_units(model)
    assert torch.equal(again.hidden, torch.arange(model.config.spec.hidden))
    for heads in again.heads:
        assert torch.equal(heads, torch.arange(heads.numel()))


def test_gradient_importance_uses_the_loss():
    model = build(shrink(zoo.get("tinybert-4")), num_labels=2, seed=0)
    order = rank_units(model, method="gradient", batches=[batch(0), batch(1)], loss_fn=_ce)
    assert isinstance(order, UnitOrder)
    assert sorted(order.hidden.tolist()) == list(range(model.config.spec.hidden))
    assert sorted(order.inner[0][0].tolist()) == list(range(model.config.spec.layers[0].inner))
    assert all(p.grad is None for p in model.parameters())  # leaves no gradients behind


def test_mixed_width_expressions_are_flagged():
    model = build(shrink(zoo.get("efficientbert"), max_layers=6), num_labels=2, seed=0)
    assert not is_exactly_permutable(model)  # layer 5 multiplies W1(x) by x
