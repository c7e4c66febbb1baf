"""Distillation pieces: losses, layer and head mapping, extraction init, cached teacher outputs."""

from dataclasses import replace

import pytest
import torch

from edgebert import data, zoo
from edgebert.arch import Embedding
from edgebert.distill import (
    KDLoss,
    LossWeights,
    attention_kl,
    extract_student,
    head_map,
    layer_mapping,
    masked_mse,
    regression_logits,
    soft_logits,
    teacher_outputs,
)
from edgebert.distill.losses import Needs, Targets
from edgebert.errors import EdgebertError
from edgebert.importance import rank_units
from edgebert.modeling import build
from tests.conftest import GLUE_DIR, shrink
from tests.test_modeling import batch

H = 64  # tiny teacher: 4 layers, hidden 64, 4 heads of 16
TINY_ROWS = {"SST-2": (48, 24), "STS-B": (32, 16)}  # (train, dev) rows of each task copy


def write_tiny_glue(root):
    """The first rows of the shared GLUE files, in GLUE's layout, under `root` (a temporary folder)."""
    for task, (n_train, n_dev) in TINY_ROWS.items():
        (root / task).mkdir(parents=True)
        for split, n in (("train", n_train), ("dev", n_dev)):
            lines = (GLUE_DIR / task / f"{split}.tsv").read_text().splitlines()
            (root / task / f"{split}.tsv").write_text("\n".join(lines[: n + 1]) + "\n")
    return root


@pytest.fixture(scope="module")
def tiny_glue(tmp_path_factory):
    return write_tiny_glue(tmp_path_factory.mktemp("glue"))


@pytest.fixture(scope="module")
def teacher():
    return build(shrink(zoo.get("minilm-l6-h384"), hidden=H, max_layers=4), num_labels=2, seed=0)


def _out(model, b):
    ids, mask, types = b
    return model(ids, mask, types, output_hidden_states=True, output_attentions=True)


# --- mapping -----------------------------------------------------------------------------


def test_layer_mappings():
    assert layer_mapping("uniform", 3, 6) == (2, 4, 6)
    assert layer_mapping("uniform", 4, 6) == (2, 3, 5, 6)
    assert layer_mapping("uniform", 6, 6) == (1, 2, 3, 4, 5, 6)
    assert layer_mapping("last", 3, 6) == (4, 5, 6)
    assert layer_mapping("1, 3,5", 3, 6) == (1, 3, 5)
    for kind, s, t in (("1,2", 3, 6), ("1,1,2", 3, 6), ("0,2,4", 3, 6), ("2,4,7", 3, 6), ("a,b", 2, 6), ("uniform", 7, 6)):
        with pytest.raises(EdgebertError):
            layer_mapping(kind, s, t)


def test_head_maps_are_averages_of_teacher_heads():
    m = head_map(4, 12)
    assert m.shape == (4, 12)
    torch.testing.assert_close(m.sum(1), torch.ones(4))
    torch.testing.assert_close(m[0, :3], torch.full((3,), 1 / 3))  # groups of three
    assert head_map(12, 4).argmax(1).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert head_map(2, 4, torch.tensor([3, 1])).tolist() == [[0, 0, 0, 1], [0, 1, 0, 0]]


# --- losses --------------------------------------------------------------------------------


def _probs(seed, mask):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(mask.shape[0], 4, mask.shape[1], mask.shape[1], generator=g)
    return (scores + (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min).softmax(-1)


def test_each_loss_is_zero_for_identical_inputs_and_positive_otherwise():
    _, mask, _ = batch()
    g = torch.Generator().manual_seed(0)
    h1, h2 = torch.randn(3, 11, 8, generator=g), torch.randn(3, 11, 8, generator=g)
    l1, l2 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    a1, a2 = _probs(1, mask), _probs(2, mask)
    cases = [
        (lambda x, y: masked_mse(x, y, mask), h1, h2),
        (lambda x, y: attention_kl(x, y, mask), a1, a2),
        (lambda x, y: soft_logits(x, y, 1.0), l1, l2),
        (lambda x, y: soft_logits(x, y, 4.0), l1, l2),
        (regression_logits, l1[:, :1], l2[:, :1]),
    ]
    for fn, x, y in cases:
        assert float(fn(x, x)) == pytest.approx(0.0, abs=1e-6)
        assert float(fn(x, y)) > 1e-3
    # padding does not count: differences only at masked positions cost nothing
    h3 = h1.clone()
    h3[~mask.bool()] += 5.0
    assert float(masked_mse(h3, h1, mask)) == pytest.approx(0.0, abs=1e-6)


def test_kd_loss_is_zero_for_the_teacher_itself_and_positive_for_a_student(teacher):
    b = batch()
    t_out = _out(teacher, b)
    mapping = (1, 2, 3, 4)
    targets = Targets(logits=t_out.logits, hidden=dict(enumerate(t_out.hidden_states)),
                      attention={k: t_out.attentions[k - 1] for k in mapping})
    w = LossWeights(embedding=1, hidden=1, attention=1, logits=1)
    tspec = teacher.config.spec
    total, parts = KDLoss(w, mapping, tspec, tspec)(t_out, targets, b[1], None)
    assert set(parts) == {"embedding", "hidden", "attention", "logits"}
    assert float(total.detach()) == pytest.approx(0.0, abs=1e-5)

    # a narrower student with fewer heads: projections and head maps, every part positive
    sspec = shrink(zoo.get("minilm-l6-h384"), hidden=48, max_layers=2)
    sspec = sspec.with_layers([replace(layer, heads=2) for layer in sspec.layers])
    student = build(sspec, num_labels=2, seed=1)
    loss = KDLoss(w, (2, 4), sspec, tspec)
    assert loss.hidden_proj.in_features == 48 and loss.hidden_proj.out_features == H
    total, parts = loss(_out(student, b), targets, b[1], None)
    assert all(v > 0 for v in parts.values()) and float(total.detach()) > 0
    total.backward()
    assert loss.hidden_proj.weight.grad is not None  # the projection learns with the student


# --- extraction ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["magnitude", "gradient"])
def test_a_full_size_extracted_student_is_the_teacher(teacher, method):
    kw = {}
    if method == "gradient":
        kw = {"batches": [batch(0), batch(1)],
              "loss_fn": lambda m, b: m(*b, labels=torch.tensor([0, 1, 0])).loss}
    spec = teacher.config.spec
    ex = extract_student(teacher, spec, layer_mapping("uniform", 4, 4), method=method, **kw)
    assert ex.fresh == [] and ex.report()["copied_fraction"] == 1.0
    b = batch(2)
    want, got = _out(teacher, b), _out(ex.model, b)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=1e-5)
    for hw, hg in zip(want.hidden_states, got.hidden_states, strict=True):  # the residual stream, unit for unit
        torch.testing.assert_close(hg, hw, atol=1e-5, rtol=1e-5)


def test_the_embedded_teacher_extracted_at_full_size_is_itself(teacher_dir):
    from edgebert.hub import load_model

    t = load_model(teacher_dir).model
    ex = extract_student(t, t.config.spec, (1, 2, 3, 4, 5, 6))
    ids = torch.tensor([[101, 1037, 2204, 3185, 102, 0], [101, 2009, 2001, 6659, 1012, 102]])
    mask = (ids > 0).long()
    want, got = t(ids, mask).logits, ex.model(ids, mask).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_extraction_copies_the_chosen_units_exactly(teacher):
    tspec = teacher.config.spec
    sspec = shrink(zoo.get("minilm-l6-h384"), hidden=48, max_layers=2)
    sspec = sspec.with_layers([replace(layer, heads=2, inner=40) for layer in sspec.layers])
    mapping = (2, 4)
    ex = extract_student(teacher, sspec, mapping)
    order = rank_units(teacher)
    hid = order.hidden[:48]
    assert torch.equal(ex.hidden_sources, hid)  # the most important hidden units, not the first
    assert not torch.equal(hid, torch.arange(48))
    T, S = teacher.state_dict(), ex.model.state_dict()
    torch.testing.assert_close(S["edgebert.embeddings.word.weight"], T["edgebert.embeddings.word.weight"][:, hid])
    torch.testing.assert_close(S["edgebert.embeddings.norm.weight"], T["edgebert.embeddings.norm.weight"][hid])
    torch.testing.assert_close(S["classifier.weight"], T["classifier.weight"][:, hid])
    hs = tspec.layers[0].head_size
    for j, k in enumerate(mapping):
        heads, inner = ex.head_sources[j], ex.inner_sources[j]
        assert torch.equal(heads, order.heads[k - 1][:2]) and torch.equal(inner, order.inner[k - 1][0][:40])
        rows = (heads[:, None] * hs + torch.arange(hs)).reshape(-1)  # the rows of the chosen heads
        t, s = f"edgebert.layers.{k - 1}.", f"edgebert.layers.{j}."
        torch.testing.assert_close(S[s + "attention.query.weight"], T[t + "attention.query.weight"][rows][:, hid])
        torch.testing.assert_close(S[s + "attention.output.weight"], T[t + "attention.output.weight"][hid][:, rows])
        torch.testing.assert_close(S[s + "ffn.0.W1.weight"], T[t + "ffn.0.W1.weight"][inner][:, hid])
        torch.testing.assert_close(S[s + "ffn.0.W2.weight"], T[t + "ffn.0.W2.weight"][hid][:, inner])
        torch.testing.assert_close(S[s + "ffn.0.norm.bias"], T[t + "ffn.0.norm.bias"][hid])


def test_an_unlike_student_takes_what_has_a_counterpart(teacher):
    base = shrink(zoo.get("minilm-l6-h384"), hidden=48, max_layers=2)
    # EfficientBERT's layer-5 FFN, stacked twice, over a trigram embedding
    layers = [replace(layer, ffn="W2(relu(mul(W1(x), x)))", inner=40, stack=2) for layer in base.layers]
    sspec = replace(base, embedding=Embedding("trigram", 32)).with_layers(layers)
    ex = extract_student(teacher, sspec, (2, 4))
    assert "edgebert.layers.0.ffn.0.W1.weight" in ex.copied and "edgebert.layers.0.ffn.0.W2.weight" in ex.copied
    assert "edgebert.layers.0.attention.query.weight" in ex.copied
    assert "edgebert.embeddings.position.weight" in ex.copied
    assert {"edgebert.layers.0.ffn.1.W1.weight", "edgebert.embeddings.word.weight",
            "edgebert.embeddings.project.weight"} <= set(ex.fresh)
    assert 0 < ex.report()["copied_fraction"] < 1


def test_a_stacked_sub_layer_the_teacher_lacks_starts_near_the_identity(teacher):
    """Its W2 is zero and its LayerNorm carries the stream's scale: the stacked student's hidden
    states start near the unstacked student's (random sub-layers put them ~100 % away)."""
    base = shrink(zoo.get("minilm-l6-h384"), hidden=48, max_layers=2)
    one = base.with_layers([replace(layer, inner=40, stack=1) for layer in base.layers])
    three = base.with_layers([replace(layer, inner=40, stack=3) for layer in base.layers])
    ex = extract_student(teacher, three, (2, 4))
    assert "edgebert.layers.0.ffn.2.W2.weight" in ex.pass_through and not set(ex.pass_through) & set(ex.fresh)
    assert not ex.model.edgebert.layers[1].ffn[1].W2.weight.any()
    ids = torch.randint(1, 1000, (2, 12))
    h1 = extract_student(teacher, one, (2, 4)).model(ids, output_hidden_states=True).hidden_states[-1]
    h3 = ex.model(ids, output_hidden_states=True).hidden_states[-1]
    assert (h3 - h1).norm() / h1.norm() < 0.5


def test_a_student_wider_than_the_teacher_is_refused(teacher):
    wide = shrink(zoo.get("minilm-l6-h384"), hidden=80, max_layers=2)
    with pytest.raises(EdgebertError, match="wider than the teacher") as e:
        extract_student(teacher, wide, (2, 4))
    assert "\n" not in str(e.value)
    many_heads = shrink(zoo.get("minilm-l6-h384"), hidden=48, max_layers=2)
    many_heads = many_heads.with_layers([replace(layer, heads=8) for layer in many_heads.layers])
    with pytest.raises(EdgebertError, match="heads 8 exceeds"):
        extract_student(teacher, many_heads, (2, 4))


# --- cached teacher outputs ------------------------------------------------------------------------


def test_cached_teacher_outputs_equal_a_forward_pass_and_hit_the_cache(tiny_glue, teacher_dir, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setenv("EDGEBERT_CACHE", str(tmp_path))  # an empty cache: the first call must miss

    t = build(replace(shrink(zoo.get("minilm-l6-h384"), hidden=H, max_layers=4), vocab_size=30522), num_labels=2, seed=3)
    tok = AutoTokenizer.from_pretrained(str(teacher_dir))
    enc = data.encode(data.load_task("sst2", tiny_glue, "dev"), tok, 64)
    need = Needs(logits=True, hidden=(0, 2), attention=(2, 4))
    first = teacher_outputs(t, "test-teacher-3", enc, need, progress=False)
    second = teacher_outputs(t, "test-teacher-3", enc, need, progress=False)
    assert (first.misses, second.hits, second.misses) == (5, 5, 0)
    b = next(iter(data.iter_batches(enc, 7, shuffle=True, seed=1)))  # mixed lengths, padded
    got = second.targets(b)
    with torch.no_grad():
        want = t(**b.model_inputs(), output_hidden_states=True, output_attentions=True)
    m = b.attention_mask.bool()
    torch.testing.assert_close(got.logits, want.logits)
    for k in (0, 2):
        torch.testing.assert_close(got.hidden[k][m], want.hidden_states[k][m], atol=2e-2, rtol=1e-2)  # fp16
    for k in (2, 4):
        a = want.attentions[k - 1] * m[:, None, :, None] * m[:, None, None, :]
        torch.testing.assert_close(got.attention[k], a, atol=1e-3, rtol=1e-2)
