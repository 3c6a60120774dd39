"""Hand-derived BPTT for LSTM and GRU cells, in PyTorch's conventions and weight layout.

Output and loss are the contract's: z_t = W_hy h_t + b_y, squared error, batch mean,
reduction over time by ``step_weights``; h0 = c0 = 0. Gate blocks are stacked in
PyTorch's order so the weights map one to one onto ``torch.nn.LSTM`` / ``torch.nn.GRU``.

LSTM (params W_ih (4H, D), W_hh (4H, H), b (4H,) = bias_ih + bias_hh; gates i, f, g, o)::

    i, f, o = sigmoid(.), g = tanh(.)      of  a_t = W_ih x_t + W_hh h_{t-1} + b
    c_t = f * c_{t-1} + i * g              h_t = o * tanh(c_t)
    backward: dc_t = dh_t * o * (1 - tanh(c_t)^2) + dc_{t+1} * f_{t+1}
              da_t = [dc_t g i(1-i), dc_t c_{t-1} f(1-f), dc_t i (1-g^2), dh_t tanh(c_t) o(1-o)]
              dL/dh_{t-1} += W_hh^T da_t

GRU (params W_ih (3H, D), W_hh (3H, H), b_ih (3H,), b_hh (3H,); gates r, z, n)::

    r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z), n = tanh(gi_n + r * gh_n)
    with gi = W_ih x_t + b_ih, gh = W_hh h_{t-1} + b_hh;     h_t = (1 - z) n + z h_{t-1}
    backward: dn = dh (1 - z), dz = dh (h_{t-1} - n), dgi_n = dn (1 - n^2), dgh_n = dgi_n r,
              dr = dgi_n gh_n; dgi = [dr r(1-r), dz z(1-z), dgi_n], dgh = [.., .., dgh_n]
              dL/dh_{t-1} = dh z + W_hh^T dgh

GRU as d2l writes it (params W_ih (3H, D), b (3H,), gates z, r, h~; W_hh (2H, H) for z and r;
W_hc (H, H), the candidate's, reading r * h_{t-1}: the reset gate applied before the product)::

    z = sigmoid(gi_z + gh_z), r = sigmoid(gi_r + gh_r), h~ = tanh(gi_c + W_hc (r h_{t-1}))
    with gi = W_ih x_t + b, gh = W_hh h_{t-1};              h_t = z h_{t-1} + (1 - z) h~
    backward: dh~ = dh (1 - z), dz = dh (h_{t-1} - h~), da_c = dh~ (1 - h~^2),
              d(r h) = W_hc^T da_c, dr = d(r h) h_{t-1}; dgi = [dz z(1-z), dr r(1-r), da_c]
              dL/dh_{t-1} = dh z + d(r h) r + W_hh^T dgi[z, r]
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients, validate_gated
from manual.activations import ACTIVATIONS
from manual.rnn import Forward, output_error

sigmoid, tanh = ACTIVATIONS["sigmoid"][0], np.tanh


def _output(params, hs, ys, reduction):
    """L, dL/dz_t and dL/dh_t through z_t only (the direct part), for t = 1..T: the
    matrix RNN's output layer and loss (``manual.rnn.output_error``) on the cell's h_t."""
    z = hs[1:] @ params["W_hy"].T + params["b_y"]
    L, dL_dz = output_error(Forward(None, hs, z, z), ys, "squared_error", reduction, "identity")
    return L, dL_dz, dL_dz @ params["W_hy"]


def _output_grads(params, hs, dL_dz):
    T, B, O = dL_dz.shape
    G = dL_dz.reshape(T * B, O)
    return {"W_hy": G.T @ hs[1:].reshape(T * B, -1), "b_y": G.sum(0)}


def lstm_loss_and_grads(params, xs, ys, *, reduction="mean") -> Gradients:
    """LSTM BPTT. params: W_ih (4H, D), W_hh (4H, H), b (4H,), W_hy (O, H), b_y (O,)."""
    p = validate_gated("lstm", params, xs, ys, reduction)
    T, B, H = p.T, p.B, p.H
    W_hh = params["W_hh"]
    pre = (xs @ params["W_ih"].T + params["b"]).astype(xs.dtype)   # input side of every gate, all steps
    h = np.zeros((T + 1, B, H), xs.dtype)
    c = np.zeros((T + 1, B, H), xs.dtype)
    gates = np.empty((T + 1, B, 4 * H), xs.dtype)
    tanh_c = np.zeros((T + 1, B, H), xs.dtype)
    # gate k of step t is gates[t, :, k H:(k + 1) H]: a view per gate, no copy
    i, f, g, o = (gates[:, :, k * H:(k + 1) * H] for k in range(4))
    for t in range(1, T + 1):
        a = pre[t - 1] + h[t - 1] @ W_hh.T
        gates[t, :, :2 * H] = sigmoid(a[:, :2 * H])                  # i, f
        gates[t, :, 2 * H:3 * H] = tanh(a[:, 2 * H:3 * H])           # g
        gates[t, :, 3 * H:] = sigmoid(a[:, 3 * H:])                  # o
        c[t] = f[t] * c[t - 1] + i[t] * g[t]
        tanh_c[t] = tanh(c[t])
        h[t] = o[t] * tanh_c[t]

    L, dL_dz, direct = _output(params, h, p.ys, reduction)
    dL_dh = np.zeros_like(h)
    dL_dh[1:] = direct
    da = np.zeros((T + 1, B, 4 * H), xs.dtype)
    dc = np.zeros((B, H), xs.dtype)                                  # dL/dc_{T+1}: nothing beyond T
    for t in range(T, 0, -1):
        f_next = f[t + 1] if t < T else 0.0
        dc = dL_dh[t] * o[t] * (1 - tanh_c[t] ** 2) + dc * f_next
        da[t, :, :H] = dc * g[t] * i[t] * (1 - i[t])
        da[t, :, H:2 * H] = dc * c[t - 1] * f[t] * (1 - f[t])
        da[t, :, 2 * H:3 * H] = dc * i[t] * (1 - g[t] ** 2)
        da[t, :, 3 * H:] = dL_dh[t] * tanh_c[t] * o[t] * (1 - o[t])
        dL_dh[t - 1] += da[t] @ W_hh

    A = da[1:].reshape(T * B, 4 * H)
    grads = {"W_ih": A.T @ xs.reshape(T * B, -1), "W_hh": A.T @ h[:-1].reshape(T * B, H),
             "b": A.sum(0), **_output_grads(params, h, dL_dz)}
    return Gradients(L, grads, dL_dh)


def gru_loss_and_grads(params, xs, ys, *, reduction="mean") -> Gradients:
    """GRU BPTT. params: W_ih (3H, D), W_hh (3H, H), b_ih (3H,), b_hh (3H,), W_hy, b_y."""
    p = validate_gated("gru", params, xs, ys, reduction)
    T, B, H = p.T, p.B, p.H
    W_hh = params["W_hh"]
    gi = (xs @ params["W_ih"].T + params["b_ih"]).astype(xs.dtype)  # input side, all steps
    h = np.zeros((T + 1, B, H), xs.dtype)
    gh = np.empty((T + 1, B, 3 * H), xs.dtype)
    r, z, n = (np.empty((T + 1, B, H), xs.dtype) for _ in range(3))
    for t in range(1, T + 1):
        gh[t] = h[t - 1] @ W_hh.T + params["b_hh"]
        r[t] = sigmoid(gi[t - 1, :, :H] + gh[t, :, :H])
        z[t] = sigmoid(gi[t - 1, :, H:2 * H] + gh[t, :, H:2 * H])
        n[t] = tanh(gi[t - 1, :, 2 * H:] + r[t] * gh[t, :, 2 * H:])
        h[t] = (1 - z[t]) * n[t] + z[t] * h[t - 1]

    L, dL_dz, direct = _output(params, h, p.ys, reduction)
    dL_dh = np.zeros_like(h)
    dL_dh[1:] = direct
    dgi = np.zeros((T + 1, B, 3 * H), xs.dtype)
    dgh = np.zeros((T + 1, B, 3 * H), xs.dtype)
    for t in range(T, 0, -1):
        dh = dL_dh[t]
        dgi_n = dh * (1 - z[t]) * (1 - n[t] ** 2)
        dr = dgi_n * gh[t, :, 2 * H:]
        dz = dh * (h[t - 1] - n[t])
        dgi[t] = np.concatenate([dr * r[t] * (1 - r[t]), dz * z[t] * (1 - z[t]), dgi_n], axis=1)
        dgh[t] = np.concatenate([dgi[t, :, :2 * H], dgi_n * r[t]], axis=1)
        dL_dh[t - 1] += dh * z[t] + dgh[t] @ W_hh

    Gi, Gh = dgi[1:].reshape(T * B, 3 * H), dgh[1:].reshape(T * B, 3 * H)
    grads = {"W_ih": Gi.T @ xs.reshape(T * B, -1), "W_hh": Gh.T @ h[:-1].reshape(T * B, H),
             "b_ih": Gi.sum(0), "b_hh": Gh.sum(0), **_output_grads(params, h, dL_dz)}
    return Gradients(L, grads, dL_dh)


def gru_d2l_loss_and_grads(params, xs, ys, *, reduction="mean") -> Gradients:
    """d2l's GRU BPTT. params: W_ih (3H, D), W_hh (2H, H), W_hc (H, H), b (3H,), W_hy, b_y."""
    p = validate_gated("gru_d2l", params, xs, ys, reduction)
    T, B, H = p.T, p.B, p.H
    W_hh, W_hc = params["W_hh"], params["W_hc"]
    gi = (xs @ params["W_ih"].T + params["b"]).astype(xs.dtype)     # input side, all steps
    h = np.zeros((T + 1, B, H), xs.dtype)
    z, r, c = (np.empty((T + 1, B, H), xs.dtype) for _ in range(3))
    for t in range(1, T + 1):
        gh = h[t - 1] @ W_hh.T
        z[t] = sigmoid(gi[t - 1, :, :H] + gh[:, :H])
        r[t] = sigmoid(gi[t - 1, :, H:2 * H] + gh[:, H:])
        c[t] = tanh(gi[t - 1, :, 2 * H:] + (r[t] * h[t - 1]) @ W_hc.T)
        h[t] = z[t] * h[t - 1] + (1 - z[t]) * c[t]

    L, dL_dz, direct = _output(params, h, p.ys, reduction)
    dL_dh = np.zeros_like(h)
    dL_dh[1:] = direct
    dgi = np.zeros((T + 1, B, 3 * H), xs.dtype)
    for t in range(T, 0, -1):
        dh = dL_dh[t]
        da_c = dh * (1 - z[t]) * (1 - c[t] ** 2)
        d_rh = da_c @ W_hc
        dz = dh * (h[t - 1] - c[t])
        dr = d_rh * h[t - 1]
        dgi[t] = np.concatenate([dz * z[t] * (1 - z[t]), dr * r[t] * (1 - r[t]), da_c], axis=1)
        dL_dh[t - 1] += dh * z[t] + d_rh * r[t] + dgi[t, :, :2 * H] @ W_hh

    G = dgi[1:].reshape(T * B, 3 * H)
    rh = (r[1:] * h[:-1]).reshape(T * B, H)
    grads = {"W_ih": G.T @ xs.reshape(T * B, -1), "W_hh": G[:, :2 * H].T @ h[:-1].reshape(T * B, H),
             "W_hc": G[:, 2 * H:].T @ rh, "b": G.sum(0), **_output_grads(params, h, dL_dz)}
    return Gradients(L, grads, dL_dh)


CELLS = {"lstm": lstm_loss_and_grads, "gru": gru_loss_and_grads, "gru_d2l": gru_d2l_loss_and_grads}
