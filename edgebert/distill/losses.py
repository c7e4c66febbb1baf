"""Knowledge-distillation losses and the layer mapping.

Which teacher layer teaches which student layer (Wang et al. 2022, "Layer
mapping matters"): student layer j (1-based) learns from teacher layer
`mapping[j - 1]`, where teacher layer k's output is `hidden_states[k]` and
`hidden_states[0]` is the embedding output on both sides.

    mapping = layer_mapping("uniform", student_layers=3, teacher_layers=6)   # (2, 4, 6)
    loss = KDLoss(LossWeights(hidden=1, attention=1), mapping, student_spec, teacher_spec)
    total, parts = loss(student_out, targets, batch)

Every loss is zero when the student reproduces the teacher and positive
otherwise:

- embedding / hidden: MSE over valid tokens, after a learned projection
  student width -> teacher width when they differ (TinyBERT's W_e, W_h);
- attention: KL(teacher || student) of each attention row (MiniLM's form:
  the model returns softmax probabilities, and KL is scale-free where an MSE
  of probabilities shrinks with sequence length), teacher heads mapped onto
  student heads by a fixed (nh_s, nh_t) averaging matrix;
- logits: KL of temperature-softened distributions times T^2 (Hinton et al.
  2015); MSE for regression;
- labels: the task loss on gold labels (cross-entropy, or MSE for regression).

Shapes: B batch, T tokens, H hidden, nh heads, C classes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgebert.arch import ArchSpec
from edgebert.errors import EdgebertError

MAPPINGS = ("uniform", "last")
# Attention probabilities at masked keys are exactly 0 (exp underflow); clamping
# before the log keeps 0 * log 0 at 0 and its gradient finite.
PROB_EPS = 1e-12


@dataclass(frozen=True)
class LossWeights:
    """Weight of each loss in a stage's sum (0 = off; its teacher outputs are then not needed)."""

    embedding: float = 0.0
    hidden: float = 0.0
    attention: float = 0.0
    logits: float = 0.0
    labels: float = 0.0
    temperature: float = 1.0

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise EdgebertError(f"loss weight {name} must be a finite number >= 0, got {value!r}")
        if self.temperature <= 0:
            raise EdgebertError(f"temperature must be > 0, got {self.temperature!r}")

    @property
    def intermediate(self) -> bool:
        return bool(self.embedding or self.hidden or self.attention)

    def active(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if k != "temperature" and v}


@dataclass(frozen=True)
class Needs:
    """The teacher outputs a set of losses reads."""

    logits: bool = False
    hidden: tuple[int, ...] = ()  # hidden_states indices (0 = embeddings)
    attention: tuple[int, ...] = ()  # teacher layers, 1-based

    def names(self) -> list[str]:
        names = ["logits"] if self.logits else []
        return names + [f"hidden{k}" for k in self.hidden] + [f"attention{k}" for k in self.attention]


def needs(weights: LossWeights, mapping: Sequence[int]) -> Needs:
    hidden = sorted(({0} if weights.embedding else set()) | (set(mapping) if weights.hidden else set()))
    return Needs(logits=bool(weights.logits), hidden=tuple(hidden),
                 attention=tuple(sorted(mapping)) if weights.attention else ())


# --- layer mapping ------------------------------------------------------------------


def layer_mapping(kind: str | Sequence[int], student_layers: int, teacher_layers: int) -> tuple[int, ...]:
    """1-based teacher layer of each student layer.

    "uniform": every (T/S)-th layer, ending at the last (TinyBERT; 3 of 6 -> 2, 4, 6);
    "last": the top S layers (4, 5, 6); or an explicit list "2,4,6".
    """
    s, t = student_layers, teacher_layers
    if isinstance(kind, str) and kind in MAPPINGS:
        if s > t:
            raise EdgebertError(f"the student has {s} layers, the teacher {t}: a {kind!r} mapping needs S <= T")
        if kind == "uniform":
            return tuple((j * t + s - 1) // s for j in range(1, s + 1))  # ceil(j * T / S)
        return tuple(range(t - s + 1, t + 1))
    if isinstance(kind, str):
        try:
            kind = [int(v) for v in kind.replace(" ", "").split(",") if v]
        except ValueError:
            raise EdgebertError(f"--mapping {kind!r}: use uniform, last, or teacher layers like 2,4,6") from None
    layers = tuple(int(v) for v in kind)
    if len(layers) != s:
        raise EdgebertError(f"mapping {','.join(map(str, layers))} names {len(layers)} teacher layers; the student has {s}")
    if len(set(layers)) != len(layers) or not all(1 <= k <= t for k in layers):
        raise EdgebertError(f"mapping {','.join(map(str, layers))}: teacher layers must be distinct, in 1..{t}")
    return layers


def head_map(student_heads: int, teacher_heads: int, sources: torch.Tensor | None = None) -> torch.Tensor:
    """(nh_s, nh_t) rows summing to 1: student head s learns the average of the teacher heads in row s.

    With `sources` (the teacher head each student head was extracted from) a row is
    one-hot; otherwise the heads are split into contiguous groups by the overlap of
    [s/nh_s, (s+1)/nh_s) with [t/nh_t, (t+1)/nh_t) (12 -> 4: groups of three)."""
    if sources is not None:
        return F.one_hot(sources.long(), teacher_heads).float()
    lo_s = torch.arange(student_heads)[:, None] / student_heads
    lo_t = torch.arange(teacher_heads)[None, :] / teacher_heads
    overlap = (torch.minimum(lo_s + 1 / student_heads, lo_t + 1 / teacher_heads) - torch.maximum(lo_s, lo_t)).clamp_min(0)
    return overlap / overlap.sum(1, keepdim=True)


# --- the losses ------------------------------------------------------------------------


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over valid tokens and features: (B, T, H) each, mask (B, T)."""
    m = mask.unsqueeze(-1).to(student.dtype)  # (B, T, 1)
    return ((student - teacher) ** 2 * m).sum() / (m.sum() * student.shape[-1]).clamp_min(1)


def attention_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of each attention row, averaged over heads and valid queries.

    student, teacher: (B, nh, T, T) probabilities over keys; mask (B, T)."""
    log_ratio = teacher.clamp_min(PROB_EPS).log() - student.clamp_min(PROB_EPS).log()
    kl = (teacher * log_ratio).sum(-1)  # (B, nh, T): one value per query row
    m = mask[:, None, :].to(kl.dtype).expand_as(kl)
    return (kl * m).sum() / m.sum().clamp_min(1)


def soft_logits(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(t / T) || softmax(s / T)) * T^2, mean over the batch: (B, C) each."""
    s = F.log_softmax(student / temperature, dim=-1)
    t = F.log_softmax(teacher / temperature, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature**2


def regression_logits(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE between the student's and the teacher's scores: (B, 1) each."""
    return F.mse_loss(student.float(), teacher.float())


def label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The task loss: cross-entropy on class ids, MSE on scores (a (B, 1) head)."""
    if logits.shape[-1] == 1:
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
    return F.cross_entropy(logits, labels)


# --- their weighted sum -----------------------------------------------------------------


@dataclass
class Targets:
    """The teacher outputs of one batch, padded like it."""

    logits: torch.Tensor | None = None  # (B, C)
    hidden: dict[int, torch.Tensor] | None = None  # hidden_states index -> (B, T, Ht)
    attention: dict[int, torch.Tensor] | None = None  # teacher layer (1-based) -> (B, nh_t, T, T)


def projection(student_width: int, teacher_width: int, sources: torch.Tensor | None) -> nn.Linear:
    """Student width -> teacher width. With `sources` (the teacher unit each student unit
    was extracted from) it starts as that embedding, so the loss starts small."""
    proj = nn.Linear(student_width, teacher_width)
    if sources is not None:
        with torch.no_grad():
            proj.weight.zero_()
            proj.weight[sources.long(), torch.arange(student_width)] = 1.0
            proj.bias.zero_()
    return proj


class KDLoss(nn.Module):
    """The weighted sum of a stage's losses; holds its learned projections (trained with the student).

    hidden_sources: (Hs,) teacher hidden unit of each student unit (extraction init);
    head_sources: per student layer, (nh_s,) teacher heads it was extracted from.
    """

    def __init__(self, weights: LossWeights, mapping: Sequence[int], student: ArchSpec, teacher: ArchSpec | None, *,
                 hidden_sources: torch.Tensor | None = None, head_sources: Sequence[torch.Tensor] | None = None):
        super().__init__()
        self.weights, self.mapping = weights, tuple(mapping)
        hs = student.hidden
        ht = teacher.hidden if teacher is not None else hs
        if weights.intermediate and teacher is None:
            raise EdgebertError("intermediate-layer losses need a teacher")
        if hs == ht and hidden_sources is not None and not torch.equal(hidden_sources, torch.arange(hs)):
            raise ValueError("a full-width student must keep the teacher's hidden unit order")
        self.embedding_proj = projection(hs, ht, hidden_sources) if weights.embedding and hs != ht else None
        self.hidden_proj = projection(hs, ht, hidden_sources) if weights.hidden and hs != ht else None
        if weights.attention:
            for j, k in enumerate(self.mapping):
                src = head_sources[j] if head_sources is not None else None
                self.register_buffer(f"head_map{j}", head_map(student.layers[j].heads, teacher.layers[k - 1].heads, src))

    @property
    def wants_hidden(self) -> bool:
        return bool(self.weights.embedding or self.weights.hidden)

    def forward(self, out, targets: Targets | None, attention_mask: torch.Tensor,
                labels: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        """out: the student's SequenceClassifierOutput (hidden states / attentions as the weights need)."""
        w, parts = self.weights, {}
        if w.labels:
            parts["labels"] = label_loss(out.logits, labels)
        if w.logits:
            t = targets.logits
            parts["logits"] = regression_logits(out.logits, t) if t.shape[-1] == 1 else soft_logits(out.logits, t, w.temperature)
        if w.embedding:
            parts["embedding"] = masked_mse(_maybe(self.embedding_proj, out.hidden_states[0]), targets.hidden[0], attention_mask)
        if w.hidden:
            per_layer = [masked_mse(_maybe(self.hidden_proj, out.hidden_states[j + 1]), targets.hidden[k], attention_mask)
                         for j, k in enumerate(self.mapping)]
            parts["hidden"] = torch.stack(per_layer).mean()
        if w.attention:
            per_layer = []
            for j, k in enumerate(self.mapping):
                # (nh_s, nh_t) x (B, nh_t, T, T) -> (B, nh_s, T, T): a mixture of distributions is one
                t = torch.einsum("st,btqk->bsqk", getattr(self, f"head_map{j}"), targets.attention[k])
                per_layer.append(attention_kl(out.attentions[j], t, attention_mask))
            parts["attention"] = torch.stack(per_layer).mean()
        total = sum(getattr(w, name) * value for name, value in parts.items())
        return total, {name: float(value.detach()) for name, value in parts.items()}


def _maybe(proj: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    return x if proj is None else proj(x)
