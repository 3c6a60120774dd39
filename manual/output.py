"""The output layer and loss every derivation here shares (seed 003's z_t = W_hy h_t + b_y,
o_t = theta(z_t), L = sum_t w_t l_t), and the forward pass's record.

Apart from ``rnn`` so that what a convention adapter needs to put the contract's loss on a
student's hidden states (``comparisons.conventions._adapt.head``) is importable without the
BPTT derivations: a grading sandbox holds this module and ``activations``, never ``rnn``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bptt_xval.model import step_weights
from manual.activations import ACTIVATIONS


class Forward(NamedTuple):
    """The forward pass, indexed as the equations are: a[t], h[t] for t = 1..T with h[0] = h0
    (a[0] unused); z and o for t = 1..T stored at 0..T-1."""

    a: np.ndarray   # (T+1, B, H)
    h: np.ndarray   # (T+1, B, H)
    z: np.ndarray   # (T, B, O)
    o: np.ndarray   # (T, B, O)


def output_error(f: Forward, ys, loss, reduction, output):
    """L = sum_t w_t l_t and dL/dz_t (T, B, O): w_t / B (batch mean) times the loss derivative."""
    T, B, O = f.z.shape
    w = step_weights(reduction, T, f.z.dtype)
    if loss == "squared_error":
        l = 0.5 * ((f.o - ys) ** 2).sum(-1).mean(-1)
        dL_dz = (f.o - ys) * ACTIVATIONS[output][1](f.z, f.o)
    else:
        z_shift = f.z - f.z.max(-1, keepdims=True)
        log_softmax = z_shift - np.log(np.exp(z_shift).sum(-1, keepdims=True))
        one_hot = np.eye(O, dtype=f.z.dtype)[ys]
        l = -(log_softmax * one_hot).sum(-1).mean(-1)
        dL_dz = np.exp(log_softmax) - one_hot       # softmax + cross-entropy: o - y
    dL_dz *= (w / B)[:, None, None]
    return float((w * l).sum()), dL_dz
