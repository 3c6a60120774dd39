"""Seed 002: backpropagation for a feed-forward network, in the seed's notation.

    z^(l) = W^(l) a^(l-1) + b^(l),   a^(l) = phi^(l)(z^(l)),   a^(0) = x,   l = 1..L
    delta^(L) = (a^(L) - y) * phi^(L)'(z^(L))      (squared error, L = 1/2 ||a^(L) - y||^2)
    delta^(L) = softmax(z^(L)) - y                  (softmax + cross-entropy; phi^(L) = identity)
    delta^(l) = (W^(l+1)^T delta^(l+1)) * phi^(l)'(z^(l))
    dL/dW^(l) = delta^(l) a^(l-1)^T,   dL/db^(l) = delta^(l)

Mini-batches are rows: ``X`` is (B, n_0) and the loss is the mean over the batch, so
each delta carries a factor 1/B and the outer products become (n_l, B) x (B, n_{l-1})
matrix products. Parameters are a dict {"W1": (n_1, n_0), "b1": (n_1,), "W2": ...}.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bptt_xval.model import validate_mlp
from manual.activations import ACTIVATIONS


class MLPGradients(NamedTuple):
    loss: float
    grads: dict        # same keys and shapes as params
    deltas: list       # delta^(l) for l = 1..L, each (B, n_l): the per-layer error signals


def loss_and_grads(params, X, Y, *, activations, loss="squared_error") -> MLPGradients:
    """Loss (mean over the batch), dL/dW^(l), dL/db^(l) and every delta^(l), by the delta rule."""
    L = validate_mlp(params, X, Y, activations, loss)
    B = X.shape[0]
    a, z = [X], [None]
    for l in range(1, L + 1):
        z.append(a[l - 1] @ params[f"W{l}"].T + params[f"b{l}"])
        a.append(ACTIVATIONS[activations[l - 1]][0](z[l]))

    delta = [None] * (L + 1)
    if loss == "squared_error":
        value = 0.5 * float(((a[L] - Y) ** 2).sum()) / B
        delta[L] = (a[L] - Y) * ACTIVATIONS[activations[L - 1]][1](z[L], a[L]) / B
    else:
        shifted = z[L] - z[L].max(1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
        one_hot = np.eye(z[L].shape[1], dtype=X.dtype)[Y]
        value = -float((log_p * one_hot).sum()) / B
        delta[L] = (np.exp(log_p) - one_hot) / B          # softmax + cross-entropy: y_hat - y
    for l in range(L - 1, 0, -1):
        delta[l] = (delta[l + 1] @ params[f"W{l + 1}"]) * ACTIVATIONS[activations[l - 1]][1](z[l], a[l])

    grads = {}
    for l in range(1, L + 1):
        grads[f"W{l}"] = delta[l].T @ a[l - 1]            # delta^(l) a^(l-1)^T, summed over the batch
        grads[f"b{l}"] = delta[l].sum(0)
    return MLPGradients(value, grads, delta[1:])
