"""ArchSpec: the one description of a compact BERT that every stage shares.

The zoo names specs, the predictor prices them, modeling.py builds them, the
search mutates them, the exporter ships them. A spec is plain, frozen,
validated data with a JSON form:

    {"hidden": 540, "vocab_size": 30522, "max_positions": 512, "type_vocab_size": 2,
     "embedding": {"kind": "trigram", "size": 128},
     "layers": [{"heads": 12, "head_size": 45, "ffn": "tanh(W2(gelu(W1(x))))",
                 "inner": 270, "stack": 4}, ...]}

The search space (what may vary and within which bounds) is defined here once,
as `SPACE`: the validator, the profiler's grid and the search all read it.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgebert import mlp
from edgebert.errors import EdgebertError

EMBEDDING_KINDS = ("standard", "factorized", "trigram")


class SpecError(EdgebertError):
    pass


# --- the search space ----------------------------------------------------------


@dataclass(frozen=True)
class Space:
    """Bounds a valid spec must respect, and the grid points searches and profiles use.

    Bounds are wide enough for every zoo model (bert-base included); grids are the
    discrete values the search proposes and the profiler measures (off-grid
    dimensions are priced by interpolation).
    """

    layers: tuple[int, int] = (1, 12)
    hidden: tuple[int, int] = (32, 1024)
    heads: tuple[int, int] = (1, 16)
    head_size: tuple[int, int] = (16, 128)
    # inner / hidden: EfficientBERT used {1, 1/2, 1/3, 1/4}; BERT uses 4.
    inner_ratio: tuple[float, float] = (0.25, 4.0)
    stack: tuple[int, int] = (1, 4)
    embedding_size: tuple[int, int] = (32, 1024)
    max_ops: int = 6  # operations per expression besides x, W1, W2

    # What a search may propose (and what validate-table samples from): inside the
    # bounds above, and covered by the profiler's default grid.
    search_hidden: tuple[int, int] = (128, 768)
    search_heads: tuple[int, int] = (1, 12)
    search_head_size: tuple[int, int] = (32, 64)
    search_embedding_size: tuple[int, int] = (64, 128)

    # Searched widths are multiples of these: matrix kernels run in SIMD blocks, and a width
    # just past a block boundary costs a whole extra block (measured here: an FFN at hidden
    # 257 costs 13 % more than at 256), which no interpolation between grid points can see.
    granularity: int = 16  # hidden, inner and embedding sizes
    head_size_granularity: int = 8

    # The profiler measures these points; the search proposes the hidden grid and inner
    # sizes from the ratio grid (aligned); validation draws anywhere on the granularity.
    hidden_grid: tuple[int, ...] = (128, 192, 256, 320, 384, 448, 512, 576, 640, 704, 768)
    heads_grid: tuple[int, ...] = (1, 2, 4, 6, 8, 12)
    head_size_grid: tuple[int, ...] = (32, 48, 64)
    inner_grid: tuple[int, ...] = (32, 64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072)
    inner_ratio_grid: tuple[float, ...] = (0.25, 1 / 3, 0.5, 1.0, 2.0, 3.0, 4.0)
    stack_grid: tuple[int, ...] = (1, 2, 3, 4)
    embedding_size_grid: tuple[int, ...] = (64, 128)

    def inner_bounds(self, hidden: int) -> tuple[int, int]:
        lo, hi = self.inner_ratio
        return max(1, math.floor(hidden * lo)), math.ceil(hidden * hi)

    def align(self, value: float, step: int | None = None) -> int:
        """The nearest multiple of the granularity (at least one step)."""
        step = step or self.granularity
        return max(step, step * round(value / step))

    def inner_for(self, hidden: int, ratio: float, cap: int | None = None) -> int:
        """An aligned inner size near hidden x ratio, inside the bounds (and under cap)."""
        lo, hi = self.inner_bounds(hidden)
        g = self.granularity
        inner = min(max(self.align(hidden * ratio), g * math.ceil(lo / g)), g * math.floor(hi / g))
        return min(inner, g * (cap // g)) if cap is not None else inner

    def operators(self) -> tuple[str, ...]:
        return tuple(mlp.OPERATIONS)

    def smallest(self) -> "ArchSpec":
        """The cheapest corner of the search space."""
        hidden = self.search_hidden[0]
        return ArchSpec.uniform(layers=self.layers[0], hidden=hidden, heads=self.search_heads[0],
                                head_size=self.search_head_size[0], inner=self.inner_bounds(hidden)[0])

    def sample(self, rng: random.Random, *, max_ops: int = 4) -> "ArchSpec":
        """A random point of the whole search space, off-grid dimensions included: a backbone
        (layers, hidden, heads x head size, embedding) and per layer a random MLP
        expression (the standard one a third of the time), inner size and stack depth."""
        g, gh = self.granularity, self.head_size_granularity
        hidden = g * rng.randint(self.search_hidden[0] // g, self.search_hidden[1] // g)
        heads = rng.randint(*self.search_heads)
        head_size = gh * rng.randint(self.search_head_size[0] // gh, self.search_head_size[1] // gh)
        kind = rng.choice(EMBEDDING_KINDS)
        e_lo, e_hi = self.search_embedding_size
        emb = Embedding(kind, None if kind == "standard" else g * rng.randint(e_lo // g, e_hi // g))
        lo, hi = self.inner_ratio
        layers = []
        for _ in range(rng.randint(*self.layers)):
            ratio = math.exp(rng.uniform(math.log(lo), math.log(hi)))
            inner = self.inner_for(hidden, ratio)
            expr = mlp.STANDARD_FFN if rng.random() < 1 / 3 else mlp.to_text(mlp.random_expression(rng, max_ops))
            layers.append(LayerSpec(heads=heads, head_size=head_size, inner=inner, ffn=expr,
                                    stack=rng.randint(*self.stack)))
        return validate(ArchSpec(hidden=hidden, layers=tuple(layers), embedding=emb), self)


SPACE = Space()


# --- the spec --------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    heads: int
    head_size: int
    inner: int
    ffn: str = mlp.STANDARD_FFN  # canonical text of an MLP expression
    stack: int = 1  # sub-layers, each `h = LayerNorm(h + ffn(h))` with its own weights

    @property
    def attn_width(self) -> int:
        """Width of Q, K and V: heads x head_size (need not equal hidden)."""
        return self.heads * self.head_size

    @property
    def expr(self) -> mlp.Expr:
        return _parse_cached(self.ffn)


@dataclass(frozen=True)
class Embedding:
    kind: str = "standard"
    # Token-vector size E for 'factorized' (E -> hidden) and 'trigram' (3E -> hidden).
    size: int | None = None


@dataclass(frozen=True)
class ArchSpec:
    hidden: int
    layers: tuple[LayerSpec, ...]
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    embedding: Embedding = field(default_factory=Embedding)
    layer_norm_eps: float = 1e-12

    # -- construction ---------------------------------------------------------

    @staticmethod
    def uniform(
        layers: int,
        hidden: int,
        heads: int,
        inner: int,
        *,
        head_size: int | None = None,
        ffn: str = mlp.STANDARD_FFN,
        stack: int = 1,
        **kwargs: Any,
    ) -> "ArchSpec":
        """Every layer alike (BERT-style): head_size defaults to hidden // heads."""
        hs = head_size if head_size is not None else hidden // heads
        layer = LayerSpec(heads=heads, head_size=hs, inner=inner, ffn=ffn, stack=stack)
        return validate(ArchSpec(hidden=hidden, layers=(layer,) * layers, **kwargs))

    def with_layers(self, layers) -> "ArchSpec":
        return validate(replace(self, layers=tuple(layers)))

    # -- JSON -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = [asdict(layer) for layer in self.layers]
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @staticmethod
    def from_dict(d: Any) -> "ArchSpec":
        return from_dict(d)

    @staticmethod
    def from_json(text: str) -> "ArchSpec":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"malformed spec JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
        return from_dict(d)

    def key(self) -> str:
        """A short stable hash of the spec, for cache and file names."""
        import hashlib

        return hashlib.sha256(self.to_json(indent=None).encode()).hexdigest()[:12]

    # -- size and cost -----------------------------------------------------------

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def param_count(self, *, pooler: bool = False, num_labels: int = 0) -> int:
        """Parameters of the encoder (embeddings + layers); optionally the pooler
        (hidden -> hidden) and a classifier (hidden -> num_labels)."""
        h = self.hidden
        e = self.embedding
        n = 0
        if e.kind == "standard":
            n += self.vocab_size * h
        elif e.kind == "factorized":
            n += self.vocab_size * e.size + e.size * h + h
        else:  # trigram: 3E -> hidden
            n += self.vocab_size * e.size + 3 * e.size * h + h
        n += self.max_positions * h + self.type_vocab_size * h + 2 * h  # positions, types, LayerNorm
        for layer in self.layers:
            a = layer.attn_width
            n += 3 * (h * a + a) + a * h + h + 2 * h  # Q, K, V, output, LayerNorm
            shapes = mlp.linear_shapes(layer.expr, h, layer.inner)
            per_sub = sum(i * o + o for i, o in shapes.values()) + 2 * h
            n += layer.stack * per_sub
        if pooler:
            n += h * h + h
        if num_labels:
            n += h * num_labels + num_labels
        return n

    def flops(self, seq_len: int, batch: int = 1) -> float:
        """Forward FLOPs (multiply-add = 2) of the encoder, without LayerNorms and softmax."""
        t = seq_len * batch
        h = self.hidden
        total = 0.0
        if self.embedding.kind != "standard":
            k = self.embedding.size * (3 if self.embedding.kind == "trigram" else 1)
            total += 2.0 * t * k * h
        for layer in self.layers:
            a = layer.attn_width
            total += 2.0 * t * h * a * 3 + 2.0 * t * a * h  # Q, K, V and output projections
            total += 2.0 * 2 * batch * seq_len * seq_len * a  # scores and weighted sum
            total += layer.stack * mlp.flops(layer.expr, h, layer.inner, t)
        return total

    def summary(self) -> str:
        """One line: '6L h540 12x45 trigram(E128)'."""
        heads = {(l.heads, l.head_size) for l in self.layers}
        hs = "/".join(f"{a}x{b}" for a, b in sorted(heads))
        emb = self.embedding.kind if self.embedding.kind == "standard" else f"{self.embedding.kind}(E{self.embedding.size})"
        return f"{self.num_layers}L h{self.hidden} {hs} {emb}"


_EXPR_CACHE: dict[str, mlp.Expr] = {}


def _parse_cached(text: str) -> mlp.Expr:
    if text not in _EXPR_CACHE:
        _EXPR_CACHE[text] = mlp.parse(text)
    return _EXPR_CACHE[text]


# --- validation ---------------------------------------------------------------------


def _int(value: Any, fieldname: str, lo: int, hi: int, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise SpecError(f"{fieldname}: expected an integer in {lo}..{hi}{what}, got {value!r}")
    if not lo <= value <= hi:
        raise SpecError(f"{fieldname}: {value} is out of range; allowed {lo}..{hi}{what}")
    return value


def validate(spec: ArchSpec, space: Space = SPACE) -> ArchSpec:
    """Check every field against `space`; return the spec with canonical expression text."""
    _int(spec.hidden, "hidden", *space.hidden)
    _int(spec.vocab_size, "vocab_size", 1, 1_000_000)
    _int(spec.max_positions, "max_positions", 1, 65_536)
    _int(spec.type_vocab_size, "type_vocab_size", 1, 16)
    emb = spec.embedding
    if emb.kind not in EMBEDDING_KINDS:
        raise SpecError(f"embedding.kind: {emb.kind!r} is not allowed; allowed: {', '.join(EMBEDDING_KINDS)}")
    if emb.kind == "standard":
        if emb.size not in (None, spec.hidden):
            raise SpecError("embedding.size: a standard embedding is hidden wide; leave size out or use 'factorized'")
        emb = Embedding("standard", None)
    else:
        if emb.size is None:
            raise SpecError(f"embedding.size: required for a {emb.kind} embedding (the token-vector size E)")
        _int(emb.size, "embedding.size", *space.embedding_size)
    _int(len(spec.layers), "layers (count)", *space.layers)
    layers = []
    for i, layer in enumerate(spec.layers):
        p = f"layers[{i}]"
        _int(layer.heads, f"{p}.heads", *space.heads)
        _int(layer.head_size, f"{p}.head_size", *space.head_size)
        lo, hi = space.inner_bounds(spec.hidden)
        _int(layer.inner, f"{p}.inner", lo, hi, f" (hidden {spec.hidden} x {space.inner_ratio[0]:g}..{space.inner_ratio[1]:g})")
        _int(layer.stack, f"{p}.stack", *space.stack)
        if not isinstance(layer.ffn, str):
            raise SpecError(f"{p}.ffn: expected an MLP expression string such as {mlp.STANDARD_FFN!r}")
        try:
            expr = mlp.parse(layer.ffn)
        except mlp.ExpressionError as e:
            raise SpecError(f"{p}.ffn: {e}") from None
        if expr.size() > space.max_ops:
            raise SpecError(f"{p}.ffn: {expr.size()} operations; at most {space.max_ops} allowed")
        layers.append(replace(layer, ffn=mlp.to_text(expr)))
    eps = spec.layer_norm_eps
    if not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise SpecError(f"layer_norm_eps: expected a small positive number, got {eps!r}")
    return replace(spec, embedding=emb, layers=tuple(layers))


_TOP_FIELDS = {"hidden", "layers", "vocab_size", "max_positions", "type_vocab_size", "embedding", "layer_norm_eps"}
_LAYER_FIELDS = {"heads", "head_size", "inner", "ffn", "stack"}


def from_dict(d: Any) -> ArchSpec:
    """Build and validate a spec from its JSON form; errors name the field."""
    if not isinstance(d, dict):
        raise SpecError(f"spec: expected a JSON object, got {type(d).__name__}")
    d = {k: v for k, v in d.items() if k not in ("name", "source", "_comment")}
    unknown = set(d) - _TOP_FIELDS
    if unknown:
        raise SpecError(f"spec: unknown field(s) {sorted(unknown)}; allowed: {sorted(_TOP_FIELDS)}")
    for required in ("hidden", "layers"):
        if required not in d:
            raise SpecError(f"spec: missing field {required!r}")
    if not isinstance(d["layers"], list) or not d["layers"]:
        raise SpecError("layers: expected a non-empty list of layer objects")
    layers = []
    for i, ld in enumerate(d["layers"]):
        if not isinstance(ld, dict):
            raise SpecError(f"layers[{i}]: expected an object with {sorted(_LAYER_FIELDS)}")
        unknown = set(ld) - _LAYER_FIELDS
        if unknown:
            raise SpecError(f"layers[{i}]: unknown field(s) {sorted(unknown)}; allowed: {sorted(_LAYER_FIELDS)}")
        for required in ("heads", "head_size", "inner"):
            if required not in ld:
                raise SpecError(f"layers[{i}]: missing field {required!r}")
        layers.append(LayerSpec(**ld))
    emb = d.get("embedding", {"kind": "standard"})
    if isinstance(emb, str):
        emb = {"kind": emb}
    if not isinstance(emb, dict) or set(emb) - {"kind", "size"}:
        raise SpecError("embedding: expected {'kind': standard|factorized|trigram, 'size': E}")
    spec = ArchSpec(
        hidden=d["hidden"],
        layers=tuple(layers),
        vocab_size=d.get("vocab_size", 30522),
        max_positions=d.get("max_positions", 512),
        type_vocab_size=d.get("type_vocab_size", 2),
        embedding=Embedding(emb.get("kind", "standard"), emb.get("size")),
        layer_norm_eps=d.get("layer_norm_eps", 1e-12),
    )
    return validate(spec)


def load_spec_file(path: str | Path) -> ArchSpec:
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"spec file not found: {p}")
    return ArchSpec.from_json(p.read_text())
