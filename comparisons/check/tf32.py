"""TF32: the arithmetic of float32 matrix products on NVIDIA GPUs by default, emulated in NumPy.

TF32 keeps float32's 8-bit exponent and rounds the *operands* of a product to a 10-bit
mantissa (unit roundoff u = 2^-11 ~ 4.9e-4, against float32's 2^-24), then multiplies and
accumulates in float32. torch on CUDA uses it for cuDNN's RNNs by default and for every
float32 matmul once a script calls ``torch.set_float32_matmul_precision("high")``; JAX
uses it for float32 products on NVIDIA GPUs unless ``precision="highest"``. A float32
derivation run that way is right, and still fails a float32 check by ~1e-4 to 1e-3
relative: the diagnosis ``tf32_matmuls`` says why (``comparisons.check.diagnosis``).

To tell that apart from a real mistake of the same size, the diagnosis computes what
TF32 arithmetic gives on the case (:func:`loss_and_grads`, every product's operands
rounded to TF32, to nearest and by truncation: the larger error of the two is TF32's
size) and asks whether the candidate's errors look like it (:func:`looks_like_tf32`).
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients, is_cut, validate
from manual.activations import ACTIVATIONS
from manual.output import Forward, output_error

MANTISSA_BITS = 10
UNIT_ROUNDOFF = 2.0 ** -(MANTISSA_BITS + 1)


ROUNDINGS = ("nearest", "truncate")


def round_tf32(x, rounding: str = "nearest") -> np.ndarray:
    """float32 values rounded to TF32's 10-bit mantissa (the 13 low bits of float32's 23
    dropped): to nearest, ties to even, or by truncation toward zero, as some hardware
    and libraries convert. Inf and NaN pass unchanged."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32)
    if rounding == "nearest":
        bits = bits + ((bits >> 13) & np.uint32(1)) + np.uint32(0x0FFF)   # half an ulp, to even
    rounded = (bits & np.uint32(0xFFFFE000)).view(np.float32)
    return np.where(np.isfinite(x), rounded, x)


def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity", loss="squared_error",
                   reduction="mean", truncate=None, rounding="nearest") -> Gradients:
    """BPTT in float32 with every matrix product in TF32 (the contract's signature):
    manual.rnn's equations, with each product's operands rounded (``rounding``: one of
    ROUNDINGS) as a GPU rounds them, and float32 accumulation."""
    def _mm(a, b):
        return np.matmul(round_tf32(a, rounding), round_tf32(b, rounding))

    p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss, reduction=reduction,
                 truncate=truncate)
    P = {k: v.astype(np.float32) for k, v in p.params.items()}
    X = p.xs.astype(np.float32)
    Y = p.ys if loss == "cross_entropy" else p.ys.astype(np.float32)
    T, B, H = p.T, p.B, p.H
    phi, dphi = ACTIVATIONS[hidden]
    a, h = np.zeros((T + 1, B, H), np.float32), np.zeros((T + 1, B, H), np.float32)
    h[0] = P.get("h0", 0)
    for t in range(1, T + 1):
        a[t] = _mm(X[t - 1], P["W_xh"].T) + _mm(h[t - 1], P["W_hh"].T) + P["b_h"]
        h[t] = phi(a[t])
    z = _mm(h[1:], P["W_hy"].T) + P["b_y"]
    L, dL_dz = output_error(Forward(a, h, z, ACTIVATIONS[output][0](z)), Y, loss, reduction, output)
    dL_dh = np.zeros_like(h)
    dL_dh[1:] = _mm(dL_dz, P["W_hy"])
    e = np.zeros_like(h)
    for t in range(T, 0, -1):
        e[t] = dL_dh[t] * dphi(a[t], h[t])
        if not is_cut(t - 1, truncate):
            dL_dh[t - 1] += _mm(e[t], P["W_hh"])
    E, G = e[1:].reshape(T * B, H), dL_dz.reshape(T * B, -1)
    grads = {"W_xh": _mm(E.T, X.reshape(T * B, -1)), "W_hh": _mm(E.T, h[:-1].reshape(T * B, H)),
             "b_h": E.sum(0), "W_hy": _mm(G.T, h[1:].reshape(T * B, H)), "b_y": G.sum(0)}
    if "h0" in P:
        grads["h0"] = dL_dh[0] if P["h0"].ndim == 2 else dL_dh[0].sum(0)
    return Gradients(L, grads, dL_dh, _mm(e[1:], P["W_xh"]))


# How far a TF32 candidate's error may sit from TF32 arithmetic's own error on the same case,
# either way. Two TF32 computations differ in summation order and in how the hardware
# rounds operands (to nearest, or by truncation: twice the error), so their errors are
# alike in size, not equal. Measured on held-out seeds with a truncating, step-by-step
# TF32 derivation (tests/test_gpu_safety.py): see the ratios quoted there.
SIZE_FACTOR = 4.0
# The share of the compared quantities whose errors must be TF32-sized: TF32 rounds every
# product, so nearly every gradient carries its error; a mistake in one place does not.
SPREAD = 2 / 3


def looks_like_tf32(candidate_errors: dict, tf32_errors: dict, float32_tol: dict) -> bool:
    """Does a failing float32 candidate's error look like TF32 arithmetic's on this case?

    ``candidate_errors`` and ``tf32_errors``: target -> max |x - exact| of the candidate and
    of :func:`loss_and_grads`; ``float32_tol``: target -> the float32 tolerance. TF32 when
    no error is larger than SIZE_FACTOR times TF32's own (plus float32's tolerance), and
    the errors are spread as TF32's are: at least SPREAD of the quantities (and two) carry
    an error of TF32's size, within SIZE_FACTOR of it. A structured mistake of the same
    size (one parameter's gradient off by 1e-3) leaves the others at float32's error, far
    below TF32's, and is not named TF32.
    """
    targets = list(candidate_errors)
    within = all(candidate_errors[k] <= SIZE_FACTOR * tf32_errors[k] + float32_tol[k] for k in targets)
    alike = [k for k in targets if candidate_errors[k] >= tf32_errors[k] / SIZE_FACTOR]
    return within and len(alike) >= max(2, SPREAD * len(targets))
