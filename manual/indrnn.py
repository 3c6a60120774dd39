"""Hand-derived BPTT for the IndRNN (Li et al. 2018): each unit recurs only on itself.

    a_t = W x_t + u * h_{t-1} + b,     h_t = relu(a_t),     t = 1..T,  h_0 = 0

with the contract's output layer and loss on h_t (``manual.rnn.output_error``). The
recurrent weight is a vector u, so seed 000's scalar recursion holds per unit:

    e_t          = dL/dh_t * relu'(a_t)                  (local error signal)
    dL/dh_{t-1} += u * e_t                               (seed 000: dL/dh[k] = e[k+1] w_r)
    dL/dW = sum_t e_t^T x_t,   dL/du = sum_t e_t * h_{t-1},   dL/db = sum_t e_t

and |u_i| < 1 makes unit i's gradient vanish geometrically, |u_i| > 1 explode, one unit
at a time.
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients
from manual.rnn import Forward, output_error


def loss_and_grads(params, xs, ys, *, output="identity", loss="squared_error", reduction="mean",
                   truncate=None) -> Gradients:
    """params: W (H, D), u (H,), b (H,), W_hy (O, H), b_y (O,); xs (T, B, D)."""
    if truncate is not None:
        raise ValueError(f"truncate: the IndRNN derivation does full BPTT only; got {truncate!r}")
    T, B, _ = xs.shape
    W, u, b = params["W"], params["u"], params["b"]
    H = u.shape[0]
    a = np.zeros((T + 1, B, H), xs.dtype)
    h = np.zeros((T + 1, B, H), xs.dtype)
    pre = xs @ W.T + b                                     # input side of every step at once
    for t in range(1, T + 1):
        a[t] = pre[t - 1] + u * h[t - 1]
        h[t] = np.maximum(a[t], 0)
    z = h[1:] @ params["W_hy"].T + params["b_y"]
    theta = {"identity": lambda v: v, "tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
             "relu": lambda v: np.maximum(v, 0)}[output]
    L, dL_dz = output_error(Forward(a, h, z, theta(z)), ys, loss, reduction, output)

    dL_dh = np.zeros_like(h)
    dL_dh[1:] = dL_dz @ params["W_hy"]                     # the direct part, every step
    e = np.zeros_like(h)
    for t in range(T, 0, -1):
        e[t] = dL_dh[t] * (a[t] > 0)                       # e_t = dL/dh_t relu'(a_t)
        dL_dh[t - 1] += u * e[t]                           # each unit carries back its own error

    E = e[1:].reshape(T * B, H)
    G = dL_dz.reshape(T * B, -1)
    grads = {"W": E.T @ xs.reshape(T * B, -1), "u": (e[1:] * h[:-1]).sum((0, 1)), "b": E.sum(0),
             "W_hy": G.T @ h[1:].reshape(T * B, H), "b_y": G.sum(0)}
    return Gradients(L, grads, dL_dh, (E @ W).reshape(T, B, -1))
