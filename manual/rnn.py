"""Hand-derived BPTT for the matrix Elman RNN of seed 003, every option of the contract.

Forward (time-major, batch second, t = 1..T)::

    a_t = W_xh x_t + W_hh h_{t-1} + b_h      h_t = phi(a_t)
    z_t = W_hy h_t + b_y                      o_t = theta(z_t)
    L   = sum_t w_t l_t                       (w_t = 1/T, 1, or [t = T])

Backward, the recursion of seeds 000 and 001 in matrix form, run from dL/dh_{T+1} = 0::

    dL/dh_t = W_hy^T dL/dz_t + W_hh^T e_{t+1}        (total derivative, all later steps)
    e_t     = dL/dh_t * phi'(a_t)                     (seed 000's local error e[k+1])
    dL/dW_hh = sum_t e_t h_{t-1}^T,  dL/dW_xh = sum_t e_t x_t^T,  dL/db_h = sum_t e_t
    dL/dx_t  = W_xh^T e_t                             (the input's share of a_t)

Only the recurrence sits inside the time loops; every input and output projection and
every weight-gradient reduction is one matrix product over the stacked (T*B) rows.
"""

from __future__ import annotations

import threading

import numpy as np

from bptt_xval.model import Gradients, is_cut, step_weights, validate
from manual.activations import ACTIVATIONS
from manual.output import Forward, output_error  # noqa: F401  (the output layer, shared)


class _Workspace(threading.local):
    """The forward pass's a and h buffers, kept between calls of one shape (per thread).

    A fresh (T+1, B, H) array is paid for in page faults as it is first written: at
    T=100 B=64 H=512 (13 MB each) about 3,000 faults, ~10% of a whole call here. Only
    ``loss_and_grads`` uses the workspace, and nothing it returns points into it.
    """

    key = None
    buffers = None


_workspace = _Workspace()


# Larger forward passes get fresh arrays, so that no thread keeps gigabytes after a big call.
WORKSPACE_MAX_BYTES = 512 * 2**20


def workspace(T: int, B: int, H: int, dtype) -> tuple:
    """(a, h) buffers of shape (T+1, B, H), reused when the last call had the same shape
    (fresh, and not kept, beyond ``WORKSPACE_MAX_BYTES`` for the two)."""
    key = (T, B, H, np.dtype(dtype))
    if 2 * (T + 1) * B * H * key[-1].itemsize > WORKSPACE_MAX_BYTES:
        return tuple(np.empty((T + 1, B, H), dtype) for _ in range(2))
    if _workspace.key != key:
        release_workspace()                       # free the old buffers before allocating
        _workspace.buffers = tuple(np.empty((T + 1, B, H), dtype) for _ in range(2))
        _workspace.key = key
    return _workspace.buffers


def release_workspace() -> None:
    """Drop this thread's workspace (the memory of the last forward pass)."""
    _workspace.key = _workspace.buffers = None


def forward(params, xs, hidden, output, buffers=None) -> Forward:
    """a_t = W_xh x_t + W_hh h_{t-1} + b_h, h_t = phi(a_t), z_t = W_hy h_t + b_y, o_t = theta(z_t).

    ``buffers``: optional (a, h) arrays of shape (T+1, B, H) to write into (see
    :func:`workspace`); by default fresh ones.
    """
    T, B, D = xs.shape
    # contiguous W_hh^T: BLAS is ~15% faster on it than on a transposed view
    W_hh_T = np.ascontiguousarray(params["W_hh"].T)
    H = W_hh_T.shape[0]
    phi, theta = ACTIVATIONS[hidden][0], ACTIVATIONS[output][0]
    a, h = buffers if buffers is not None else (np.empty((T + 1, B, H), xs.dtype) for _ in range(2))
    h[0] = params["h0"] if "h0" in params else 0
    a[0] = 0
    # every input projection at once: one (T*B, D) x (D, H) product
    np.matmul(xs.reshape(T * B, D), params["W_xh"].T, out=a[1:].reshape(T * B, H))
    a[1:] += params["b_h"]
    recurrent = np.empty((B, H), xs.dtype)        # preallocated: the loop allocates nothing
    # zip hands out the per-step views (a_t, h_{t-1}, h_t) from C, and np.dot has less
    # per-call overhead than np.matmul: ~30% of a step when B and H are small
    for a_t, h_prev, h_t in zip(a[1:], h[:-1], h[1:]):
        a_t += np.dot(h_prev, W_hh_T, out=recurrent)
        phi(a_t, out=h_t)
    z = (h[1:].reshape(T * B, H) @ params["W_hy"].T).reshape(T, B, -1) + params["b_y"]
    return Forward(a, h, z, theta(z))


def backward(params, xs, f: Forward, dL_dz, hidden, truncate, overwrite_a=False):
    """BPTT from dL/dh_{T+1} = 0. Returns (grads without h0, dL_dh (T+1, B, H), dL_dx (T, B, D)).

    ``overwrite_a``: build e in f.a's memory (a_t is needed only for phi'(a_t)), saving
    one (T+1, B, H) array; f.a is garbage afterwards.
    """
    T, B, H = f.h.shape[0] - 1, f.h.shape[1], f.h.shape[2]
    O = dL_dz.shape[-1]
    W_hh = params["W_hh"]
    dL_dh = np.empty_like(f.h)
    dL_dh[0] = 0                                  # h0 feeds no output directly
    # direct part W_hy^T dL/dz_t for every step at once
    np.matmul(dL_dz.reshape(T * B, O), params["W_hy"], out=dL_dh[1:].reshape(T * B, H))
    # phi'(a_t) depends on the forward pass only: every step at once, outside the loop
    e = f.a if overwrite_a else np.empty_like(f.h)
    e[0] = 0
    ACTIVATIONS[hidden][1](f.a[1:], f.h[1:], out=e[1:])   # elementwise: safe in place
    carried = np.empty((B, H), f.h.dtype)
    # t = T..1 with the views e_t, dL/dh_t and dL/dh_{t-1}
    for t, e_t, dL_dh_t, dL_dh_prev in zip(range(T, 0, -1), e[:0:-1], dL_dh[:0:-1], dL_dh[T - 1::-1]):
        e_t *= dL_dh_t                            # e_t = dL/dh_t * phi'(a_t)
        if not is_cut(t - 1, truncate):           # a detached h_{t-1} receives nothing
            dL_dh_prev += np.dot(e_t, W_hh, out=carried)   # seed 000's dL/dh[k] = e[k+1] w_r

    # Shared weights: sum the per-step contributions over t (and the batch) in one product.
    E = e[1:].reshape(T * B, H)
    G = dL_dz.reshape(T * B, O)
    grads = {
        "W_xh": E.T @ xs.reshape(T * B, -1),
        "W_hh": E.T @ f.h[:-1].reshape(T * B, H),
        "b_h": E.sum(0),
        "W_hy": G.T @ f.h[1:].reshape(T * B, H),
        "b_y": G.sum(0),
    }
    # dL/dx_t = W_xh^T e_t, every step at once: x_t enters only through a_t
    dL_dx = (E @ params["W_xh"]).reshape(T, B, -1)
    return grads, dL_dh, dL_dx


def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity",
                   loss="squared_error", reduction="mean", truncate=None) -> Gradients:
    """Loss, parameter gradients and dL/dh_t by hand-derived BPTT.

    params: dict with W_xh (H, D), W_hh (H, H), b_h (H,), W_hy (O, H), b_y (O,) and
            optionally h0 (H,) or (B, H); xs (T, B, D); ys (T, B, O) float, or (T, B)
            int for loss="cross_entropy". All floats float32 or all float64; the result
            has that dtype. ``truncate=k`` cuts the gradient at h_k, h_2k, ... as
            ``detach()`` does. Returns ``Gradients(loss, grads, dL_dh, dL_dx)`` with dL_dh
            of shape (T+1, B, H) and dL_dx of shape (T, B, D). See docs/api.md.
    """
    p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss,
                 reduction=reduction, truncate=truncate)
    f = forward(p.params, p.xs, hidden, output, workspace(p.T, p.B, p.H, p.dtype))
    L, dL_dz = output_error(f, p.ys, loss, reduction, output)
    grads, dL_dh, dL_dx = backward(p.params, p.xs, f, dL_dz, hidden, truncate, overwrite_a=True)
    if "h0" in params:
        grads["h0"] = dL_dh[0].copy() if params["h0"].ndim == 2 else dL_dh[0].sum(0)
    return Gradients(L, grads, dL_dh, dL_dx)
