"""The seed documents' scalar RNNs, in their own notation.

Seed 000 (one loss at the last step)::

    h[k+1] = tanh(w_r h[k] + w_x x[k]),  k = 0..T-1      y = w_y h[T]      L = 1/2 (y - y*)^2
    e[k+1] = dL/dh[k+1] (1 - h[k+1]^2)                    (local error signal)
    dL/dh[k] = e[k+1] w_r                                 (passed one step left)
    dL/dw_r = sum_k e[k+1] h[k],  dL/dw_x = sum_k e[k+1] x[k],  dL/dw_y = (y - y*) h[T]

Seed 001 (a loss at every step, any phi and theta)::

    s_t = w h_{t-1} + v x_t,   h_t = phi(s_t),   yhat_t = theta(h_t),   t = 1..T
    dL/ds_{T+1} = 0
    dL/dh_t = dL/dyhat_t theta'(h_t) + dL/ds_{t+1} w,    dL/ds_t = dL/dh_t phi'(s_t)

Both are special cases of the contract's model (D = H = O = 1, B = 1); the tests check
them against :func:`manual.rnn.loss_and_grads` to float64 rounding.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from bptt_xval.model import HIDDEN, OUTPUT, Gradients, check_option, is_cut, validate
from manual.activations import ACTIVATIONS


class Seed000(NamedTuple):
    """Every quantity of seed 000; arrays indexed by k as the seed indexes them."""

    h: np.ndarray            # (T+1,) h[0..T]
    y: float
    L: float
    e: np.ndarray            # (T+1,) e[1..T]; e[0] unused (0)
    dL_dh: np.ndarray        # (T+1,) dL/dh[0..T]
    dL_dw_r_terms: np.ndarray  # (T,) e[k+1] h[k], k = 0..T-1
    dL_dw_x_terms: np.ndarray  # (T,) e[k+1] x[k]
    dL_dw_r: float
    dL_dw_x: float
    dL_dw_y: float


class Seed001(NamedTuple):
    """Every quantity of seed 001; arrays indexed by t = 0..T (slot 0 is h_0 / unused)."""

    s: np.ndarray            # (T+1,) s_1..s_T in slots 1..T
    h: np.ndarray            # (T+1,) h_0..h_T
    y_hat: np.ndarray        # (T+1,) yhat_1..yhat_T in slots 1..T
    L: float
    dL_ds: np.ndarray        # (T+2,) dL/ds_1..dL/ds_{T+1} (the last is 0)
    dL_dh: np.ndarray        # (T+1,) dL/dh_0..dL/dh_T
    dL_dw: float
    dL_dv: float


def _scalar(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a real number; got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number; got {value}")
    return value


def _sequence(name, value, T=None) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a 1-D numpy.ndarray; got {type(value).__name__}")
    if value.ndim != 1:
        raise ValueError(f"{name}: expected shape (T,); got {value.shape}")
    if value.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real (float or int) dtype; got {value.dtype}")
    if value.shape[0] == 0:
        raise ValueError(f"{name}: T = 0; expected at least one step")
    if T is not None and value.shape[0] != T:
        raise ValueError(f"{name}: expected shape ({T},) to match x; got {value.shape}")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return value.astype(np.float64)


def _seed000_inputs(w_r, w_x, w_y, x, y_star, h0, truncate):
    w_r, w_x, w_y = _scalar("w_r", w_r), _scalar("w_x", w_x), _scalar("w_y", w_y)
    y_star, h0 = _scalar("y_star", y_star), _scalar("h0", h0)
    if truncate is not None:
        if isinstance(truncate, bool) or not isinstance(truncate, numbers.Integral):
            raise TypeError(f"truncate: expected None or a positive int; got {truncate!r}")
        if truncate < 1:
            raise ValueError(f"truncate: expected None or a positive int; got {truncate}")
    return w_r, w_x, w_y, _sequence("x", x), y_star, h0


def _seed000_result(h, e, dL_dh, x, y, y_star) -> Seed000:
    """Seed000 from h, e, dL/dh (arrays indexed by k): the sums over k of the weight gradients."""
    dL_dw_r_terms = e[1:] * h[:-1]
    dL_dw_x_terms = e[1:] * x
    return Seed000(h, float(y), float(0.5 * (y - y_star) ** 2), e, dL_dh, dL_dw_r_terms, dL_dw_x_terms,
                   float(dL_dw_r_terms.sum()), float(dL_dw_x_terms.sum()), float((y - y_star) * h[-1]))


def seed000(w_r, w_x, w_y, x, y_star, h0=0.0, truncate=None) -> Seed000:
    """Seed 000's BPTT for the scalar tanh RNN; ``x`` is the (T,) input x[0..T-1].

    ``truncate=k`` cuts the chain at h[k], h[2k], ...: there dL/dh[k] = 0, because with
    the loss at the last step only, h[k] has no path to L but through h[k+1].
    This is the teaching form, one step of the seed's recursion per loop iteration;
    :func:`seed000_unrolled` computes the same numbers bit for bit, faster.
    """
    w_r, w_x, w_y, x, y_star, h0 = _seed000_inputs(w_r, w_x, w_y, x, y_star, h0, truncate)
    T = len(x)

    # Python floats and lists: a scalar recurrence is all per-step overhead, and math.tanh
    # on a float costs a tenth of np.tanh on a 0-d array.
    xk = x.tolist()
    h = [h0] * (T + 1)
    for k in range(T):
        h[k + 1] = math.tanh(w_r * h[k] + w_x * xk[k])
    y = w_y * h[T]

    e = [0.0] * (T + 1)
    dL_dh = [0.0] * (T + 1)
    dL_dh[T] = (y - y_star) * w_y                 # dL/dy * dy/dh[T]
    for k in range(T - 1, -1, -1):
        # h^2 as h * h, one correctly rounded product (Python's h ** 2 calls libm's pow,
        # which may be an ulp off): the rounding NumPy's square has, and manual.rnn's
        e[k + 1] = dL_dh[k + 1] * (1 - h[k + 1] * h[k + 1])
        dL_dh[k] = 0.0 if is_cut(k, truncate) else e[k + 1] * w_r
    return _seed000_result(np.array(h), np.array(e), np.array(dL_dh), x, y, y_star)


def seed000_unrolled(w_r, w_x, w_y, x, y_star, h0=0.0, truncate=None) -> Seed000:
    """Seed 000 with its backward recursion unrolled into the seed's own product::

        dL/dh[k] = dL/dh[T] * prod_{j = k+1..T} (1 - h[j]^2) w_r

    the product whose size decides whether gradients vanish (|w_r| < 1) or explode.
    ``np.multiply.accumulate`` multiplies strictly left to right, so the alternating
    factors dL/dh[T], (1 - h[T]^2), w_r, (1 - h[T-1]^2), w_r, ... give e[T], dL/dh[T-1],
    e[T-1], ... with exactly the rounding of :func:`seed000`'s loop: the two agree bit
    for bit (tested), and this one runs its backward pass as one NumPy call.
    """
    w_r, w_x, w_y, x, y_star, h0 = _seed000_inputs(w_r, w_x, w_y, x, y_star, h0, truncate)
    T = len(x)

    # forward: nonlinear, so one step at a time; w_x x[k] for every k at once first
    tanh, h_k, h = math.tanh, h0, [h0]           # local names: ~10% off a 1,000-step loop
    for u_k in (w_x * x).tolist():
        h_k = tanh(w_r * h_k + u_k)
        h.append(h_k)
    y = w_y * h_k
    h = np.fromiter(h, np.float64, T + 1)

    # With the loss at step T only, a cut at h[c] stops the chain there: dL/dh[k] = 0 for
    # every k <= c, c the last cut before T. Without one, c = 0 and dL/dh[0] is the last product.
    c = truncate * ((T - 1) // truncate) if truncate is not None else 0
    n = T - c                                     # steps the chain runs back through
    factors = np.empty(2 * n + 1)
    factors[0] = (y - y_star) * w_y               # dL/dh[T]
    factors[1::2] = 1 - h[T:c:-1] ** 2            # (1 - h[j]^2), j = T..c+1
    factors[2::2] = w_r
    running = np.multiply.accumulate(factors)     # dL/dh[T], e[T], dL/dh[T-1], e[T-1], ...
    dL_dh, e = np.zeros(T + 1), np.zeros(T + 1)
    dL_dh[c + 1:] = running[0:2 * n:2][::-1]
    e[c + 1:] = running[1:2 * n:2][::-1]
    if c == 0:
        dL_dh[0] = running[2 * n]                 # no cut: h[0] receives the whole product
    return _seed000_result(h, e, dL_dh, x, y, y_star)


def seed001(w, v, x, y, *, phi="tanh", theta="identity", h0=0.0, reduction="sum") -> Seed001:
    """Seed 001's generic scalar RNN with L = sum_t (or mean_t) 1/2 (yhat_t - y_t)^2.

    ``x`` and ``y`` are (T,) arrays x_1..x_T and y_1..y_T.
    """
    w, v, h0 = _scalar("w", w), _scalar("v", v), _scalar("h0", h0)
    check_option("phi", phi, HIDDEN)
    check_option("theta", theta, OUTPUT)
    check_option("reduction", reduction, ("sum", "mean"))
    x = _sequence("x", x)
    y = _sequence("y", y, len(x))
    T = len(x)
    phi_f, dphi = ACTIVATIONS[phi]
    theta_f, dtheta = ACTIVATIONS[theta]

    s = np.zeros(T + 1)
    h = np.empty(T + 1)
    h[0] = h0
    for t in range(1, T + 1):
        s[t] = w * h[t - 1] + v * x[t - 1]
        h[t] = phi_f(s[t:t + 1])[0]
    y_hat = np.zeros(T + 1)
    y_hat[1:] = theta_f(h[1:])
    scale = 1.0 if reduction == "sum" else 1.0 / T
    L = scale * 0.5 * float(((y_hat[1:] - y) ** 2).sum())

    dL_ds = np.zeros(T + 2)                       # dL/ds_{T+1} = 0 starts the recursion
    dL_dh = np.zeros(T + 1)
    for t in range(T, 0, -1):
        dL_dyhat = scale * (y_hat[t] - y[t - 1])
        dL_dh[t] = dL_dyhat * dtheta(h[t:t + 1], y_hat[t:t + 1])[0] + dL_ds[t + 1] * w
        dL_ds[t] = dL_dh[t] * dphi(s[t:t + 1], h[t:t + 1])[0]
    dL_dh[0] = dL_ds[1] * w
    dL_dw = float((dL_ds[1:T + 1] * h[:-1]).sum())
    dL_dv = float((dL_ds[1:T + 1] * x).sum())
    return Seed001(s, h, y_hat, L, dL_ds, dL_dh, dL_dw, dL_dv)


def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity",
                   loss="squared_error", reduction="mean", truncate=None) -> Gradients:
    """The contract's signature over :func:`seed000`, for seed 000's model only.

    Accepts D = H = O = 1, B = 1, zero biases, hidden="tanh", output="identity",
    loss="squared_error" and reduction="last", the only reduction seed 000 has (pass it:
    the default is the contract's shared "mean", which this model refuses); anything
    else is a ValueError that says so. Returns arrays of the input dtype.
    """
    p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss,
                 reduction=reduction, truncate=truncate)
    seed_model = dict(hidden="tanh", output="identity", loss="squared_error", reduction="last")
    for name, value in dict(hidden=hidden, output=output, loss=loss, reduction=reduction).items():
        if value != seed_model[name]:
            raise ValueError(f"{name}: manual.scalar_rnn implements seed 000's model "
                             f"({name}={seed_model[name]!r}); got {value!r}")
    if (p.D, p.H, p.O, p.B) != (1, 1, 1, 1):
        raise ValueError(f"xs/params: manual.scalar_rnn needs D = H = O = B = 1; got "
                         f"D={p.D}, H={p.H}, O={p.O}, B={p.B}")
    for bias in ("b_h", "b_y"):
        if np.any(params[bias] != 0):
            raise ValueError(f"params['{bias}']: seed 000's model has no bias; expected 0")
    h0 = float(params["h0"].ravel()[0]) if "h0" in params else 0.0
    s = seed000_unrolled(params["W_hh"][0, 0], params["W_xh"][0, 0], params["W_hy"][0, 0],
                         xs[:, 0, 0], ys[-1, 0, 0], h0=h0, truncate=truncate)

    def like(name, value):
        return np.full(params[name].shape, value, dtype=p.dtype)

    grads = {"W_xh": like("W_xh", s.dL_dw_x), "W_hh": like("W_hh", s.dL_dw_r),
             "b_h": like("b_h", s.e[1:].sum()), "W_hy": like("W_hy", s.dL_dw_y),
             "b_y": like("b_y", s.y - float(ys[-1, 0, 0]))}
    if "h0" in params:
        grads["h0"] = like("h0", s.dL_dh[0])
    return Gradients(s.L, grads, s.dL_dh.reshape(-1, 1, 1).astype(p.dtype))
