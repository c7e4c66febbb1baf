"""The contract every architecture keeps: build, forward, backward, slice, save/load, export with parity.

Parametrized over the whole zoo (at test size, same structure) and over random
valid specs (hypothesis)."""

import random
from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebert import zoo
from edgebert.arch import ArchSpec, validate
from edgebert.export import export_model
from edgebert.hub import load_model, save_model
from edgebert.modeling import build, extract_active
from tests.conftest import TINY_VOCAB, random_spec, shrink


def batch(seed=0, b=3, t=11):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, TINY_VOCAB, (b, t), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    return ids * mask, mask, torch.zeros_like(ids)


def smaller(spec: ArchSpec) -> tuple[ArchSpec, tuple[int, ...]]:
    """A sub-network of spec: narrower everywhere it can be, and skipping layer 0 when it can."""
    hidden = max(32, spec.hidden - 16)
    layers = spec.layers[1:] if spec.num_layers > 1 else spec.layers
    layer_map = tuple(range(1, spec.num_layers)) if spec.num_layers > 1 else (0,)
    small = tuple(
        replace(l, heads=max(1, l.heads - 1), head_size=max(16, l.head_size - 4),
                inner=max(hidden // 4 + 1, min(l.inner // 2, hidden * 4)), stack=max(1, l.stack - 1))
        for l in layers
    )
    return validate(replace(spec, hidden=hidden, layers=small)), layer_map


def check_contract(spec: ArchSpec, tmp_path) -> None:
    model = build(spec, num_labels=3, seed=0)
    ids, mask, types = batch()
    # forward
    out = model(ids, mask, types, output_hidden_states=True, output_attentions=True)
    assert out.logits.shape == (3, 3)
    assert len(out.hidden_states) == spec.num_layers + 1
    assert out.hidden_states[-1].shape == (3, 11, spec.hidden)
    assert out.attentions[0].shape == (3, spec.layers[0].heads, 11, 11)
    assert torch.isfinite(out.logits).all()
    # padding does not leak: the padded tail of row 2 does not change its logits
    out_trunc = model(ids[2:, :4], mask[2:, :4], types[2:, :4])
    torch.testing.assert_close(out_trunc.logits[0], out.logits[2], atol=1e-5, rtol=1e-5)
    # backward
    model.train()
    loss = model(ids, mask, types, labels=torch.tensor([0, 1, 2])).loss
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    # parameter count agrees with the spec's analytical count
    assert sum(p.numel() for p in model.parameters()) == spec.param_count(pooler=True, num_labels=3)
    # slice: the sub-network in place equals a standalone model of its weights
    sub, layer_map = smaller(spec)
    model.set_active(sub, layer_map)
    sliced = model(ids, mask, types, output_hidden_states=True)
    standalone = extract_active(model)
    assert standalone.config.spec == sub
    alone = standalone(ids, mask, types, output_hidden_states=True)
    torch.testing.assert_close(sliced.logits, alone.logits, atol=1e-6, rtol=1e-6)
    for a, b in zip(sliced.hidden_states, alone.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    model.set_active(None)
    # save / load
    save_model(model, tmp_path / "saved")
    loaded = load_model(tmp_path / "saved")
    assert loaded.kind == "edgebert" and loaded.spec == spec
    torch.testing.assert_close(loaded.model(ids, mask, types).logits, out.logits, atol=1e-6, rtol=1e-6)
    # export with parity on the shipped graph
    manifest = export_model(loaded, tmp_path / "onnx")
    assert manifest["max_abs_diff"] <= 1e-4
    assert (tmp_path / "onnx" / "model.onnx").is_file()


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_contract(name, tmp_path):
    check_contract(shrink(zoo.get(name)), tmp_path)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_random_spec_contract(seed, tmp_path_factory):
    check_contract(random_spec(random.Random(seed)), tmp_path_factory.mktemp("spec"))


def test_minilm_hidden_states_match_transformers(teacher_dir):
    from transformers import AutoTokenizer, BertModel

    ref = BertModel.from_pretrained(teacher_dir).eval()
    ours = load_model(teacher_dir)
    assert ours.kind == "hf-bert" and ours.spec == zoo.get("minilm-l6-h384").with_layers(ours.spec.layers)
    tok = AutoTokenizer.from_pretrained(teacher_dir)
    enc = tok(["a short one.", "a somewhat longer sentence that forces padding on the first."],
              padding=True, return_tensors="pt")
    with torch.no_grad():
        a = ref(**enc, output_hidden_states=True).hidden_states
        b = ours.model(**enc, output_hidden_states=True).hidden_states
    valid = enc["attention_mask"].bool()
    worst = max((x - y)[valid].abs().max().item() for x, y in zip(a, b))
    assert worst <= 1e-5


def test_dropout_only_in_training():
    model = build(shrink(zoo.get("tinybert-4")), num_labels=2, seed=0)
    ids, mask, types = batch()
    a, b = model(ids, mask, types).logits, model(ids, mask, types).logits
    assert torch.equal(a, b)
    model.train()
    assert not torch.equal(model(ids, mask, types).logits, model(ids, mask, types).logits)


def test_regression_head_uses_mse():
    model = build(shrink(zoo.get("tinybert-4")), num_labels=1, seed=0)
    ids, mask, types = batch()
    out = model(ids, mask, types, labels=torch.tensor([0.5, 2.0, 4.5]))
    expected = torch.nn.functional.mse_loss(out.logits.squeeze(-1), torch.tensor([0.5, 2.0, 4.5]))
    assert torch.allclose(out.loss, expected)
