"""Hand-derived BPTT for the minimal gated unit (Zhou et al. 2016): one gate, f.

    f_t = sigmoid(W_f x_t + U_f h_{t-1} + b_f)
    s_t = tanh(W_h x_t + U_h (f_t * h_{t-1}) + b_h)          (the candidate state)
    h_t = (1 - f_t) * h_{t-1} + f_t * s_t,                    t = 1..T,  h_0 = 0

with the contract's output layer and loss on h_t (``manual.rnn.output_error``). Backward,
from dL/dh_t (the loss's own part plus what step t+1 carried back):

    ds_t  = dL/dh_t * f_t                      a_s = W_h x_t + U_h (f_t h_{t-1}) + b_h
    da_s  = ds_t * (1 - s_t^2)
    dg_t  = da_s U_h                           (g_t = f_t h_{t-1}, the gated state)
    df_t  = dL/dh_t * (s_t - h_{t-1}) + dg_t * h_{t-1}
    da_f  = df_t * f_t (1 - f_t)
    dL/dh_{t-1} += dL/dh_t * (1 - f_t) + dg_t * f_t + da_f U_f

three paths back to h_{t-1}: the gate's carry (1 - f_t), through the candidate (f_t), and
through the gate itself (U_f).
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients
from manual.rnn import Forward, output_error


def loss_and_grads(params, xs, ys, *, output="identity", loss="squared_error", reduction="mean",
                   truncate=None) -> Gradients:
    """params: W_f, W_h (H, D); U_f, U_h (H, H); b_f, b_h (H,); W_hy (O, H), b_y (O,)."""
    if truncate is not None:
        raise ValueError(f"truncate: the MGU derivation does full BPTT only; got {truncate!r}")
    T, B, _ = xs.shape
    W_f, U_f, b_f = params["W_f"], params["U_f"], params["b_f"]
    W_h, U_h, b_h = params["W_h"], params["U_h"], params["b_h"]
    H = b_f.shape[0]
    h = np.zeros((T + 1, B, H), xs.dtype)
    f = np.zeros_like(h)
    s = np.zeros_like(h)
    pre_f, pre_h = xs @ W_f.T + b_f, xs @ W_h.T + b_h       # input sides, every step at once
    for t in range(1, T + 1):
        f[t] = 1 / (1 + np.exp(-(pre_f[t - 1] + h[t - 1] @ U_f.T)))
        s[t] = np.tanh(pre_h[t - 1] + (f[t] * h[t - 1]) @ U_h.T)
        h[t] = (1 - f[t]) * h[t - 1] + f[t] * s[t]
    z = h[1:] @ params["W_hy"].T + params["b_y"]
    theta = {"identity": lambda v: v, "tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
             "relu": lambda v: np.maximum(v, 0)}[output]
    L, dL_dz = output_error(Forward(None, h, z, theta(z)), ys, loss, reduction, output)

    dL_dh = np.zeros_like(h)
    dL_dh[1:] = dL_dz @ params["W_hy"]                       # the direct part, every step
    da_f = np.zeros_like(h)
    da_s = np.zeros_like(h)
    for t in range(T, 0, -1):
        dh = dL_dh[t]
        da_s[t] = dh * f[t] * (1 - s[t] ** 2)
        dg = da_s[t] @ U_h                                   # into g_t = f_t h_{t-1}
        df = dh * (s[t] - h[t - 1]) + dg * h[t - 1]
        da_f[t] = df * f[t] * (1 - f[t])
        dL_dh[t - 1] += dh * (1 - f[t]) + dg * f[t] + da_f[t] @ U_f

    X = xs.reshape(T * B, -1)
    Af, As = da_f[1:].reshape(T * B, H), da_s[1:].reshape(T * B, H)
    G = dL_dz.reshape(T * B, -1)
    grads = {"W_f": Af.T @ X, "U_f": Af.T @ h[:-1].reshape(T * B, H), "b_f": Af.sum(0),
             "W_h": As.T @ X, "U_h": As.T @ (f[1:] * h[:-1]).reshape(T * B, H), "b_h": As.sum(0),
             "W_hy": G.T @ h[1:].reshape(T * B, H), "b_y": G.sum(0)}
    return Gradients(L, grads, dL_dh, (Af @ W_f + As @ W_h).reshape(T, B, -1))
