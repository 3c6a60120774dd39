"""Seed 002: the delta rule equals autograd, jax and finite differences; bad input is typed."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from comparisons.check.cases import make_mlp_problem
from comparisons.check.tolerances import compare_array, tolerance
from manual import mlp
from reference import jax_grad, numeric, torch_autograd

REFERENCES = {"torch": torch_autograd.mlp_loss_and_grads, "jax": jax_grad.mlp_loss_and_grads,
              "numeric": numeric.mlp_loss_and_grads}


@given(widths=st.lists(st.integers(1, 9), min_size=2, max_size=6), B=st.integers(1, 6),
       hidden=st.sampled_from(["tanh", "sigmoid", "relu", "identity"]),
       last=st.sampled_from(["identity", "sigmoid", "tanh"]), cross_entropy=st.booleans(),
       seed=st.integers(0, 1000))
def test_delta_rule_equals_references(widths, B, hidden, last, cross_entropy, seed):
    loss = "cross_entropy" if cross_entropy else "squared_error"
    acts = [hidden] * (len(widths) - 2) + ["identity" if cross_entropy else last]
    params, X, Y = make_mlp_problem(widths, B, seed=seed, loss=loss)
    m = mlp.loss_and_grads(params, X, Y, activations=acts, loss=loss)
    assert len(m.deltas) == len(widths) - 1 and all(d.shape == (B, n) for d, n in zip(m.deltas, widths[1:]))
    for name, fn in REFERENCES.items():
        L, grads, deltas = fn(params, X, Y, activations=acts, loss=loss)
        kind = "central" if name == "numeric" and "relu" in acts else "autodiff"
        tol = tolerance("float64", len(widths), B, 0, max(widths), 0, reference=kind, loss=m.loss)
        assert L == pytest.approx(m.loss, rel=1e-12, abs=1e-300)
        for k in params:
            assert compare_array(m.grads[k], grads[k], tol).ok, (name, k)
        if deltas:  # delta^(l) = dL/dz^(l) from autodiff
            for d_m, d_r in zip(m.deltas, deltas):
                assert compare_array(d_m, d_r, tol).ok, name


def test_float32_stays_float32():
    params, X, Y = make_mlp_problem([4, 5, 2], 3, dtype="float32")
    m = mlp.loss_and_grads(params, X, Y, activations=["tanh", "identity"])
    assert all(g.dtype == np.float32 for g in m.grads.values())


def test_sigmoid_deltas_shrink_layer_by_layer():
    """sigmoid' <= 1/4: the feed-forward analogue of vanishing gradients."""
    params, X, Y = make_mlp_problem([6] + [16] * 8 + [3], 8, seed=0)
    m = mlp.loss_and_grads(params, X, Y, activations=["sigmoid"] * 8 + ["identity"])
    norms = [np.linalg.norm(d) for d in m.deltas]
    assert norms[0] < 1e-3 * norms[-1]


@pytest.mark.parametrize("mutate,error,match", [
    (lambda p, X, Y, a: (p, X, Y, a[:-1]), ValueError, "activations"),
    (lambda p, X, Y, a: ({k: v for k, v in p.items() if k != "b2"}, X, Y, a), KeyError, "params"),
    (lambda p, X, Y, a: (p, X[:, :-1], Y, a), ValueError, "W1"),
    (lambda p, X, Y, a: (p, X.astype(np.float32), Y, a), TypeError, "params"),
    (lambda p, X, Y, a: (p, X, Y[:, :1], a), TypeError, "Y"),
    (lambda p, X, Y, a: (p, np.full_like(X, np.nan), Y, a), ValueError, "X"),
    (lambda p, X, Y, a: (p, X, Y, ["tanh", "gelu"]), ValueError, "activations"),
    (lambda p, X, Y, a: (p, X[:0], Y[:0], a), ValueError, "X"),
])
@pytest.mark.parametrize("fn", [mlp.loss_and_grads, *REFERENCES.values()], ids=["manual", *REFERENCES])
def test_mlp_rejects_bad_input(fn, mutate, error, match):
    p, X, Y = make_mlp_problem([3, 4, 2], 5)
    p, X, Y, acts = mutate(p, X, Y, ["tanh", "identity"])
    with pytest.raises(error, match=match):
        fn(p, X, Y, activations=acts)
