"""Seed 003's forward view of the same gradient: dh_t/dw as a sum over products of Jacobians,
and real-time recurrent learning (RTRL), which carries that sum forward in O(T).

With w = (W_xh, W_hh, b_h, h0) flattened, J_j = dh_j/dh_{j-1} = diag(phi'(a_j)) W_hh and
P_i = the explicit partial dh_i/dw (h_{i-1} held fixed), seed 003's boxed equation is

    dh_t/dw = P_t + sum_{i=1}^{t-1} (prod_{j=i+1}^{t} J_j) P_i            (d2l 9.7.7)

computed literally by :func:`sum_over_products` (O(T^2) matrix products), while RTRL keeps
the running sensitivity S_t = dh_t/dw = J_t S_{t-1} + P_t (:func:`rtrl`, O(T)). Either
gives dL/dw = sum_t (dL/dh_t direct)^T dh_t/dw with dL/dh_t direct = W_hy^T dL/dz_t:
the same gradient as BPTT, which runs the same products from the other end.

Per sample b the sensitivities are (H, n_w) matrices; n_w = H D + H^2 + H (+ H for h0).
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients, validate
from manual.activations import ACTIVATIONS
from manual.rnn import forward, output_error


def _blocks(params, D, H):
    names = ["W_xh", "W_hh", "b_h"] + (["h0"] if "h0" in params else [])
    sizes = [H * D, H * H, H] + ([H] if "h0" in params else [])
    return names, sizes


def explicit_partials(params, xs, f, hidden):
    """P_t (T+1, B, H, n_w): dh_t/dw with h_{t-1} held fixed; P_0 = dh_0/dw (the h0 block)."""
    T, B, D = xs.shape
    H = f.h.shape[-1]
    names, sizes = _blocks(params, D, H)
    dphi = ACTIVATIONS[hidden][1](f.a[1:], f.h[1:])         # (T, B, H)
    eye = np.eye(H, dtype=xs.dtype)
    P = np.zeros((T + 1, B, H, sum(sizes)), xs.dtype)
    # da_t[k]/dW_xh[k', d] = [k = k'] x_t[d];  da_t[k]/dW_hh[k', m] = [k = k'] h_{t-1}[m];  da_t/db_h = I
    P[1:, :, :, :H * D] = np.einsum("kl,tbd->tbkld", eye, xs).reshape(T, B, H, H * D)
    P[1:, :, :, H * D:H * D + H * H] = np.einsum("kl,tbm->tbklm", eye, f.h[:-1]).reshape(T, B, H, H * H)
    P[1:, :, :, H * D + H * H:H * D + H * H + H] = eye
    P[1:] *= dphi[..., None]                                 # through phi'(a_t)
    if "h0" in params:
        P[0, :, :, -H:] = eye                                # dh_0/dh_0 = I
    return P


def jacobians(params, f, hidden):
    """J_t = dh_t/dh_{t-1} = diag(phi'(a_t)) W_hh, (T+1, B, H, H); J_0 unused."""
    dphi = ACTIVATIONS[hidden][1](f.a[1:], f.h[1:])
    J = np.zeros(f.h.shape + (f.h.shape[-1],), f.h.dtype)
    J[1:] = dphi[..., None] * params["W_hh"]
    return J


def sum_over_products(params, xs, f, hidden):
    """dh_t/dw for t = 0..T by the explicit sum over i of products of Jacobians: O(T^2)."""
    P, J = explicit_partials(params, xs, f, hidden), jacobians(params, f, hidden)
    S = np.zeros_like(P)
    for t in range(len(P)):
        product = np.broadcast_to(np.eye(P.shape[2], dtype=P.dtype), J.shape[1:])   # empty product = I
        for i in range(t, -1, -1):
            S[t] += product @ P[i]                           # (prod_{j=i+1}^{t} J_j) P_i
            if i > 0:
                product = product @ J[i]
    return S


def rtrl(params, xs, f, hidden):
    """dh_t/dw for t = 0..T by real-time recurrent learning: S_t = J_t S_{t-1} + P_t, O(T)."""
    P, J = explicit_partials(params, xs, f, hidden), jacobians(params, f, hidden)
    S = np.empty_like(P)
    S[0] = P[0]
    for t in range(1, len(P)):
        S[t] = J[t] @ S[t - 1] + P[t]
    return S


METHODS = {"rtrl": rtrl, "sum_over_products": sum_over_products}


def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity", loss="squared_error",
                   reduction="mean", truncate=None, method="rtrl") -> Gradients:
    """The contract's signature, gradients by forward-mode sensitivities (``method`` "rtrl"
    or "sum_over_products"). ``dL_dh`` is None: forward mode never forms dL/dh_t.
    Truncation has no forward-mode counterpart here: ``truncate`` must be None."""
    p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss,
                 reduction=reduction, truncate=truncate)
    if truncate is not None:
        raise ValueError("truncate: forward-mode sensitivities give the full gradient; use truncate=None")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {tuple(METHODS)}; got {method!r}")
    f = forward(p.params, p.xs, hidden, output)
    L, dL_dz = output_error(f, p.ys, loss, reduction, output)
    S = METHODS[method](p.params, p.xs, f, hidden)           # (T+1, B, H, n_w)
    direct = dL_dz @ p.params["W_hy"]                        # dL/dh_t through z_t only, (T, B, H)
    per_sample = np.einsum("tbh,tbhw->bw", direct, S[1:])     # sum_t direct_t^T dh_t/dw
    names, sizes = _blocks(p.params, p.D, p.H)
    grads = {}
    for name, block in zip(names, np.split(per_sample, np.cumsum(sizes)[:-1], axis=1)):
        if name == "h0":
            grads[name] = block if p.params["h0"].ndim == 2 else block.sum(0)
        else:
            grads[name] = block.sum(0).reshape(p.params[name].shape)
    T, B, O = dL_dz.shape
    grads["W_hy"] = dL_dz.reshape(T * B, O).T @ f.h[1:].reshape(T * B, -1)
    grads["b_y"] = dL_dz.sum((0, 1))
    return Gradients(L, grads, None)
