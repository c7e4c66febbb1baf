"""Rank a model's units by importance and reorder its weights so the most important come first.

Slicing keeps the *first* k units (modeling.py); reordering first makes those the
k most important. Three kinds of unit are ranked:

- hidden units: one global order shared by the embeddings, every layer, every
  LayerNorm and the pooler, so the residual stream stays aligned;
- attention heads, per layer;
- inner (FFN) units, per layer and stack sub-layer.

`rank_units` is the one ranking function: the extraction init (distill.py) and
the search's supernet both call it. For the standard FFN (and any expression
whose binary operations never mix a W1-derived operand with x) reordering leaves
the function unchanged; where an expression mixes widths (`mul(W1(x), x)` pairs
inner unit i with hidden unit i), reordering changes which units meet, as
slicing does in EfficientBERT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from edgebert import mlp
from edgebert.modeling import EdgeBert, EdgeBertForSequenceClassification, FFNSublayer, encoder_of


@dataclass
class UnitOrder:
    """Permutations, most important unit first."""

    hidden: torch.Tensor  # (H,)
    heads: list[torch.Tensor]  # per layer, (nh,)
    inner: list[list[torch.Tensor]]  # per layer, per sub-layer, (I,)


# --- scores -----------------------------------------------------------------------------


def _unit_scores(model: EdgeBert, stat: Callable[[nn.Parameter], torch.Tensor]) -> tuple:
    """Sum a per-weight statistic (|w| or |w * grad|) over each unit's weights."""
    enc = encoder_of(model)
    H = enc.config.spec.hidden
    hidden = torch.zeros(H)
    emb = enc.embeddings
    if emb.project is None:
        hidden += stat(emb.word.weight).sum(0)
    else:
        hidden += stat(emb.project.weight).sum(1)
    hidden += stat(emb.position.weight).sum(0) + stat(emb.token_type.weight).sum(0)
    heads, inner = [], []
    for layer in enc.layers:
        att = layer.attention
        nh, hs = att.heads, att.head_size
        head = torch.zeros(nh)
        for lin in (att.query, att.key, att.value):
            s = stat(lin.weight)  # (nh*hs, H)
            hidden += s.sum(0)
            head += s.view(nh, hs, -1).sum((1, 2))
        s = stat(att.output.weight)  # (H, nh*hs)
        hidden += s.sum(1)
        head += s.view(-1, nh, hs).sum((0, 2))
        heads.append(head)
        subs = []
        for sub in layer.ffn:
            s1, s2 = stat(sub.W1.weight), stat(sub.W2.weight)  # (I, H), (H, w)
            hidden += s1.sum(0) + s2.sum(1)
            unit = s1.sum(1)
            if _w2_input_is_inner(sub):
                unit = unit + s2.sum(0)
            subs.append(unit)
        inner.append(subs)
    hidden += stat(enc.pooler.weight).sum(0) + stat(enc.pooler.weight).sum(1)
    return hidden, heads, inner


def _w2_input_is_inner(sub: FFNSublayer) -> bool:
    return sub.W2.in_features == sub.W1.out_features


def _to_order(scores) -> UnitOrder:
    hidden, heads, inner = scores

    def desc(t: torch.Tensor) -> torch.Tensor:
        return torch.argsort(t, descending=True, stable=True)

    return UnitOrder(desc(hidden), [desc(h) for h in heads], [[desc(u) for u in subs] for subs in inner])


def rank_units(
    model: EdgeBert,
    *,
    method: str = "magnitude",
    batches: Iterable[dict] | None = None,
    loss_fn: Callable[[EdgeBert, dict], torch.Tensor] | None = None,
) -> UnitOrder:
    """The one importance ranking.

    method "magnitude": sum of |w| over each unit's weights (no data needed).
    method "gradient": first-order Taylor importance, sum over batches of
    |w * dL/dw| per unit (Molchanov et al. 2019; Michel et al. 2019 for heads),
    with `loss_fn(model, batch)` giving the loss (task or distillation).
    """
    if method == "magnitude":
        with torch.no_grad():
            return _to_order(_unit_scores(model, lambda p: p.detach().abs()))
    if method != "gradient":
        raise ValueError(f"unknown importance method {method!r}; use 'magnitude' or 'gradient'")
    if batches is None or loss_fn is None:
        raise ValueError("gradient importance needs batches and a loss_fn")
    was_training = model.training
    model.eval()  # no dropout: the ranking should be deterministic
    accum: dict[int, torch.Tensor] = {}
    params = [p for p in model.parameters()]
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        for p in params:
            if p.grad is not None:
                accum[id(p)] = accum.get(id(p), 0) + (p.detach() * p.grad).abs()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    with torch.no_grad():
        return _to_order(_unit_scores(model, lambda p: accum.get(id(p), torch.zeros_like(p))))


# --- reordering -----------------------------------------------------------------------------


def _take(t: torch.Tensor, dim: int, idx: torch.Tensor) -> None:
    t.data = t.data.index_select(dim, idx).contiguous()


def _head_index(order: torch.Tensor, hs: int) -> torch.Tensor:
    """Row indices of (nh*hs) that move whole heads: head order (nh,) -> (nh*hs,)."""
    return (order[:, None] * hs + torch.arange(hs)[None, :]).reshape(-1)


@torch.no_grad()
def permute_units(model: EdgeBert, order: UnitOrder) -> None:
    """Reorder the weights in place so unit order[0] comes first, everywhere it appears."""
    enc = encoder_of(model)
    P = order.hidden
    emb = enc.embeddings
    if emb.project is None:
        _take(emb.word.weight, 1, P)
    else:
        _take(emb.project.weight, 0, P)
        _take(emb.project.bias, 0, P)
    for t in (emb.position.weight, emb.token_type.weight):
        _take(t, 1, P)
    _take(emb.norm.weight, 0, P)
    _take(emb.norm.bias, 0, P)
    for i, layer in enumerate(enc.layers):
        att = layer.attention
        rows = _head_index(order.heads[i], att.head_size)
        for lin in (att.query, att.key, att.value):
            _take(lin.weight, 1, P)
            _take(lin.weight, 0, rows)
            _take(lin.bias, 0, rows)
        _take(att.output.weight, 0, P)
        _take(att.output.weight, 1, rows)
        _take(att.output.bias, 0, P)
        _take(att.norm.weight, 0, P)
        _take(att.norm.bias, 0, P)
        for s, sub in enumerate(layer.ffn):
            Q = order.inner[i][s]
            _take(sub.W1.weight, 1, P)
            _take(sub.W1.weight, 0, Q)
            _take(sub.W1.bias, 0, Q)
            _take(sub.W2.weight, 0, P)
            _take(sub.W2.bias, 0, P)
            if _w2_input_is_inner(sub):
                _take(sub.W2.weight, 1, Q)
            elif sub.W2.in_features == P.numel():
                _take(sub.W2.weight, 1, P)
            _take(sub.norm.weight, 0, P)
            _take(sub.norm.bias, 0, P)
    _take(enc.pooler.weight, 0, P)
    _take(enc.pooler.weight, 1, P)
    _take(enc.pooler.bias, 0, P)
    if isinstance(model, EdgeBertForSequenceClassification):
        _take(model.classifier.weight, 1, P)


def is_exactly_permutable(model: EdgeBert) -> bool:
    """True when reordering units cannot change the model's function (no mixed-width binary ops)."""
    enc = encoder_of(model)
    for layer in enc.layers:
        for sub in layer.ffn:
            for node in sub.expr.walk():
                if node.op in mlp.OPERATIONS and mlp.OPERATIONS[node.op].arity == 2:
                    # An operand is in inner space when it holds W1 but not W2.
                    inner_space = [a.count("W1") == 1 and a.count("W2") == 0 for a in node.args]
                    if inner_space[0] != inner_space[1]:
                        return False
    return True
