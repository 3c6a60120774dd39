"""Seeds 000 and 001 in their own notation equal the matrix RNN on D = H = O = B = 1."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bptt_xval.model import HIDDEN, OUTPUT
from manual import rnn, scalar_rnn
from manual.activations import ACTIVATIONS

finite = st.floats(-1.5, 1.5, allow_nan=False)


def _params(w_r, w_x, w_y, h0=None):
    p = {"W_xh": np.array([[w_x]]), "W_hh": np.array([[w_r]]), "b_h": np.zeros(1),
         "W_hy": np.array([[w_y]]), "b_y": np.zeros(1)}
    if h0 is not None:
        p["h0"] = np.array([h0])
    return p


def _rounding_bounds(w_r, w_x, w_y, y_star, x, s, truncate, c=8):
    """First-order bounds on |seed000 - matrix RNN| for L, dL/dh and the three gradients.

    The two differ only in rounding (Python floats and math.tanh against NumPy), so
    each operation contributes at most c*u of its operands' size, and an error in h_t
    reaches h_T through w_r (1 - h^2) as a gradient does. A fixed rtol is wrong here:
    cancellation in a_t = w_r h_{t-1} + w_x x_t makes h_T, and so L, ill-conditioned.
    """
    u = 2.0 ** -53
    h, T = s.h, len(x)
    dh = np.zeros(T + 1)
    for t in range(1, T + 1):
        terms = abs(w_r * h[t - 1]) + abs(w_x * x[t - 1])
        dh[t] = (1 - h[t] ** 2) * (abs(w_r) * dh[t - 1] + c * u * terms) + c * u * abs(h[t])
    o = w_y * h[T]
    r = o - y_star
    dr = abs(w_y) * dh[T] + c * u * (abs(o) + abs(y_star))          # error in (o - y*)
    bound_L = abs(r) * dr + dr ** 2 + c * u * s.L
    d_dL_dh = np.zeros(T + 1)
    d_e = np.zeros(T + 1)
    d_dL_dh[T] = abs(w_y) * dr + c * u * abs(s.dL_dh[T])
    for k in range(T - 1, -1, -1):
        dphi = 1 - h[k + 1] ** 2
        d_e[k + 1] = d_dL_dh[k + 1] * dphi + abs(s.dL_dh[k + 1]) * (2 * abs(h[k + 1]) * dh[k + 1] + c * u)
        cut = truncate is not None and k > 0 and k % truncate == 0
        d_dL_dh[k] = 0.0 if cut else abs(w_r) * d_e[k + 1] + c * u * abs(s.dL_dh[k])
    e = np.abs(s.e[1:])
    bound_w_r = (d_e[1:] * np.abs(h[:-1]) + e * dh[:-1]).sum() + c * u * T * (e * np.abs(h[:-1])).sum()
    bound_w_x = (d_e[1:] * np.abs(x)).sum() + c * u * T * (e * np.abs(x)).sum()
    bound_w_y = dr * abs(h[T]) + abs(r) * dh[T] + c * u * abs(r * h[T])
    return bound_L, d_dL_dh, (bound_w_r, bound_w_x, bound_w_y)


@given(w_r=finite, w_x=finite, w_y=finite, y_star=finite, h0=finite,
       x=st.lists(finite, min_size=1, max_size=30), truncate=st.sampled_from([None, 1, 2, 5]))
def test_seed000_equals_matrix_rnn(w_r, w_x, w_y, y_star, h0, x, truncate):
    x = np.array(x)
    T = len(x)
    s = scalar_rnn.seed000(w_r, w_x, w_y, x, y_star, h0=h0, truncate=truncate)
    m = rnn.loss_and_grads(_params(w_r, w_x, w_y, h0), x.reshape(T, 1, 1), np.full((T, 1, 1), y_star),
                           reduction="last", truncate=truncate)
    bound_L, bound_dL_dh, bound_w = _rounding_bounds(w_r, w_x, w_y, y_star, x, s, truncate)
    assert abs(s.L - m.loss) <= bound_L
    assert np.all(np.abs(s.dL_dh - m.dL_dh[:, 0, 0]) <= bound_dL_dh)
    manual = [m.grads["W_hh"][0, 0], m.grads["W_xh"][0, 0], m.grads["W_hy"][0, 0]]
    assert np.all(np.abs(np.array([s.dL_dw_r, s.dL_dw_x, s.dL_dw_y]) - manual) <= bound_w)
    # the per-step contributions are the terms of the sums, and e[k+1] is the seed's local error
    assert np.isclose(s.dL_dw_r_terms.sum(), s.dL_dw_r)
    np.testing.assert_allclose(s.e[1:], s.dL_dh[1:] * (1 - s.h[1:] ** 2))


def test_rounding_bounds_are_tight_enough_to_fail():
    """The bounds above stay within ~1e-12 of the values on a well-conditioned problem
    (hundreds of ulps): an error of a derivation is many orders larger."""
    x = np.array([0.3, -0.7, 0.5])
    s = scalar_rnn.seed000(0.9, 0.8, 1.1, x, 0.2, h0=0.1)
    bound_L, bound_dL_dh, bound_w = _rounding_bounds(0.9, 0.8, 1.1, 0.2, x, s, None)
    assert bound_L < 1e-11 * s.L and np.all(bound_dL_dh < 1e-11 * np.abs(s.dL_dh))
    assert np.all(np.array(bound_w) < 1e-11 * np.abs([s.dL_dw_r, s.dL_dw_x, s.dL_dw_y]))


@given(w_r=st.floats(-3, 3), w_x=finite, w_y=finite, y_star=finite, h0=finite,
       x=st.lists(st.floats(-3, 3), min_size=1, max_size=40), truncate=st.sampled_from([None, 1, 2, 3, 7, 50]))
def test_seed000_unrolled_is_the_loop_bit_for_bit(w_r, w_x, w_y, y_star, h0, x, truncate):
    """The product form multiplies in the loop's order: every array equal, not close."""
    loop = scalar_rnn.seed000(w_r, w_x, w_y, np.array(x), y_star, h0=h0, truncate=truncate)
    unrolled = scalar_rnn.seed000_unrolled(w_r, w_x, w_y, np.array(x), y_star, h0=h0, truncate=truncate)
    for name, a, b in zip(loop._fields, loop, unrolled):
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("truncate, T, zero_through", [(3, 10, 9), (5, 10, 5), (10, 10, 0), (1, 4, 3)])
def test_seed000_unrolled_truncation_stops_the_chain_at_the_last_cut(truncate, T, zero_through):
    s = scalar_rnn.seed000_unrolled(0.9, 0.5, 1.0, np.linspace(-1, 1, T), 0.3, h0=0.2, truncate=truncate)
    assert np.all(s.dL_dh[1:zero_through + 1] == 0) and np.all(s.dL_dh[zero_through + 1:] != 0)
    assert (s.dL_dh[0] != 0) == (zero_through == 0)


@pytest.mark.parametrize("truncate, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                             (True, TypeError), ("3", TypeError)])
@pytest.mark.parametrize("fn", [scalar_rnn.seed000, scalar_rnn.seed000_unrolled])
def test_seed000_rejects_bad_truncate(fn, truncate, error):
    with pytest.raises(error, match="truncate"):
        fn(0.9, 0.5, 1.0, np.ones(4), 0.3, truncate=truncate)


def test_seed000_vanishing_when_w_r_small():
    """|w_r| < 1: dL/dh[k] has been multiplied by w_r (1 - h^2) once per step."""
    s = scalar_rnn.seed000(0.5, 0.1, 1.0, np.zeros(20), 1.0, h0=0.0)
    ratios = s.dL_dh[:-1] / s.dL_dh[1:]
    np.testing.assert_allclose(ratios, 0.5 * (1 - s.h[1:] ** 2))
    assert abs(s.dL_dh[0]) < 1e-5 * abs(s.dL_dh[-1])


@pytest.mark.parametrize("phi", HIDDEN)
@pytest.mark.parametrize("theta", OUTPUT)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_seed001_equals_matrix_rnn(phi, theta, reduction):
    rng = np.random.default_rng(3)
    T = 17
    w, v, h0 = 0.8, 0.7, 0.3
    x, y = rng.normal(size=T), rng.uniform(0, 1, size=T)
    s = scalar_rnn.seed001(w, v, x, y, phi=phi, theta=theta, h0=h0, reduction=reduction)
    # seed 001 is the contract's model with W_hy = 1, b_y = 0 and theta as the output activation
    p = {"W_xh": np.array([[v]]), "W_hh": np.array([[w]]), "b_h": np.zeros(1), "W_hy": np.ones((1, 1)),
         "b_y": np.zeros(1), "h0": np.array([h0])}
    m = rnn.loss_and_grads(p, x.reshape(T, 1, 1), y.reshape(T, 1, 1), hidden=phi, output=theta,
                           reduction=reduction)
    assert s.L == pytest.approx(m.loss, rel=1e-13)
    np.testing.assert_allclose([s.dL_dw, s.dL_dv], [m.grads["W_hh"][0, 0], m.grads["W_xh"][0, 0]], rtol=1e-12)
    np.testing.assert_allclose(s.dL_dh, m.dL_dh[:, 0, 0], rtol=1e-12, atol=1e-300)
    assert s.dL_ds[T + 1] == 0  # the recursion starts from dL/ds_{T+1} = 0
    np.testing.assert_allclose(s.dL_ds[1:T + 1], m.dL_dh[1:, 0, 0] * ACTIVATIONS[phi][1](s.s[1:], s.h[1:]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalar_loss_and_grads_contract(dtype):
    rng = np.random.default_rng(0)
    T = 9
    p = {k: v.astype(dtype) for k, v in _params(0.9, 0.4, -1.2, 0.2).items()}
    xs = rng.normal(size=(T, 1, 1)).astype(dtype)
    ys = rng.normal(size=(T, 1, 1)).astype(dtype)
    s = scalar_rnn.loss_and_grads(p, xs, ys, reduction="last", truncate=4)
    m = rnn.loss_and_grads(p, xs, ys, reduction="last", truncate=4)
    assert set(s.grads) == set(p) and all(s.grads[k].dtype == dtype for k in p)
    assert s.dL_dh.shape == (T + 1, 1, 1) and s.dL_dh.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for k in p:
        np.testing.assert_allclose(s.grads[k], m.grads[k], rtol=tol, atol=tol)


def test_scalar_loss_and_grads_refuses_other_models():
    p = _params(0.5, 0.5, 0.5)
    xs, ys = np.zeros((3, 1, 1)), np.zeros((3, 1, 1))
    with pytest.raises(ValueError, match="hidden"):
        scalar_rnn.loss_and_grads(p, xs, ys, hidden="relu", reduction="last")
    with pytest.raises(ValueError, match="reduction"):
        scalar_rnn.loss_and_grads(p, xs, ys)  # the contract's default "mean"
    with pytest.raises(ValueError, match="b_h"):
        scalar_rnn.loss_and_grads({**p, "b_h": np.ones(1)}, xs, ys, reduction="last")
    with pytest.raises(ValueError, match="D = H = O = B = 1"):
        scalar_rnn.loss_and_grads(p, np.zeros((3, 2, 1)), np.zeros((3, 2, 1)), reduction="last")


@pytest.mark.parametrize("bad,error", [
    (dict(w_r=float("nan")), ValueError), (dict(w_r="1"), TypeError), (dict(x=np.zeros(0)), ValueError),
    (dict(x=[1.0, 2.0]), TypeError), (dict(x=np.zeros((2, 2))), ValueError),
    (dict(x=np.array([1.0, np.inf])), ValueError), (dict(y_star=np.inf), ValueError),
])
def test_seed000_validates(bad, error):
    args = dict(w_r=0.5, w_x=0.5, w_y=1.0, x=np.ones(3), y_star=0.0) | bad
    with pytest.raises(error):
        scalar_rnn.seed000(**args)


def test_seed001_validates():
    with pytest.raises(ValueError, match="phi"):
        scalar_rnn.seed001(0.5, 0.5, np.ones(3), np.ones(3), phi="softplus")
    with pytest.raises(ValueError, match="y"):
        scalar_rnn.seed001(0.5, 0.5, np.ones(3), np.ones(4))
