"""A PyTorch model built from an ArchSpec, as a Hugging Face PreTrainedModel.

One set of weights, many networks: every module holds the weights of the full
spec and runs at *active* dimensions (fewer layers, narrower hidden/inner, fewer
heads or smaller heads, shallower stacks) by slicing its first units. The search's
supernet and the extraction init are this code:

    model.set_active(sub_spec, layer_map=(1, 3, 5))   # run a sub-network in place
    small = model.extract_active()                      # a standalone copy of it

Each module computes its sliced weights in one place (`active_weights`), used
both by its forward pass and by `extract_active`, so a sliced model and the
standalone model built from the sliced weights compute the same function.
Units are reordered by importance with `edgebert.importance.permute_units`
before slicing, so that "first k" means "the k most important".

Shapes in comments: B batch, T tokens, H hidden (active), nh heads, hs head size,
I inner width, E token-vector size.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

from edgebert import mlp
from edgebert.arch import ArchSpec, SpecError, from_dict

# --- the operations of the MLP language, in PyTorch -------------------------------

TORCH_OPS: dict[str, Callable[..., torch.Tensor]] = {
    "gelu": F.gelu,  # erf form, as BERT; ORT fuses it into one Gelu kernel
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "elu": F.elu,
    "leaky_relu": F.leaky_relu,  # negative slope 0.01
    "swish": F.silu,
    "identity": lambda v: v,
    "add": torch.add,
    "mul": torch.mul,
    "max": torch.maximum,
}
assert set(TORCH_OPS) == set(mlp.OPERATIONS), "every MLP operation needs a PyTorch implementation"


def evaluate(expr: mlp.Expr, x: torch.Tensor, w1: Callable, w2: Callable, h: int, inner: int) -> torch.Tensor:
    """Run an MLP expression on x (B, T, h); a binary op on unequal widths slices both
    operands to the smaller one's first units (widths are known statically from h, inner)."""
    if expr.op == "x":
        return x
    args = [evaluate(a, x, w1, w2, h, inner) for a in expr.args]
    if expr.op == "W1":
        return w1(args[0])
    if expr.op == "W2":
        return w2(args[0])
    if len(args) == 2:
        w = mlp.width(expr, h, inner)
        return TORCH_OPS[expr.op](*(_first(a, w, -1) for a in args))
    return TORCH_OPS[expr.op](args[0])


# --- config ----------------------------------------------------------------------


class EdgeBertConfig(PretrainedConfig):
    """Hugging Face config carrying an ArchSpec (`arch`, its JSON form) plus training settings."""

    model_type = "edgebert"

    def __init__(
        self,
        arch: dict | None = None,
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        classifier_dropout: float | None = None,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if arch is None:  # transformers builds a default config for some checks
            arch = ArchSpec.uniform(layers=1, hidden=64, heads=1, inner=64).to_dict()
        self.arch = from_dict(arch).to_dict()
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.classifier_dropout = classifier_dropout
        self.initializer_range = initializer_range
        # Names other Hugging Face tools look for.
        spec = self.spec
        self.hidden_size = spec.hidden
        self.num_hidden_layers = spec.num_layers
        self.num_attention_heads = spec.layers[0].heads
        self.vocab_size = spec.vocab_size
        self.max_position_embeddings = spec.max_positions
        self.type_vocab_size = spec.type_vocab_size
        self.layer_norm_eps = spec.layer_norm_eps

    @property
    def spec(self) -> ArchSpec:
        return from_dict(self.arch)

    @classmethod
    def from_spec(cls, spec: ArchSpec, **kwargs) -> "EdgeBertConfig":
        return cls(arch=spec.to_dict(), **kwargs)


# --- slicing helpers -------------------------------------------------------------------


# Widths are Python ints taken from the active spec, never from tensor shapes, so
# that the ONNX tracer sees constants and a full-size model exports with no slices.


def _first(t: torch.Tensor, n: int, dim: int = 0) -> torch.Tensor:
    """The first n units of t along dim (t itself when it has exactly n)."""
    return t if t.shape[dim] == n else t.narrow(dim, 0, n)  # dim may be negative


def _norm_weights(norm: nn.LayerNorm, h: int) -> dict[str, torch.Tensor]:
    return {"norm.weight": _first(norm.weight, h), "norm.bias": _first(norm.bias, h)}


def _layer_norm(x: torch.Tensor, w: dict[str, torch.Tensor], h: int, eps: float) -> torch.Tensor:
    return F.layer_norm(x, (h,), w["norm.weight"], w["norm.bias"], eps)


def _rows_cols(linear: nn.Linear, out: int, inp: int) -> dict[str, torch.Tensor]:
    return {"weight": _first(_first(linear.weight, out, 0), inp, 1), "bias": _first(linear.bias, out)}


# --- modules ------------------------------------------------------------------------------


class Embeddings(nn.Module):
    """Token (+ projection for factorized/trigram), position and segment embeddings, LayerNorm."""

    def __init__(self, spec: ArchSpec, dropout: float):
        super().__init__()
        kind, h = spec.embedding.kind, spec.hidden
        self.kind = kind
        e = h if kind == "standard" else spec.embedding.size
        self.word = nn.Embedding(spec.vocab_size, e)
        # Trigram (MobileBERT): vectors of the next, own and previous token -> 3E -> H.
        self.project = None if kind == "standard" else nn.Linear(e * (3 if kind == "trigram" else 1), h)
        self.position = nn.Embedding(spec.max_positions, h)
        self.token_type = nn.Embedding(spec.type_vocab_size, h)
        self.norm = nn.LayerNorm(h, eps=spec.layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def active_weights(self, h: int) -> dict[str, torch.Tensor]:
        w = {
            "word.weight": self.word.weight if self.project is not None else _first(self.word.weight, h, 1),
            "position.weight": _first(self.position.weight, h, 1),
            "token_type.weight": _first(self.token_type.weight, h, 1),
            **_norm_weights(self.norm, h),
        }
        if self.project is not None:
            p = _rows_cols(self.project, h, self.project.in_features)
            w["project.weight"], w["project.bias"] = p["weight"], p["bias"]
        return w

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor,
                h: int) -> torch.Tensor:
        w = self.active_weights(h)
        v = F.embedding(input_ids, w["word.weight"])  # (B, T, E) or (B, T, H)
        if self.kind == "trigram":
            # Padding contributes zero vectors, so a token's neighbours do not depend on how
            # much padding follows it (a padded batch equals the unpadded sentences).
            v = v * attention_mask.unsqueeze(-1).to(v.dtype)
            nxt = F.pad(v[:, 1:], (0, 0, 0, 1))  # zero vector after the last token
            prv = F.pad(v[:, :-1], (0, 0, 1, 0))  # zero vector before the first token
            v = torch.cat([nxt, v, prv], dim=-1)  # (B, T, 3E)
        if self.project is not None:
            v = F.linear(v, w["project.weight"], w["project.bias"])  # (B, T, H)
        pos = w["position.weight"][: input_ids.shape[1]]  # (T, H)
        x = v + pos.unsqueeze(0) + F.embedding(token_type_ids, w["token_type.weight"])
        return self.dropout(_layer_norm(x, w, h, self.norm.eps))


class Attention(nn.Module):
    """Multi-head self-attention with residual and LayerNorm (post-LN, as BERT)."""

    def __init__(self, hidden: int, heads: int, head_size: int, eps: float, p_attn: float, p_hidden: float):
        super().__init__()
        self.heads, self.head_size = heads, head_size
        a = heads * head_size
        self.query = nn.Linear(hidden, a)
        self.key = nn.Linear(hidden, a)
        self.value = nn.Linear(hidden, a)
        self.output = nn.Linear(a, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.attn_dropout = nn.Dropout(p_attn)
        self.dropout = nn.Dropout(p_hidden)

    def _head_rows(self, lin: nn.Linear, nh: int, hs: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Q/K/V weight (nh*hs, h) and bias: the first nh heads, first hs units of each."""
        if nh == self.heads and hs == self.head_size:
            return _first(lin.weight, h, 1), lin.bias
        w = lin.weight.view(self.heads, self.head_size, -1)[:nh, :hs, :h].reshape(nh * hs, h)
        b = lin.bias.view(self.heads, self.head_size)[:nh, :hs].reshape(nh * hs)
        return w, b

    def active_weights(self, h: int, nh: int, hs: int) -> dict[str, torch.Tensor]:
        w = {}
        for name in ("query", "key", "value"):
            w[f"{name}.weight"], w[f"{name}.bias"] = self._head_rows(getattr(self, name), nh, hs, h)
        out = _first(self.output.weight, h, 0)  # (h, heads*head_size)
        if not (nh == self.heads and hs == self.head_size):
            out = out.view(h, self.heads, self.head_size)[:, :nh, :hs].reshape(h, nh * hs)
        w["output.weight"], w["output.bias"] = out, _first(self.output.bias, h)
        return {**w, **_norm_weights(self.norm, h)}

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor, h: int, nh: int, hs: int):
        w = self.active_weights(h, nh, hs)

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, T, nh*hs) -> (B, nh, T, hs)
            return t.unflatten(-1, (nh, hs)).transpose(1, 2)

        q = split(F.linear(x, w["query.weight"], w["query.bias"]))
        k = split(F.linear(x, w["key.weight"], w["key.bias"]))
        v = split(F.linear(x, w["value.weight"], w["value.bias"]))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hs) + mask_bias  # (B, nh, T, T)
        probs = scores.softmax(dim=-1)
        ctx = (self.attn_dropout(probs) @ v).transpose(1, 2).flatten(2)  # (B, T, nh*hs)
        out = F.linear(ctx, w["output.weight"], w["output.bias"])  # (B, T, H)
        return _layer_norm(x + self.dropout(out), w, h, self.norm.eps), probs


class FFNSublayer(nn.Module):
    """One sub-layer of a layer's MLP: h = LayerNorm(h + expr(h)), with its own W1, W2."""

    def __init__(self, expr: mlp.Expr, hidden: int, inner: int, eps: float, p_hidden: float):
        super().__init__()
        self.expr = expr
        shapes = mlp.linear_shapes(expr, hidden, inner)
        self.W1 = nn.Linear(*shapes["W1"])
        self.W2 = nn.Linear(*shapes["W2"])
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(p_hidden)

    def active_weights(self, h: int, inner: int) -> dict[str, torch.Tensor]:
        w2_in = mlp.width(next(n for n in self.expr.walk() if n.op == "W2").args[0], h, inner)
        w = _norm_weights(self.norm, h)
        for name, lin, out, inp in (("W1", self.W1, inner, h), ("W2", self.W2, h, w2_in)):
            s = _rows_cols(lin, out, inp)
            w[f"{name}.weight"], w[f"{name}.bias"] = s["weight"], s["bias"]
        return w

    def forward(self, x: torch.Tensor, h: int, inner: int) -> torch.Tensor:
        w = self.active_weights(h, inner)
        y = evaluate(
            self.expr,
            x,
            lambda t: F.linear(t, w["W1.weight"], w["W1.bias"]),  # (B, T, H) -> (B, T, I)
            lambda t: F.linear(t, w["W2.weight"], w["W2.bias"]),  # (B, T, w) -> (B, T, H)
            h,
            inner,
        )
        return _layer_norm(x + self.dropout(y), w, h, self.norm.eps)


class Layer(nn.Module):
    def __init__(self, spec: ArchSpec, i: int, config: EdgeBertConfig):
        super().__init__()
        ls = spec.layers[i]
        eps, ph = spec.layer_norm_eps, config.hidden_dropout_prob
        self.attention = Attention(spec.hidden, ls.heads, ls.head_size, eps, config.attention_probs_dropout_prob, ph)
        self.ffn = nn.ModuleList(FFNSublayer(ls.expr, spec.hidden, ls.inner, eps, ph) for _ in range(ls.stack))

    def forward(self, x, mask_bias, h: int, active):  # active: the LayerSpec to run at
        x, probs = self.attention(x, mask_bias, h, active.heads, active.head_size)
        for sub in self.ffn[: active.stack]:
            x = sub(x, h, active.inner)
        return x, probs


# --- models ---------------------------------------------------------------------------------------


class EdgeBertPreTrainedModel(PreTrainedModel):
    config_class = EdgeBertConfig
    base_model_prefix = "edgebert"
    supports_gradient_checkpointing = False

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(0.0, std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(0.0, std)
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()


def check_subnet(full: ArchSpec, sub: ArchSpec, layer_map: tuple[int, ...]) -> None:
    """A sub-network must fit inside the full one, layer by layer, with the same expressions."""

    def bad(why: str) -> SpecError:
        return SpecError(f"sub-network does not fit the model: {why}")

    if sub.embedding.kind != full.embedding.kind or sub.embedding.size != full.embedding.size:
        raise bad("embedding kind and size must match")
    if sub.hidden > full.hidden:
        raise bad(f"hidden {sub.hidden} > {full.hidden}")
    if sub.vocab_size != full.vocab_size or sub.type_vocab_size != full.type_vocab_size:
        raise bad("vocab sizes must match")
    if sub.max_positions > full.max_positions:
        raise bad("max_positions larger than the model's")
    if len(layer_map) != sub.num_layers or len(set(layer_map)) != len(layer_map):
        raise bad(f"layer_map {layer_map} must name {sub.num_layers} distinct layers")
    for j, i in enumerate(layer_map):
        if not 0 <= i < full.num_layers:
            raise bad(f"layer_map names layer {i}; the model has {full.num_layers}")
        s, f = sub.layers[j], full.layers[i]
        for name in ("heads", "head_size", "inner", "stack"):
            if getattr(s, name) > getattr(f, name):
                raise bad(f"layers[{j}].{name} {getattr(s, name)} > {getattr(f, name)} of layer {i}")
        if s.ffn != f.ffn:
            raise bad(f"layers[{j}].ffn {s.ffn!r} differs from layer {i}'s {f.ffn!r}")


class EdgeBertModel(EdgeBertPreTrainedModel):
    """The encoder: embeddings, layers, pooler (tanh of a dense layer on the first token)."""

    def __init__(self, config: EdgeBertConfig):
        super().__init__(config)
        spec = config.spec
        self.embeddings = Embeddings(spec, config.hidden_dropout_prob)
        self.layers = nn.ModuleList(Layer(spec, i, config) for i in range(spec.num_layers))
        self.pooler = nn.Linear(spec.hidden, spec.hidden)
        self.active_spec: ArchSpec = spec
        self.layer_map: tuple[int, ...] = tuple(range(spec.num_layers))
        self.post_init()

    # -- sub-networks ---------------------------------------------------------------

    def set_active(self, sub: ArchSpec | None = None, layer_map: tuple[int, ...] | None = None) -> None:
        """Run as `sub` (None = the full model); layer j of `sub` uses layer layer_map[j]
        of the model (default: the first layers)."""
        full = self.config.spec
        sub = sub or full
        layer_map = tuple(layer_map) if layer_map is not None else tuple(range(sub.num_layers))
        check_subnet(full, sub, layer_map)
        self.active_spec, self.layer_map = sub, layer_map

    def active_weights(self) -> dict[str, torch.Tensor]:
        """The sliced weights of the active sub-network, named as a standalone model of it names them."""
        sub, h = self.active_spec, self.active_spec.hidden
        w = {f"embeddings.{k}": v for k, v in self.embeddings.active_weights(h).items()}
        for j, i in enumerate(self.layer_map):
            ls, layer = sub.layers[j], self.layers[i]
            for k, v in layer.attention.active_weights(h, ls.heads, ls.head_size).items():
                w[f"layers.{j}.attention.{k}"] = v
            for s in range(ls.stack):
                for k, v in layer.ffn[s].active_weights(h, ls.inner).items():
                    w[f"layers.{j}.ffn.{s}.{k}"] = v
        p = _rows_cols(self.pooler, h, h)
        w["pooler.weight"], w["pooler.bias"] = p["weight"], p["bias"]
        return w

    # -- forward ------------------------------------------------------------------------
    # embed() and pool() are the parts of every model outside its layers: the latency
    # profiler times them as one unit (the "shell"), so they are methods of their own.

    def embed(self, input_ids, attention_mask=None, token_type_ids=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded tokens (B, T, H) and the additive attention mask (B, 1, 1, T)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids, attention_mask, self.active_spec.hidden)
        # 0 where attended, the most negative float at padding.
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        return x, mask_bias

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """tanh(dense(first token)): (B, T, H) -> (B, H)."""
        h = self.active_spec.hidden
        p = _rows_cols(self.pooler, h, h)
        return torch.tanh(F.linear(x[:, 0], p["weight"], p["bias"]))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **unused,
    ):
        sub = self.active_spec
        x, mask_bias = self.embed(input_ids, attention_mask, token_type_ids)
        hidden_states, attentions = [x], []
        for j, i in enumerate(self.layer_map):
            x, probs = self.layers[i](x, mask_bias, sub.hidden, sub.layers[j])
            hidden_states.append(x)
            attentions.append(probs)
        return BaseModelOutputWithPooling(
            last_hidden_state=x,
            pooler_output=self.pool(x),
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )


class EdgeBertForSequenceClassification(EdgeBertPreTrainedModel):
    """Encoder + dropout + linear head on the pooled first token; num_labels == 1 is regression (MSE)."""

    def __init__(self, config: EdgeBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.edgebert = EdgeBertModel(config)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.spec.hidden, config.num_labels)
        self.post_init()

    @property
    def active_spec(self) -> ArchSpec:
        return self.edgebert.active_spec

    def set_active(self, sub: ArchSpec | None = None, layer_map: tuple[int, ...] | None = None) -> None:
        self.edgebert.set_active(sub, layer_map)

    def active_weights(self) -> dict[str, torch.Tensor]:
        h = self.edgebert.active_spec.hidden
        w = {f"edgebert.{k}": v for k, v in self.edgebert.active_weights().items()}
        w["classifier.weight"], w["classifier.bias"] = _first(self.classifier.weight, h, 1), self.classifier.bias
        return w

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_labels) from the pooled first token (B, H)."""
        h = self.edgebert.active_spec.hidden
        return F.linear(self.dropout(pooled), _first(self.classifier.weight, h, 1), self.classifier.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **unused,
    ):
        out = self.edgebert(
            input_ids, attention_mask, token_type_ids,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
        )
        logits = self.head(out.pooler_output)
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            else:
                loss = F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )


EdgeBert = EdgeBertModel | EdgeBertForSequenceClassification


def build(spec: ArchSpec, *, num_labels: int = 0, seed: int | None = None, **config_kwargs) -> EdgeBert:
    """A freshly initialised model of `spec`: an encoder, or a classifier when num_labels > 0."""
    if seed is not None:
        torch.manual_seed(seed)
    if num_labels:
        config = EdgeBertConfig.from_spec(spec, num_labels=num_labels, **config_kwargs)
        return EdgeBertForSequenceClassification(config).eval()
    return EdgeBertModel(EdgeBertConfig.from_spec(spec, **config_kwargs)).eval()


def extract_active(model: EdgeBert) -> EdgeBert:
    """A standalone model of `model`'s active sub-network, its weights copied from the slices."""
    sub = model.active_spec
    config = EdgeBertConfig.from_dict(model.config.to_dict())
    config.arch = sub.to_dict()
    config = EdgeBertConfig(**config.to_dict())  # re-derive hidden_size and friends
    small = type(model)(config).eval()
    sliced = model.active_weights()
    state = small.state_dict()
    missing = set(state) - set(sliced)
    if missing:
        raise RuntimeError(f"extract_active: no slice for {sorted(missing)[:3]}")
    with torch.no_grad():
        for name, tensor in sliced.items():
            state[name].copy_(tensor)
    return small


def encoder_of(model: EdgeBert) -> EdgeBertModel:
    return model.edgebert if isinstance(model, EdgeBertForSequenceClassification) else model


def register_auto_classes() -> None:
    """Let transformers' Auto* classes load saved edgebert models."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    try:
        AutoConfig.register("edgebert", EdgeBertConfig)
        AutoModel.register(EdgeBertConfig, EdgeBertModel)
        AutoModelForSequenceClassification.register(EdgeBertConfig, EdgeBertForSequenceClassification)
    except ValueError:  # already registered
        pass


register_auto_classes()
