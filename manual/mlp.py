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

from bptt_xval.model import FLOAT_DTYPES, HIDDEN, check_option
from manual.activations import ACTIVATIONS

MLP_LOSS = ("squared_error", "cross_entropy")


class MLPGradients(NamedTuple):
    loss: float
    grads: dict        # same keys and shapes as params
    deltas: list       # delta^(l) for l = 1..L, each (B, n_l): the per-layer error signals


def n_layers(params) -> int:
    return len(params) // 2


def validate_mlp(params, X, Y, activations, loss):
    """Check the arguments of :func:`loss_and_grads`; returns L (the number of layers)."""
    check_option("loss", loss, MLP_LOSS)
    if not isinstance(params, dict):
        raise TypeError(f"params: expected a dict W1, b1, ..., WL, bL; got {type(params).__name__}")
    L = n_layers(params)
    expected = {f"{p}{l}" for l in range(1, L + 1) for p in "Wb"}
    if L == 0 or set(params) != expected:
        raise KeyError(f"params: expected keys W1, b1, ..., W{L}, b{L}; got {sorted(params, key=str)}")
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype not in FLOAT_DTYPES:
        raise TypeError(f"X: expected a float32/float64 array of shape (B, n_0); got {getattr(X, 'shape', X)!r}")
    if X.shape[0] == 0:
        raise ValueError("X: empty batch; expected B >= 1 rows")
    if not isinstance(activations, (list, tuple)) or len(activations) != L:
        raise ValueError(f"activations: expected a list of {L} names, one per layer; got {activations!r}")
    for i, name in enumerate(activations):
        check_option(f"activations[{i}]", name, HIDDEN)
    if loss == "cross_entropy" and activations[-1] != "identity":
        raise ValueError("activations: softmax + cross-entropy needs the last activation 'identity'")
    width = X.shape[1]
    for l in range(1, L + 1):
        W, b = params[f"W{l}"], params[f"b{l}"]
        for name, arr in ((f"W{l}", W), (f"b{l}", b)):
            if not isinstance(arr, np.ndarray) or arr.dtype != X.dtype:
                raise TypeError(f"params['{name}']: expected a {X.dtype} numpy.ndarray")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"params['{name}']: contains NaN or Inf")
        if W.ndim != 2 or W.shape[1] != width or b.shape != (W.shape[0],):
            raise ValueError(f"params['W{l}'], ['b{l}']: expected shapes (n_{l}, {width}) and (n_{l},); "
                             f"got {W.shape} and {b.shape}")
        width = W.shape[0]
    if not np.all(np.isfinite(X)):
        raise ValueError("X: contains NaN or Inf")
    if loss == "cross_entropy":
        if not (isinstance(Y, np.ndarray) and np.issubdtype(Y.dtype, np.integer) and Y.shape == X.shape[:1]):
            raise TypeError(f"Y: expected integer class indices of shape ({X.shape[0]},)")
        if Y.min() < 0 or Y.max() >= width:
            raise ValueError(f"Y: class indices must lie in [0, {width})")
    elif not (isinstance(Y, np.ndarray) and Y.dtype == X.dtype and Y.shape == (X.shape[0], width)):
        raise TypeError(f"Y: expected a {X.dtype} array of shape ({X.shape[0]}, {width})")
    elif not np.all(np.isfinite(Y)):
        raise ValueError("Y: contains NaN or Inf")
    return L


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
