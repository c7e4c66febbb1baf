import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgebert import mlp
from edgebert.zoo import EFFICIENTBERT_FFNS


@pytest.mark.parametrize("text", [mlp.STANDARD_FFN] + [f for f, _, _ in EFFICIENTBERT_FFNS])
def test_paper_expressions_parse_and_print_back(text):
    assert mlp.to_text(mlp.parse(text)) == text


def test_spaces_are_normalised():
    assert mlp.canonical(" W2( relu( mul(W1(x),x) ) ) ") == "W2(relu(mul(W1(x), x)))"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("W2(gelu(W1(y)))", "column 12: unknown name 'y'"),
        ("W2(gelu(W1(x))", "expected ')', found the end"),
        ("W2(gelu(x))", "W1 must appear exactly once (found 0)"),
        ("W1(gelu(W2(x)))", "W1 must come before W2"),
        ("W2(W1(add(x, x)))", "add has two identical operands (x)"),
        ("W2(W1(W1(x)))", "W1 must appear exactly once (found 2)"),
        ("W2(gelu(W1(x), x))", "gelu takes 1 operand"),
        ("W2(gelu(W1(x))) x", "unexpected 'x' after a complete expression"),
        ("", "empty"),
    ],
)
def test_invalid_expressions_say_where_and_why(text, fragment):
    with pytest.raises(mlp.ExpressionError) as e:
        mlp.parse(text)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_identical_operand_error_names_the_column():
    with pytest.raises(mlp.ExpressionError, match=r"column 7: max has two identical operands \(tanh\(x\)\)"):
        mlp.parse("W2(W1(max(tanh(x), tanh(x))))")


def test_x_must_appear():
    e = mlp.Expr("W2", (mlp.Expr("W1", (mlp.Expr("gelu", ()),)),))
    assert not mlp.is_valid(e)


def test_widths_follow_the_smaller_operand():
    e = mlp.parse("W2(relu(mul(W1(x), x)))")  # EfficientBERT layer 5
    assert mlp.linear_shapes(e, 540, 270) == {"W1": (540, 270), "W2": (270, 540)}
    assert mlp.linear_shapes(e, 100, 400) == {"W1": (100, 400), "W2": (100, 100)}


def test_op_uses_fuse_the_activation_into_w1():
    uses = mlp.op_uses(mlp.parse("tanh(W2(gelu(W1(x))))"), 540, 270)
    assert [(u.kind, u.op, u.width, u.in_width, u.fused) for u in uses] == [
        ("W1", "W1", 270, 540, "gelu"),
        ("W2", "W2", 540, 270, None),
        ("op", "tanh", 540, 0, None),
    ]


def test_every_registered_operation_but_the_no_op_is_reachable_by_generation():
    rng = random.Random(0)
    seen = set()
    for _ in range(400):
        e = mlp.random_expression(rng, 6)
        seen |= {n.op for n in e.walk()} | {n.op for n in mlp.mutate(e, rng).walk()}
    assert set(mlp.OPERATIONS) - {"identity"} <= seen
    assert "identity" not in seen  # a no-op would waste an operation slot


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_random_expressions_are_valid_and_round_trip(seed, max_ops):
    e = mlp.random_expression(random.Random(seed), max_ops)
    mlp.check(e)
    assert 1 <= e.size() <= max_ops
    assert mlp.parse(mlp.to_text(e)) == e


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_mutation_keeps_expressions_valid(seed):
    rng = random.Random(seed)
    e = mlp.parse(mlp.STANDARD_FFN)
    for _ in range(5):
        e = mlp.mutate(e, rng, max_ops=6)
        mlp.check(e)
        assert e.size() <= 6


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(16, 1024), st.integers(16, 4096))
def test_flops_count_both_linears(seed, hidden, inner):
    e = mlp.random_expression(random.Random(seed), 4)
    shapes = mlp.linear_shapes(e, hidden, inner)
    linear = sum(2 * i * o for i, o in shapes.values())
    assert mlp.flops(e, hidden, inner, 1) >= linear
