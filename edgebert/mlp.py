"""The MLP expression language: what one transformer layer's feed-forward block computes.

An expression is a tree over the layer input `x` (width `hidden`) with two
learnable linears, `W1` (hidden -> inner) and `W2` (w -> hidden, w being the
width of its argument), unary operations and binary operations:

    W2(gelu(W1(x)))                  # the standard BERT FFN
    W2(relu(mul(W1(x), x)))          # EfficientBERT layer 5
    W2(gelu(W1(max(x, tanh(x)))))    # EfficientBERT layer 4

A binary operation on operands of different widths works on the smaller one:
the wider operand is sliced to its first units (EfficientBERT does the same).
Validity: `x` appears; `W1` and `W2` each appear exactly once and `W1` sits
inside `W2`'s argument (so the output is `hidden` wide, as the residual needs);
no binary operation has two identical operands.

This module knows no tensors: it parses, prints, checks, counts and mutates.
`modeling.py` gives each registered operation its PyTorch implementation and
`latency/` prices each one; both are checked against `OPERATIONS` by tests.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Iterator

from edgebert.errors import EdgebertError

# --- the operation registry -------------------------------------------------


@dataclass(frozen=True)
class Operation:
    name: str
    arity: int  # 1 = unary, 2 = binary
    flops_per_element: float  # rough cost, for FLOP counts only (not for latency)
    description: str


OPERATIONS: dict[str, Operation] = {}


def register_operation(name: str, arity: int, flops_per_element: float, description: str) -> Operation:
    """Add an operation to the language. Every registered operation must get a
    PyTorch implementation (modeling.py) and a latency unit (latency/micro.py):
    contract tests parametrized over OPERATIONS enforce both."""
    if name in OPERATIONS or name in LEAVES_AND_LINEARS:
        raise ValueError(f"operation {name!r} registered twice")
    op = Operation(name, arity, flops_per_element, description)
    OPERATIONS[name] = op
    return op


LEAVES_AND_LINEARS = ("x", "W1", "W2")

register_operation("gelu", 1, 8, "Gaussian error linear unit (erf form, as BERT)")
register_operation("relu", 1, 1, "max(0, v)")
register_operation("tanh", 1, 4, "hyperbolic tangent")
register_operation("sigmoid", 1, 4, "logistic sigmoid")
register_operation("elu", 1, 4, "exponential linear unit, alpha 1")
register_operation("leaky_relu", 1, 2, "leaky ReLU, negative slope 0.01")
register_operation("swish", 1, 5, "v * sigmoid(v) (SiLU)")
register_operation("identity", 1, 0, "v")
register_operation("add", 2, 1, "elementwise sum on the smaller width")
register_operation("mul", 2, 1, "elementwise product on the smaller width")
register_operation("max", 2, 1, "elementwise maximum on the smaller width")


def unary_ops() -> list[str]:
    return [n for n, op in OPERATIONS.items() if op.arity == 1]


def binary_ops() -> list[str]:
    return [n for n, op in OPERATIONS.items() if op.arity == 2]


def drawn_unary_ops() -> list[str]:
    """The unary operations random generation and mutation draw from: all but `identity`, a no-op
    that would spend an operation slot on nothing (and print as `identity(W2(...))`)."""
    return [n for n in unary_ops() if n != "identity"]


# --- the tree ----------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """One node: `op` is 'x', 'W1', 'W2' or a registered operation name."""

    op: str
    args: tuple["Expr", ...] = ()
    # Column of the node's name in the text it was parsed from (for error messages);
    # not part of equality, so parsed and built trees compare equal.
    column: int = -1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and self.op == other.op and self.args == other.args

    def __hash__(self) -> int:
        return hash((self.op, self.args))

    def __str__(self) -> str:
        return to_text(self)

    def walk(self) -> Iterator["Expr"]:
        """Nodes in post-order (arguments before the node): evaluation order."""
        for a in self.args:
            yield from a.walk()
        yield self

    def count(self, op: str) -> int:
        return sum(1 for n in self.walk() if n.op == op)

    def size(self) -> int:
        """Number of operations other than the leaf x and the two linears."""
        return sum(1 for n in self.walk() if n.op in OPERATIONS)


X = Expr("x")


def W1(e: Expr) -> Expr:
    return Expr("W1", (e,))


def W2(e: Expr) -> Expr:
    return Expr("W2", (e,))


def op(name: str, *args: Expr) -> Expr:
    return Expr(name, tuple(args))


STANDARD_FFN = "W2(gelu(W1(x)))"


# --- text form -----------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(\S))")


class ExpressionError(EdgebertError):
    pass


def _fail(text: str, column: int, why: str) -> ExpressionError:
    return ExpressionError(f"invalid MLP expression {text!r} at column {column + 1}: {why}")


def parse(text: str) -> Expr:
    """Parse and validate `text`; errors name the column (1-based) and the rule broken."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("invalid MLP expression: empty (example: 'W2(gelu(W1(x)))')")
    tokens: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # only trailing white space is left
            break
        if m.group(1) is not None:
            tokens.append((m.group(1), m.start(1)))
        elif m.group(2) is not None:
            tokens.append((m.group(2), m.start(2)))
        pos = m.end()
    tokens.append(("<end>", len(text)))
    i = 0

    def expect(symbol: str) -> None:
        nonlocal i
        tok, col = tokens[i]
        if tok != symbol:
            shown = "the end" if tok == "<end>" else repr(tok)
            raise _fail(text, col, f"expected {symbol!r}, found {shown}")
        i += 1

    def node() -> Expr:
        nonlocal i
        name, col = tokens[i]
        if name == "<end>":
            raise _fail(text, col, "expected an operand, found the end")
        i += 1
        if name == "x":
            return Expr("x", (), col)
        if name in ("W1", "W2"):
            arity = 1
        elif name in OPERATIONS:
            arity = OPERATIONS[name].arity
        else:
            known = ", ".join(["x", "W1", "W2", *OPERATIONS])
            raise _fail(text, col, f"unknown name {name!r}; known: {known}")
        expect("(")
        args = [node()]
        for _ in range(arity - 1):
            expect(",")
            args.append(node())
        if tokens[i][0] == ",":
            raise _fail(text, tokens[i][1], f"{name} takes {arity} operand{'s' if arity > 1 else ''}")
        expect(")")
        return Expr(name, tuple(args), col)

    tree = node()
    if tokens[i][0] != "<end>":
        raise _fail(text, tokens[i][1], f"unexpected {tokens[i][0]!r} after a complete expression")
    check(tree, text)
    return tree


def to_text(e: Expr) -> str:
    if e.op == "x":
        return "x"
    return f"{e.op}({', '.join(to_text(a) for a in e.args)})"


def canonical(text: str) -> str:
    """Parse and print: one spelling per expression (spaces normalised)."""
    return to_text(parse(text))


# --- validity -----------------------------------------------------------------


def check(e: Expr, text: str | None = None) -> None:
    """Raise ExpressionError naming the broken rule (and its column when parsed from text)."""
    text = text if text is not None else to_text(e)

    def where(node: Expr) -> int:
        return max(node.column, 0)

    if e.count("x") == 0:
        raise _fail(text, 0, "x must appear")
    for lin in ("W1", "W2"):
        n = e.count(lin)
        if n != 1:
            raise _fail(text, 0, f"{lin} must appear exactly once (found {n})")
    w2 = next(n for n in e.walk() if n.op == "W2")
    if w2.args[0].count("W1") != 1:
        raise _fail(text, where(w2), "W1 must come before W2 (inside W2's argument)")
    for node in e.walk():
        if node.op in OPERATIONS and OPERATIONS[node.op].arity == 2 and node.args[0] == node.args[1]:
            raise _fail(text, where(node), f"{node.op} has two identical operands ({to_text(node.args[0])})")
        if node.op not in OPERATIONS and node.op not in LEAVES_AND_LINEARS:
            raise _fail(text, where(node), f"unknown name {node.op!r}")


def is_valid(e: Expr) -> bool:
    try:
        check(e)
    except ExpressionError:
        return False
    return True


# --- widths and operation counts -----------------------------------------------


def width(e: Expr, hidden: int, inner: int) -> int:
    """Output width of a node: x is hidden wide, W1 inner, W2 hidden, binary = smaller operand."""
    if e.op == "x" or e.op == "W2":
        return hidden
    if e.op == "W1":
        return inner
    widths = [width(a, hidden, inner) for a in e.args]
    return min(widths)


@dataclass(frozen=True)
class OpUse:
    """One priced unit of an expression, in evaluation order.

    kind 'W1': the first linear (in_width -> width), with `fused` = the unary
    operation applied straight to its output, if any (ORT fuses MatMul+Add+act);
    kind 'W2': the second linear (in_width -> width); the sub-layer's residual and
    LayerNorm are priced with it;
    kind 'op': any other operation at `width` (a fused activation is not listed again).
    """

    kind: str
    op: str
    width: int
    in_width: int = 0
    fused: str | None = None


def op_uses(e: Expr, hidden: int, inner: int) -> list[OpUse]:
    """The fusion-aware units one sub-layer of this expression costs, in evaluation order."""
    fused_nodes: set[int] = set()
    uses: list[OpUse] = []
    # Find unary ops applied directly to W1: fused into the W1 unit.
    for node in e.walk():
        if node.op in OPERATIONS and OPERATIONS[node.op].arity == 1 and node.args[0].op == "W1":
            fused_nodes.add(id(node))
    fused_for_w1 = next(
        (n.op for n in e.walk() if id(n) in fused_nodes), None
    )
    for node in e.walk():
        if node.op == "x":
            continue
        if node.op == "W1":
            uses.append(OpUse("W1", "W1", inner, hidden, fused_for_w1))
        elif node.op == "W2":
            uses.append(OpUse("W2", "W2", hidden, width(node.args[0], hidden, inner)))
        elif id(node) in fused_nodes:
            continue
        else:
            uses.append(OpUse("op", node.op, width(node, hidden, inner)))
    return uses


def flops(e: Expr, hidden: int, inner: int, tokens: int) -> float:
    """Multiply-adds counted as 2 FLOPs, for `tokens` positions, one sub-layer, without LayerNorm."""
    total = 0.0
    for u in op_uses(e, hidden, inner):
        if u.kind in ("W1", "W2"):
            total += 2.0 * u.in_width * u.width * tokens
            if u.fused:
                total += OPERATIONS[u.fused].flops_per_element * u.width * tokens
        else:
            total += OPERATIONS[u.op].flops_per_element * u.width * tokens
    return total


def linear_shapes(e: Expr, hidden: int, inner: int) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of W1 and W2."""
    shapes = {}
    for node in e.walk():
        if node.op == "W1":
            shapes["W1"] = (hidden, inner)
        elif node.op == "W2":
            shapes["W2"] = (width(node.args[0], hidden, inner), hidden)
    return shapes


# --- generation and mutation (the search's structure stage) ------------------


def random_expression(rng: random.Random, max_ops: int = 4) -> Expr:
    """A random valid expression with at most `max_ops` operations besides x, W1, W2.

    Built as pre-W1 part -> W1 -> middle part -> W2 -> post part, so W1 sits inside
    W2 by construction; each part is a short chain of unary ops, sometimes joined
    by a binary op with a skip operand.
    """
    for _ in range(100):
        budget = rng.randint(1, max_ops)
        e = _chain(rng, X, rng.randint(0, 1) if budget > 1 else 0, allow_skip=[X])
        e = W1(e)
        e = _chain(rng, e, 1, allow_skip=[X])
        e = W2(e)
        e = _chain(rng, e, rng.randint(0, 1), allow_skip=[X])
        if is_valid(e) and 1 <= e.size() <= max_ops:
            return e
    return parse(STANDARD_FFN)


def _chain(rng: random.Random, e: Expr, n: int, allow_skip: list[Expr]) -> Expr:
    for _ in range(n):
        if rng.random() < 0.25:
            other = rng.choice(allow_skip)
            if other != e:
                other = op(rng.choice(drawn_unary_ops()), other) if rng.random() < 0.5 else other
                e = op(rng.choice(binary_ops()), e, other) if other != e else e
                continue
        e = op(rng.choice(drawn_unary_ops()), e)
    return e


def mutate(e: Expr, rng: random.Random, max_ops: int = 6) -> Expr:
    """One random local change that keeps the expression valid (and within max_ops):
    swap an operation for another of its arity, insert a unary op above a node,
    delete a unary op, or join a node with x by a binary op."""
    nodes = list(e.walk())
    for _ in range(50):
        target = rng.randrange(len(nodes))
        choice = rng.randrange(4)
        new = _rewrite(e, target, choice, rng)
        if new is not None and new != e and is_valid(new) and new.size() <= max_ops:
            return new
    return e


def _rewrite(e: Expr, target: int, choice: int, rng: random.Random) -> Expr | None:
    """Rebuild `e` with the node at post-order index `target` changed by `choice`."""
    counter = [-1]

    def visit(node: Expr) -> Expr | None:
        args = []
        for a in node.args:
            new_a = visit(a)
            if new_a is None:
                return None
            args.append(new_a)
        counter[0] += 1
        node = Expr(node.op, tuple(args))
        if counter[0] != target:
            return node
        if choice == 0 and node.op in OPERATIONS:  # swap for another op of the same arity
            pool = drawn_unary_ops() if OPERATIONS[node.op].arity == 1 else binary_ops()
            return Expr(rng.choice([p for p in pool if p != node.op]), node.args)
        if choice == 1:  # insert a unary op above
            return op(rng.choice(drawn_unary_ops()), node)
        if choice == 2 and node.op in OPERATIONS and OPERATIONS[node.op].arity == 1:  # delete
            return node.args[0]
        if choice == 3 and node.op != "x":  # join with x (or an activation of x)
            other = X if rng.random() < 0.5 else op(rng.choice(drawn_unary_ops()), X)
            return op(rng.choice(binary_ops()), node, other)
        return None

    return visit(e)
