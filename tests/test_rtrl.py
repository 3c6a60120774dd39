"""Seed 003: the sum over products and RTRL equal BPTT, and RTRL equals jax's forward mode."""

import numpy as np
import pytest

from comparisons import check_derivation
from comparisons.check.cases import Case, make_problem
from manual import rnn, rtrl
from reference import jax_grad


@pytest.mark.parametrize("method", list(rtrl.METHODS))
@pytest.mark.parametrize("hidden", ["tanh", "sigmoid", "relu", "identity"])
def test_forward_mode_passes_the_checker(method, hidden):
    def fn(params, xs, ys, **config):
        return rtrl.loss_and_grads(params, xs, ys, method=method, **config)
    # sum over products is O(T^2) in Jacobian products: keep the cases short
    result = check_derivation(fn, hidden=hidden, cases=8, seed=4, references=("torch",))
    assert result.ok, result.summary()


def test_sensitivities_equal_jax_jacfwd():
    case = Case(seed=9, T=7, B=3, D=2, H=4, O=2, regime="expansive")
    params, xs, _ = make_problem(case)
    f = rnn.forward(params, xs, "tanh", "identity")
    jac = jax_grad.hidden_state_jacobian(params, xs)
    H, D = case.H, case.D
    for method in rtrl.METHODS.values():
        S_T = method(params, xs, f, "tanh")[-1]
        np.testing.assert_allclose(S_T[:, :, :H * D].reshape(3, H, H, D), jac["W_xh"], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(S_T[:, :, H * D:H * D + H * H].reshape(3, H, H, H), jac["W_hh"],
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(S_T[:, :, H * D + H * H:], jac["b_h"], rtol=1e-12, atol=1e-14)


def test_both_methods_build_the_same_sensitivities():
    case = Case(seed=2, T=9, B=2, D=3, H=3, O=1, h0="batch")
    params, xs, _ = make_problem(case)
    f = rnn.forward(params, xs, "sigmoid", "identity")
    np.testing.assert_allclose(rtrl.rtrl(params, xs, f, "sigmoid"),
                               rtrl.sum_over_products(params, xs, f, "sigmoid"), rtol=1e-12, atol=1e-15)


def test_rejects_truncation_and_unknown_method():
    params, xs, ys = make_problem(Case(seed=0, T=3, B=1, D=1, H=2, O=1))
    with pytest.raises(ValueError, match="truncate"):
        rtrl.loss_and_grads(params, xs, ys, truncate=2)
    with pytest.raises(ValueError, match="method"):
        rtrl.loss_and_grads(params, xs, ys, method="adjoint")
