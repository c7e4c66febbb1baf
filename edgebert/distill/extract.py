"""Extraction init (ETD, Chen et al. 2021): a student's weights taken from its teacher.

The slicing is the model family's own (modeling.py), the same code the supernet runs:

1. rank the teacher's units on a copy of it (`importance.rank_units`: magnitude,
   or gradients of the task loss over a few batches) and move the most important
   first (`permute_units`): one global hidden order shared by the embeddings,
   every layer and every LayerNorm, so the residual stream stays aligned; heads
   and FFN units per layer;
2. make the teacher-shaped sub-network that overlaps the student active
   (`set_active`: the student's widths, the mapped teacher layers) and read its
   sliced weights (`active_weights`, named as a standalone model names them);
3. copy each into the student parameter of that name and shape. What has no
   counterpart stays freshly initialised: for an MLP expression unlike the
   teacher's, the W1/W2 whose shapes differ; stack sub-layers beyond the
   teacher's one; a factorized or trigram embedding's token vectors.

A full-width student keeps the teacher's hidden order (permuting every unit is
pointless and the hidden-state losses then compare unit to unit), so a
full-size extracted student *is* the teacher.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

import torch

from edgebert.arch import ArchSpec, LayerSpec
from edgebert.errors import EdgebertError
from edgebert.importance import UnitOrder, permute_units, rank_units
from edgebert.modeling import EdgeBertForSequenceClassification, build

IMPORTANCE_METHODS = ("magnitude", "gradient")


@dataclass
class Extraction:
    """An extracted student and where each of its units came from (teacher indices, permuted order)."""

    model: EdgeBertForSequenceClassification
    hidden_sources: torch.Tensor  # (Hs,) teacher hidden unit of each student hidden unit
    head_sources: list[torch.Tensor]  # per student layer, (nh_s,) teacher heads
    inner_sources: list[torch.Tensor]  # per student layer, (I_s,) teacher FFN units of its sub-layer 0
    copied: list[str] = field(default_factory=list)  # parameter names taken from the teacher
    fresh: list[str] = field(default_factory=list)  # parameter names left at their fresh init
    pass_through: list[str] = field(default_factory=list)  # set so an extra stacked sub-layer starts ~ identity

    def report(self) -> dict:
        numel = dict(self.model.named_parameters())
        copied = sum(numel[n].numel() for n in self.copied)
        total = sum(p.numel() for p in self.model.parameters())
        return {"copied_params": copied, "total_params": total, "copied_fraction": round(copied / total, 4),
                "fresh": self.fresh, "pass_through": self.pass_through}


def check_fits(teacher: ArchSpec, student: ArchSpec, mapping: Sequence[int]) -> None:
    """A student must be no wider than the teacher anywhere it takes weights from it."""

    def bad(why: str) -> EdgebertError:
        return EdgebertError(f"cannot extract the student from the teacher: {why}")

    if student.vocab_size != teacher.vocab_size or student.type_vocab_size != teacher.type_vocab_size:
        raise bad(f"vocabularies differ (student {student.vocab_size}, teacher {teacher.vocab_size}); they share a tokenizer")
    if student.hidden > teacher.hidden:
        raise bad(f"student hidden {student.hidden} is wider than the teacher's {teacher.hidden}")
    if student.max_positions > teacher.max_positions:
        raise bad(f"student max_positions {student.max_positions} exceeds the teacher's {teacher.max_positions}")
    for j, k in enumerate(mapping):
        s, t = student.layers[j], teacher.layers[k - 1]
        for name in ("heads", "head_size", "inner"):
            if getattr(s, name) > getattr(t, name):
                raise bad(f"student layer {j + 1} {name} {getattr(s, name)} exceeds teacher layer {k}'s {getattr(t, name)}")


def donor_spec(teacher: ArchSpec, student: ArchSpec, mapping: Sequence[int]) -> ArchSpec:
    """The sub-network of the teacher that overlaps the student: the student's widths, the
    teacher's expressions, embedding and stack depth (what `set_active` can run)."""
    layers = []
    for j, k in enumerate(mapping):
        s, t = student.layers[j], teacher.layers[k - 1]
        layers.append(LayerSpec(heads=s.heads, head_size=s.head_size, inner=s.inner, ffn=t.ffn, stack=min(s.stack, t.stack)))
    return replace(teacher, hidden=student.hidden, layers=tuple(layers))


def _pass_through_stack_layers(model, teacher: ArchSpec, student: ArchSpec, mapping: Sequence[int]) -> list[str]:
    """Start every stacked FFN sub-layer the teacher lacks as (nearly) the identity, not as noise:
    W2 = 0, so h -> LayerNorm(h + expr(h)) is LayerNorm(h) wherever W2 is the expression's outermost
    operation; and that LayerNorm rescales by the residual stream's typical scale and offset (the
    RMS of the sub-layer before's weight, the mean of its bias), so LayerNorm(h) ~ h. Why: the
    supernet's warm-up trains those sub-layers while a stand-alone student's started as noise, and
    over 8 points of one search stand-alone accuracy fell with stack depth (tools/proxy_rank.py).
    Returns the names it set."""
    params, named = dict(model.named_parameters()), []
    with torch.no_grad():
        for j, k in enumerate(mapping):
            for s in range(teacher.layers[k - 1].stack, student.layers[j].stack):
                here, before = f"edgebert.layers.{j}.ffn.{s}.", f"edgebert.layers.{j}.ffn.{s - 1}."
                params[here + "W2.weight"].zero_()
                params[here + "W2.bias"].zero_()
                gain = params[before + "norm.weight"].pow(2).mean().sqrt()
                params[here + "norm.weight"].fill_(float(gain))
                params[here + "norm.bias"].fill_(float(params[before + "norm.bias"].mean()))
                named += [here + n for n in ("W2.weight", "W2.bias", "norm.weight", "norm.bias")]
    return named


def extract_student(
    teacher: EdgeBertForSequenceClassification,
    student: ArchSpec,
    mapping: Sequence[int],
    *,
    method: str = "magnitude",
    batches: Iterable | None = None,
    loss_fn: Callable | None = None,
    seed: int = 0,
    order: UnitOrder | None = None,
) -> Extraction:
    """The student `student` with weights from `teacher`; student layer j from teacher layer mapping[j - 1] (1-based).

    `order`: a ranking of the teacher's units computed earlier, so that many students
    extracted from one teacher (a search) rank it once."""
    if method not in IMPORTANCE_METHODS:
        raise EdgebertError(f"unknown importance method {method!r}; use {' or '.join(IMPORTANCE_METHODS)}")
    tspec = teacher.config.spec
    check_fits(tspec, student, mapping)
    donor = copy.deepcopy(teacher).eval()
    order = copy.deepcopy(order) if order is not None else rank_units(donor, method=method, batches=batches,
                                                                       loss_fn=loss_fn)
    if student.hidden == tspec.hidden:
        order.hidden = torch.arange(tspec.hidden)  # keep the teacher's order: see the module docstring
    permute_units(donor, order)
    donor.set_active(donor_spec(tspec, student, mapping), layer_map=tuple(k - 1 for k in mapping))
    sliced = donor.active_weights()

    model = build(student, num_labels=teacher.config.num_labels, seed=seed,
                  hidden_dropout_prob=teacher.config.hidden_dropout_prob,
                  attention_probs_dropout_prob=teacher.config.attention_probs_dropout_prob)
    same_embedding = student.embedding == tspec.embedding
    copied, fresh = [], []
    with torch.no_grad():
        for name, param in model.named_parameters():
            src = sliced.get(name)
            if src is not None and name.endswith("embeddings.position.weight"):
                src = src[: student.max_positions]  # a student may have fewer positions
            counterpart = src is not None and src.shape == param.shape and (same_embedding or ".embeddings.word" not in name)
            if counterpart:
                param.copy_(src)
                copied.append(name)
            else:
                fresh.append(name)
    pass_through = _pass_through_stack_layers(model, tspec, student, mapping)
    fresh = [n for n in fresh if n not in pass_through]
    return Extraction(
        model=model.eval(),
        hidden_sources=order.hidden[: student.hidden].clone(),
        head_sources=[order.heads[k - 1][: student.layers[j].heads].clone() for j, k in enumerate(mapping)],
        inner_sources=[order.inner[k - 1][0][: student.layers[j].inner].clone() for j, k in enumerate(mapping)],
        copied=copied,
        fresh=fresh,
        pass_through=pass_through,
    )
