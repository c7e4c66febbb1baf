"""The primitive micro-models a latency table prices, built from modeling.py's own modules.

Each unit is a fusion-aware piece of a real model, exported through the one
exporter, so the table prices the graphs that ship:

    shell    everything outside the layers: embeddings (each kind), attention-mask
             arithmetic, pooler, classifier, the session run and its inputs/outputs
    mha      one layer whose attention block varies (Q, K, V, softmax, output, residual,
             LayerNorm), with a reference FFN sub-layer
    ffn      one layer whose standard FFN sub-layer W2(gelu(W1(x))) (with residual and
             LayerNorm) varies, with a reference attention block
    ffn_stack  a reference layer with STACK_PROBE FFN sub-layers instead of one (splits a layer's cost)
    ffn_act  the same sub-layer with another activation after W1 (or none), at a
             reference hidden size: the activation's fused cost is its difference to gelu
    op       one further operation of the MLP language at a width (binary ops join
             the running value with the input); 'slice' is a binary add whose second
             operand is sliced from a tensor twice as wide

A unit's cost is its *marginal* cost inside a chain: the micro-model holds k
copies (distinct weights) and the profiler prices (T(k) - T(0)) / k, where the
k = 0 chain feeds the running input in and fetches it back (one per width,
shared by every unit of that width), so the session's fixed overhead and the
cost of feeding inputs cancel; only the shell, which every model runs once, is
priced whole. Against the (T(3) - T(1)) / 2 of tables made before, measured
here: the same layers' costs within 2 %, half the run time per entry, and
steadier from window to window (1.1-3.3 % against 1.7-5.9 % standard
deviation over 8 windows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from edgebert import mlp
from edgebert.arch import ArchSpec, Embedding, LayerSpec, validate
from edgebert.device.timing import InputSpec
from edgebert.latency.units import ACT_REFERENCE_HIDDEN, HS_REF, NH_REF, NO_ACTIVATION, SLICE, UNITS, ref_inner
from edgebert.modeling import TORCH_OPS, Attention, FFNSublayer, build



def _float_input(name: str, batch: int, seq: int, width: int) -> InputSpec:
    # Values in [0.5, 1.5): chains of mul/exp-like ops stay far from denormals,
    # which would make x86 arithmetic (and the timing) many times slower.
    return InputSpec(name, [batch, seq, width], "float32", low=0.5, high=1.5)


class _Chain(nn.Module):
    """k blocks applied one after another to a hidden state: (B, T, H) -> (B, T, H)."""

    def __init__(self, blocks: list[nn.Module], step: Callable):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.step = step

    def forward(self, x, *extra):
        y = x
        for block in self.blocks:
            y = self.step(block, y, x, *extra)
        return y


# --- shell ------------------------------------------------------------------------------------


class _Shell(nn.Module):
    """A model without layers: embed, pool, classify; outputs as the shipped graph's."""

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.model = build(spec, num_labels=2, seed=0)

    def forward(self, input_ids, attention_mask, token_type_ids):
        x, mask_bias = self.model.edgebert.embed(input_ids, attention_mask, token_type_ids)
        # The layers consume the mask in a real model; returning it (T floats) keeps
        # its arithmetic in the graph at a negligible copy.
        return self.model.head(self.model.edgebert.pool(x)), x, mask_bias


def shell_spec(kind: str, hidden: int, embedding_size: int) -> ArchSpec:
    """embedding_size is 0 for the standard kind (its token vectors are hidden wide)."""
    emb = Embedding(kind, None if kind == "standard" else embedding_size)
    layer = LayerSpec(heads=1, head_size=32, inner=hidden)  # present for validity, never run
    return validate(ArchSpec(hidden=hidden, layers=(layer,), embedding=emb))


def _build_shell(variant, key, k, batch_seq):
    batch, seq = batch_seq
    spec = shell_spec(variant, key["hidden"], key["embedding_size"])
    shape = [batch, seq]
    inputs = [InputSpec("input_ids", shape, "int64", low=1, high=spec.vocab_size),
              InputSpec("attention_mask", shape, "int64", fill=1),
              InputSpec("token_type_ids", shape, "int64", fill=0)]
    return _Shell(spec), inputs, ["logits", "last_hidden_state", "mask_bias"]


# --- layers: mha, ffn and ffn_stack -------------------------------------------------------------
#
# Attention and FFN are priced *inside layers*: measured here, a chain of attention
# blocks plus a chain of FFN sub-layers cost ~15 % more than the same blocks
# alternating as they do in a model (h576: 4.7 vs 4.1 canary units per layer), so
# each micro-model is a chain of whole layers, and only one of their parts varies:
#
#   mha (h, nh, hs)   layers of attention (h, nh, hs) + the reference FFN sub-layer (h, I_ref)
#   ffn (h, I)        layers of the reference attention (h, NH_REF x HS_REF) + FFN sub-layer (h, I)
#   ffn_stack (h, S)  reference layers with S = units.STACK_PROBE FFN sub-layers instead of one
#
# so that, with ref(h) = mha(h, NH_REF, HS_REF) and one more sub-layer's cost
# sub(h) = (ffn_stack(h, S) - ref(h)) / (S - 1), a layer's parts are (predictor.py)
#   attention(h, nh, hs) = mha(h, nh, hs) - sub(h),   sub-layer(h, I) = ffn(h, I) - (ref(h) - sub(h)).

class _Layer(nn.Module):
    """One transformer layer as modeling.Layer runs it: attention, then `stack` FFN sub-layers."""

    def __init__(self, h: int, nh: int, hs: int, inner: int, stack: int, expr: mlp.Expr):
        super().__init__()
        self.dims = (h, nh, hs, inner)
        self.attention = Attention(h, nh, hs, 1e-12, 0.0, 0.0)
        self.ffn = nn.ModuleList(FFNSublayer(expr, h, inner, 1e-12, 0.0) for _ in range(stack))

    def forward(self, x, mask_bias):
        h, nh, hs, inner = self.dims
        x = self.attention(x, mask_bias, h, nh, hs)[0]
        for sub in self.ffn:
            x = sub(x, h, inner)
        return x


def _layer_chain(h: int, nh: int, hs: int, inner: int, k: int, batch: int, seq: int, *, stack: int = 1,
                 expr_text: str = mlp.STANDARD_FFN):
    torch.manual_seed(0)
    expr = mlp.parse(expr_text)
    chain = _Chain([_Layer(h, nh, hs, inner, stack, expr) for _ in range(k)],
                   lambda blk, y, x, mask_bias: blk(y, mask_bias))
    inputs = [_float_input("x", batch, seq, h), InputSpec("mask_bias", [batch, 1, 1, seq], "float32", fill=0.0)]
    return chain, inputs, ["y"]


def _build_mha(variant, key, k, batch_seq):
    h = key["hidden"]
    return _layer_chain(h, key["heads"], key["head_size"], ref_inner(h), k, *batch_seq)


def _build_ffn(variant, key, k, batch_seq):
    return _layer_chain(key["hidden"], NH_REF, HS_REF, key["inner"], k, *batch_seq)


def _build_ffn_stack(variant, key, k, batch_seq):
    h = key["hidden"]
    return _layer_chain(h, NH_REF, HS_REF, ref_inner(h), k, *batch_seq, stack=key["stack"])


# --- ffn_act: another activation after W1 ---------------------------------------------------------


def _ffn_chain(expr_text: str, h: int, inner: int, k: int, batch: int, seq: int):
    torch.manual_seed(0)
    expr = mlp.parse(expr_text)
    blocks = [FFNSublayer(expr, h, inner, 1e-12, 0.0) for _ in range(k)]
    chain = _Chain(blocks, lambda blk, y, x: blk(y, h, inner))
    return chain, [_float_input("x", batch, seq, h)], ["y"]


def act_expression(act: str) -> str:
    return "W2(W1(x))" if act == NO_ACTIVATION else f"W2({act}(W1(x)))"


def _build_ffn_act(variant, key, k, batch_seq):
    return _ffn_chain(act_expression(variant), ACT_REFERENCE_HIDDEN, key["inner"], k, *batch_seq)


# --- op -------------------------------------------------------------------------------------------

class _OpChain(nn.Module):
    def __init__(self, op: str, k: int, width: int):
        super().__init__()
        self.op, self.k, self.width = op, k, width

    def forward(self, x):  # x: (B, T, 2w) for slice, else (B, T, w)
        w = self.width
        if self.op == SLICE:
            y = x[..., w:]
            for _ in range(self.k):
                y = y + x[..., :w]  # one Slice and one Add per step
            return y
        fn = TORCH_OPS[self.op]
        y = x
        for _ in range(self.k):
            y = fn(y, x) if mlp.OPERATIONS[self.op].arity == 2 else fn(y)
        return y


def _build_op(variant, key, k, batch_seq):
    batch, seq = batch_seq
    w = key["width"]
    return _OpChain(variant, k, w), [_float_input("x", batch, seq, 2 * w if variant == SLICE else w)], ["y"]


# Every unit of units.py, built: (variant, key, k copies, (batch, seq)) -> (module, inputs, outputs).
BUILDERS = {"shell": _build_shell, "mha": _build_mha, "ffn": _build_ffn, "ffn_stack": _build_ffn_stack,
            "ffn_act": _build_ffn_act, "op": _build_op}
assert set(BUILDERS) == set(UNITS), "every priced unit needs a micro-model"


class _Passthrough(nn.Module):
    """A chain of no blocks: its input fed in and fetched back (one Identity). Chains are priced as
    (T(k) - T(0)) / k against it, so the session run and the feeding of inputs cancel."""

    def forward(self, x):
        return x


def export_passthrough(width: int, seq: int, batch: int, path: Path, *, int8: bool,
                       graph_optimization: str) -> list[InputSpec]:
    """The k = 0 chain of every chained unit whose running input is `width` wide: (B, T, width)."""
    return _export(_Passthrough(), [_float_input("x", batch, seq, width)], ["y"], path, {}, int8=int8,
                   graph_optimization=graph_optimization)


def export_micro(unit: str, variant: str | None, key: dict, k: int, seq: int, batch: int, path: Path,
                 *, int8: bool, graph_optimization: str) -> list[InputSpec]:
    """Build the micro-model (k >= 1 copies; k = 0 is export_passthrough) and write it through the
    one exporter (and quantizer)."""
    if k < 1:
        raise ValueError("a chain of no blocks is export_passthrough's")
    module, inputs, outputs = BUILDERS[unit](variant, key, k, (batch, seq))
    return _export(module, inputs, outputs, path, key, int8=int8, graph_optimization=graph_optimization)


def _export(module: nn.Module, inputs: list[InputSpec], outputs: list[str], path: Path, key: dict, *, int8: bool,
            graph_optimization: str) -> list[InputSpec]:
    from edgebert.export import export_module, optimize_graph, quantize_int8

    sample = tuple(_sample_tensor(spec) for spec in inputs)
    axes = {spec.name: {0: "batch", len(spec.shape) - 1 if spec.name == "mask_bias" else 1: "sequence"}
            for spec in inputs}
    axes.update({name: ({0: "batch"} if name == "logits" else {0: "batch", 1: "sequence"}) for name in outputs})
    fp32 = path.with_suffix(".fp32.onnx") if int8 else path
    export_module(module, sample, fp32, input_names=[s.name for s in inputs], output_names=outputs, dynamic_axes=axes)
    heads = key.get("heads", 0)
    optimize_graph(fp32, graph_optimization, num_heads=heads, hidden=heads * key.get("head_size", 0))
    if int8:
        quantize_int8(fp32, path)
        fp32.unlink()
    return inputs


def _sample_tensor(spec: InputSpec) -> torch.Tensor:
    """A small traced sample (batch 1, length 5 along the sequence axis): the export is
    shape-generic, and these dims differ from every profiled one."""
    shape = list(spec.shape)
    shape[0] = 1
    seq_axis = len(shape) - 1 if spec.name == "mask_bias" else 1
    shape[seq_axis] = 5
    if spec.dtype == "int64":
        return torch.ones(shape, dtype=torch.long)
    return torch.zeros(shape) if spec.fill is not None else torch.rand(shape) + 0.5
